"""ReportLabeler behaviour beyond single sentences: sections, evidence, schemas, rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from radiolens import Certainty, ReportLabeler, label_report
from radiolens.errors import ReportParseError, RulesError
from radiolens.findings import get_schema
from radiolens.reports.text import split_sections, split_sentences


def test_indication_is_not_labelled() -> None:
    text = "INDICATION: Fever, rule out pneumonia.\nFINDINGS: The lungs are clear.\n" \
           "IMPRESSION: No acute disease."
    result = label_report(text)
    assert result.labels["Pneumonia"] is None
    assert result.labels["No Finding"] is Certainty.POSITIVE


def test_sections_can_be_chosen() -> None:
    labeler = ReportLabeler(sections=["indication", "findings"])
    result = labeler.label("INDICATION: pneumonia. FINDINGS: Clear lungs.")
    assert result.labels["Pneumonia"] is Certainty.POSITIVE


def test_field_mapping_uses_field_names_as_sections() -> None:
    result = label_report({"indication": "Pneumonia?", "findings": "No effusion.",
                           "impression": "Normal."})
    assert result.labels["Pneumonia"] is None
    assert result.labels["Effusion"] is Certainty.NEGATIVE


def test_unknown_field_names_are_labelled_as_body_text() -> None:
    assert label_report({"notes": "Small effusion."}).labels["Effusion"] is Certainty.POSITIVE


def test_empty_report_is_an_error() -> None:
    with pytest.raises(ReportParseError, match="no text to label"):
        label_report("   ")
    with pytest.raises(ReportParseError):
        label_report({"indication": "cough", "findings": ""})


def test_evidence_names_sentence_phrase_and_trigger() -> None:
    result = label_report("FINDINGS: Heart size normal. There is no evidence of pneumothorax.")
    ev = result.decisive("Pneumothorax")
    assert ev is not None
    assert ev.sentence == "There is no evidence of pneumothorax"
    assert ev.phrase == "pneumothorax"
    assert ev.rule == "negation"
    assert ev.trigger == "no evidence of"
    assert ev.section == "findings"
    assert ev.to_dict()["label"] == 0


def test_positive_mention_wins_over_negative_one() -> None:
    result = label_report("FINDINGS: No pleural effusion. IMPRESSION: Small left effusion.")
    assert result.labels["Effusion"] is Certainty.POSITIVE
    assert result.decisive("Effusion").section == "impression"  # type: ignore[union-attr]


def test_sections_and_sentences() -> None:
    text = "COMPARISON: None. FINDINGS: A. B\n\nC. IMPRESSION: D"
    assert [s.name for s in split_sections(text)] == ["comparison", "findings", "impression"]
    body = "Nodule measures 1.5 cm. Heart normal; lungs clear.Next one"
    spans = [body[a:b] for a, b in split_sentences(body)]
    assert spans == ["Nodule measures 1.5 cm", "Heart normal", "lungs clear", "Next one"]


def test_chexpert_schema_columns_and_conventions() -> None:
    labeler = ReportLabeler("chexpert")
    assert labeler.columns == get_schema("chexpert").columns
    result = labeler.label("Borderline cardiomegaly. Small left pleural effusion. "
                           "Left chest tube in place. Atelectasis versus pneumonia.")
    assert result.labels["Cardiomegaly"] is Certainty.UNCERTAIN  # CheXpert: borderline = -1
    assert result.labels["Pleural Effusion"] is Certainty.POSITIVE
    assert result.labels["Support Devices"] is Certainty.POSITIVE
    assert result.labels["Atelectasis"] is Certainty.UNCERTAIN
    assert result.labels["Pneumonia"] is Certainty.UNCERTAIN


def test_chexpert_support_devices_do_not_block_no_finding() -> None:
    result = ReportLabeler("chexpert").label("Left chest tube in place. Lungs are clear.")
    assert result.labels["No Finding"] is Certainty.POSITIVE


@pytest.mark.parametrize("text", ["Stable calcified granuloma.", "Surgical clips.",
                                  "Possible scarring at the left base."])
def test_chexpert_other_abnormalities_block_no_finding(text: str) -> None:
    result = ReportLabeler("chexpert").label(f"FINDINGS: {text} Lungs are clear.")
    assert result.labels["No Finding"] is Certainty.NEGATIVE
    assert ReportLabeler("chexpert").label("FINDINGS: No granuloma. Lungs are clear."
                                           ).labels["No Finding"] is Certainty.POSITIVE


def test_user_rules_add_a_finding_and_synonyms(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "findings:\n"
        "  Rib Fracture:\n"
        "    mentions: [rib fracture, fractured rib]\n"
        "  Pneumonia:\n"
        "    mentions: [lung infection]\n"
        "triggers:\n"
        "  negation:\n"
        "    pre: [no radiographic sign of]\n", encoding="utf-8")
    labeler = ReportLabeler(rules=[rules])
    assert labeler.columns[-2:] == ("Rib Fracture", "No Finding")
    result = labeler.label("Fractured rib on the left. Lung infection. "
                           "No radiographic sign of effusion.")
    assert result.labels["Rib Fracture"] is Certainty.POSITIVE
    assert result.labels["Pneumonia"] is Certainty.POSITIVE
    ev = result.decisive("Effusion")
    assert ev is not None and ev.trigger == "no radiographic sign of"


def test_user_rules_can_move_a_trigger_to_another_category(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("triggers:\n  uncertainty:\n    pre: [likely]\n", encoding="utf-8")
    assert label_report("Likely atelectasis.").labels["Atelectasis"] is Certainty.POSITIVE
    result = ReportLabeler(rules=[rules]).label("Likely atelectasis.")
    assert result.labels["Atelectasis"] is Certainty.UNCERTAIN


@pytest.mark.parametrize("content, message", [
    ("findings: [a, b]\n", "findings must be a mapping"),
    ("findngs:\n  X:\n    mentions: [x]\n", "did you mean 'findings'"),
    ("findings:\n  X:\n    mention: [x]\n", "did you mean 'mentions'"),
    ("triggers:\n  negaton:\n    pre: [x]\n", "did you mean 'negation'"),
    ("triggers:\n  negation:\n    before: [x]\n", "use 'pre'"),
    ("findings:\n  X:\n    mentions: ['re:(unclosed']\n", "bad regular expression"),
    ("findings:\n  X:\n    mentions: ['... x']\n", "must not start or end"),
    ("findings:\n  'No Finding':\n    mentions: [x]\n", "computed from the other findings"),
    ("triggers:\n  negation:\n    pre: [zork]\n  uncertainty:\n    pre: [zork]\n", "keep one"),
    ("- just a list\n", "must be a mapping"),
    ("findings: {X: {mentions: [x]\n", "not valid YAML"),
])
def test_bad_rules_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text(content, encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        ReportLabeler(rules=[rules]).load()


def test_missing_rules_file() -> None:
    with pytest.raises(RulesError, match="does not exist"):
        ReportLabeler(rules=["/nonexistent/rules.yaml"]).load()


def test_yes_and_no_stay_words_in_rules(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("triggers:\n  negation:\n    pre: [no, off]\n", encoding="utf-8")
    labeler = ReportLabeler(rules=[rules]).load()  # plain YAML reads these as booleans
    labels = labeler.label("FINDINGS: Off effusion. No pneumothorax.").labels
    assert labels["Effusion"] is Certainty.NEGATIVE  # "off" is a negation trigger, a word
    assert labels["Pneumothorax"] is Certainty.NEGATIVE


def test_constructor_does_no_io() -> None:
    labeler = ReportLabeler(rules=["/does/not/exist.yaml"])  # no error until load()
    assert labeler.matcher_ is None
