from __future__ import annotations

import pytest

from radiolens import DISCLAIMER
from radiolens.drafts import (
    DRAFT_HEADER,
    NO_ACUTE_FINDING,
    FindingScore,
    StudyResult,
    draft_report,
)
from radiolens.drafts.text import human_name, likelihood_phrase
from radiolens.errors import DraftError

from .conftest import make_result


def test_nothing_flagged_names_what_the_model_assessed_and_negatives() -> None:
    r = make_result(FindingScore("Pneumonia", 0.1, 0.5, False),
                    FindingScore("Pleural_Thickening", 0.3, 0.4, False))
    d = draft_report(r)
    assert d.impression == ("No pleural thickening or pneumonia detected by the AI model "
                            "(this model assesses these findings only).")
    assert NO_ACUTE_FINDING not in d.full_text
    assert "No radiographic evidence of pneumonia." in d.findings_text
    assert "No radiographic evidence of pleural thickening." in d.findings_text
    assert "Possible" not in d.full_text and "Probable" not in d.full_text


def test_one_flagged_finding() -> None:
    r = make_result(FindingScore("Pneumonia", 0.87, 0.5, True),
                    FindingScore("Effusion", 0.1, 0.5, False))
    d = draft_report(r)
    assert d.impression == "1. Findings consistent with pneumonia."
    assert "Findings consistent with pneumonia (AI probability 87 %" in d.findings_text
    assert "No radiographic evidence of pleural effusion." in d.findings_text
    assert NO_ACUTE_FINDING not in d.full_text


@pytest.mark.parametrize(("p", "t", "expected"), [
    (0.55, 0.5, "Possible pneumonia"),
    (0.72, 0.5, "Probable pneumonia"),
    (0.95, 0.5, "Findings consistent with pneumonia"),
    (0.5, 0.5, "Possible pneumonia"),
    (1.0, 1.0, "Findings consistent with pneumonia"),
])
def test_likelihood_words_follow_margin(p: float, t: float, expected: str) -> None:
    assert likelihood_phrase(FindingScore("Pneumonia", p, t, True)) == expected


@pytest.mark.parametrize(("label", "human"), [
    ("Pleural_Thickening", "pleural thickening"),
    ("Abnormal", "abnormality"),
    ("Effusion", "pleural effusion"),
    ("Cardiomegaly", "cardiomegaly"),
    ("Lung Opacity", "lung opacity"),
])
def test_human_names(label: str, human: str) -> None:
    assert human_name(label) == human


def test_flagged_findings_ordered_by_urgency_then_margin() -> None:
    r = make_result(
        FindingScore("Cardiomegaly", 0.99, 0.5, True, urgency=1),
        FindingScore("Pneumothorax", 0.55, 0.5, True, urgency=3),
        FindingScore("Pneumonia", 0.9, 0.5, True, urgency=2),
        FindingScore("Edema", 0.6, 0.5, True, urgency=2),
    )
    d = draft_report(r)
    assert d.impression.splitlines() == [
        "1. Possible pneumothorax.",
        "2. Findings consistent with pneumonia.",
        "3. Possible pulmonary edema.",
        "4. Findings consistent with cardiomegaly.",
    ]
    lines = d.findings_text.splitlines()
    assert lines[0].startswith("Possible pneumothorax")
    assert lines[3].startswith("Findings consistent with cardiomegaly")


def test_disclaimer_and_header_always_present(mixed_result: StudyResult) -> None:
    for r in (mixed_result, make_result(FindingScore("Abnormal", 0.2, 0.5, False))):
        d = draft_report(r)
        assert d.disclaimer == DISCLAIMER
        assert d.full_text.startswith(DRAFT_HEADER)
        assert d.full_text.endswith(DISCLAIMER)
        assert "never replaces the radiologist" in d.full_text


def test_deterministic_and_independent_of_input_order() -> None:
    fs = [FindingScore("Pneumonia", 0.87, 0.5, True), FindingScore("Mass", 0.7, 0.6, True),
          FindingScore("Effusion", 0.1, 0.5, False), FindingScore("Atelectasis", 0.2, 0.5, False)]
    a = draft_report(make_result(*fs))
    b = draft_report(make_result(*reversed(fs)))
    assert a == draft_report(make_result(*fs))
    assert a == b


def test_no_finding_label_is_not_phrased() -> None:
    d = draft_report(make_result(FindingScore("No Finding", 0.9, 0.5, True),
                                 FindingScore("Pneumonia", 0.1, 0.5, False)))
    assert "no finding" not in d.full_text.lower()
    assert d.impression == ("No pneumonia detected by the AI model (this model assesses "
                            "pneumonia only).")


def test_a_normal_vs_abnormal_model_says_no_acute_abnormality() -> None:
    d = draft_report(make_result(FindingScore("Abnormal", 0.2, 0.5, False)))
    assert d.impression == NO_ACUTE_FINDING


def test_many_findings_are_counted_not_claimed() -> None:
    names = ["Atelectasis", "Cardiomegaly", "Edema", "Effusion", "Mass"]
    d = draft_report(make_result(*(FindingScore(n, 0.1, 0.5, False) for n in names)))
    assert d.impression.startswith("None of the 5 findings this model assesses")
    assert "does not assess other abnormalities" in d.impression


@pytest.mark.parametrize(("p", "text"), [(0.999, ">99 %"), (1.0, ">99 %"), (0.004, "<1 %"),
                                         (0.5, "50 %"), (0.99, "99 %")])
def test_percentages_never_read_as_certainty(p: float, text: str) -> None:
    from radiolens.drafts.text import percent

    assert percent(p) == text


@pytest.mark.parametrize("kwargs", [
    {"study_instance_uid": "not-a-uid"},
    {"patient_id": " "},
    {"findings": ()},
    {"scored_at": __import__("datetime").datetime(2024, 1, 1)},
    {"findings": (FindingScore("Mass", 0.1, 0.5, False), FindingScore("Mass", 0.2, 0.5, False))},
])
def test_invalid_results_raise_draft_error(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"findings": (FindingScore("Mass", 0.1, 0.5, False),)}
    base.update(kwargs)
    findings = base.pop("findings")
    with pytest.raises(DraftError):
        make_result(*findings, **base)  # type: ignore[misc]


@pytest.mark.parametrize(("p", "t"), [(1.5, 0.5), (0.5, -0.1), (float("nan"), 0.5)])
def test_out_of_range_scores_raise(p: float, t: float) -> None:
    with pytest.raises(DraftError, match=r"\[0, 1\]"):
        FindingScore("Mass", p, t, False)


def test_numpy_scores_become_plain_floats() -> None:
    import numpy as np

    f = FindingScore("Mass", np.float32(0.25), np.float64(0.5), np.bool_(False))  # type: ignore[arg-type]
    assert type(f.probability) is float and type(f.threshold) is float
    assert f.flagged is False
