"""Score one study: lung masks, predictions, Grad-CAM heatmaps, priority, the drafts.

The scores and the draft text are the triage result. A structured output (SR, FHIR,
HL7, heatmap, lung mask, lung Segmentation) that cannot be built never fails triage: it
is listed in ``ScoredStudy.output_errors`` and the worker retries it later. With a lung
model (:mod:`radiolens.worker.lungs`) every image is segmented once; the mask feeds a
classifier that crops to the lungs, and the mask of the image shown with the heatmap is
written as ``lung_mask.png`` and ``lung_seg.dcm``. An implausible mask does not stop
scoring: the study carries ``image_check``, and a flagged finding whose heatmap lies
mostly outside the lungs says so in the draft. With ``defer_outputs`` a study is
finished in two steps: what the worklist and the viewer need at once (scores, flags,
priority, heatmaps, draft, lung mask) first, the standard outputs for the PACS and RIS
(SR, lung Segmentation, heatmap Secondary Capture, FHIR, HL7) when
:meth:`ScoredStudy.build_pending` is called. Images that fail the input
gate (:func:`radiolens.imaging.gate.assess_image`) are not scored: when no image passes,
:class:`NeedsCheck` is raised and the study becomes ``needs-check``. Messages name files
relative to the data folder, never by absolute path.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from radiolens.errors import ImageReadError, RadiolensError
from radiolens.worker.lungs import LungModel
from radiolens.worker.policy import TriagePolicy

__all__ = ["LATER_OUTPUTS", "NeedsCheck", "ScoredStudy", "relative_message",
           "score_studies", "score_study", "segment_pending"]

logger = logging.getLogger(__name__)

#: The outputs ``defer_outputs`` leaves for :meth:`ScoredStudy.build_pending`. ``lungs``
#: (the lung mask, its check, heat in lungs and the draft's cautions) is left for later
#: too when the classifier does not need the masks itself.
LATER_OUTPUTS = ("lungs", "sr", "fhir", "hl7", "lung_seg", "heatmap_sc")


@dataclass
class ScoredStudy:
    """What :func:`score_study` produced for the worklist."""

    findings: dict[str, float]
    flags: list[str]
    thresholds: dict[str, float]
    priority: int
    heatmap_paths: dict[str, str]
    draft_text: str
    sr_path: str | None
    fhir_path: str | None
    hl7_path: str | None
    heatmap_sc_paths: dict[str, str]
    output_errors: dict[str, str] = field(default_factory=dict)
    #: ``results/<uid>/lung_mask.png`` and ``lung_seg.dcm`` (None: no lung model, or failed)
    lung_mask_path: str | None = None
    lung_seg_path: str | None = None
    #: why the shown image's lung mask is implausible (None: plausible, or no lung model)
    image_check: str | None = None
    #: flagged finding -> share of its heatmap inside the lungs
    heat_in_lungs: dict[str, float] = field(default_factory=dict)
    #: what the worklist stores about the lungs (see ``radiolens.worklist.Study.lungs``)
    lungs: dict[str, Any] | None = None
    #: outputs not built yet (names from :data:`LATER_OUTPUTS`): see :meth:`build_pending`
    pending: tuple[str, ...] = ()
    #: the images whose lungs :meth:`build_pending` segments (when ``lungs`` is pending)
    lung_images: list[Any] = field(default_factory=list, repr=False, compare=False)
    _later: Any = field(default=None, repr=False, compare=False)

    def build_pending(self, segmentations: list[Any] | None = None) -> None:
        """Build the outputs left for later and fill in what they give: the paths
        (``sr_path``, ``fhir_path``, ``hl7_path``, ``lung_seg_path``,
        ``heatmap_sc_paths``), ``output_errors`` and, when the lungs were left for later,
        ``lungs``, ``image_check``, ``heat_in_lungs``, ``lung_mask_path`` and the
        ``draft_text`` with its lung cautions. Does nothing when none is pending.
        ``segmentations``: those of ``lung_images``, made already (see
        :func:`segment_pending`); by default they are made here.

        Raises:
            OSError, WorklistError: a resource fault (disk full): nothing is marked
                built, so calling again later builds them all.
        """
        if self._later is None:
            return
        for name, value in self._later(segmentations).items():
            setattr(self, name, value)
        self._later, self.pending, self.lung_images = None, (), []


class NeedsCheck(Exception):
    """No image of the study passed the input gate; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def relative_message(text: str, data_dir: Path) -> str:
    """``text`` with the data folder's absolute path left out (paths become relative)."""
    for root in {str(data_dir.resolve()), str(data_dir.absolute()), str(data_dir)}:
        if root not in ("", "."):
            text = text.replace(root.rstrip("/") + "/", "").replace(root, ".")
    return text


def _gate(image: Any) -> str | None:
    """The input gate's reason to refuse an image, or None (no gate installed: None)."""
    try:
        from radiolens.imaging.gate import assess_xray
    except ImportError:
        return None
    return assess_xray(image)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "finding"


def _write(path: Path, data: bytes) -> None:
    from radiolens._fs import write_atomic

    write_atomic(path, data)


def _write_dicom(path: Path, ds: Any) -> None:
    """Encode ``ds`` as a DICOM file in memory, then write it atomically."""
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    _write(path, buffer.getvalue())


def _write_png(path: Path, rgb: Any) -> None:
    """Encode an RGB array as PNG in memory, then write it atomically."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    # compress level 1: about 4x faster than the default 6 at nearly the same size
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    _write(path, buffer.getvalue())


def score_study(data_dir: Path, study_uid: str, instance_paths: list[str], predictor: Any,
                policy: TriagePolicy, model_name: str, *, heatmaps: bool = True,
                lungs: LungModel | None = None, defer_outputs: bool = False) -> ScoredStudy:
    """Score every image of a study and write the results under ``results/<uid>/``.

    The study's probability for a finding is the highest over its images; the heatmap of
    a flagged finding is made on the image that scored highest for it. ``lungs``: the
    lung segmentation (None: none); the lung outputs are of the shown image (see
    :func:`shown_image`). ``defer_outputs``: leave the standard outputs
    (:data:`LATER_OUTPUTS`) to :meth:`ScoredStudy.build_pending`.

    Raises:
        ImageReadError: no image of the study can be read (retrying will not help).
        NeedsCheck: no readable image passed the input gate.
        OSError: a result file cannot be written (disk full: a resource fault).
    """
    read = _read_study(data_dir, study_uid, instance_paths)
    segs, lung_error = _segment(lungs, read.images, study_uid, data_dir)
    preds = _predict(predictor, read.images, _model_masks(lungs, segs))
    return _finish(data_dir, read, segs, lung_error, preds, predictor, policy, model_name,
                   heatmaps=heatmaps, lungs=lungs, defer_outputs=defer_outputs)


def score_studies(data_dir: Path, studies: Sequence[tuple[str, list[str]]], predictor: Any,
                  policy: TriagePolicy, model_name: str, *, heatmaps: bool = True,
                  lungs: LungModel | None = None, defer_outputs: bool = False
                  ) -> Iterator[tuple[int, ScoredStudy | Exception]]:
    """Score several studies together: one lung segmentation and one ``predict`` over all
    their images, then each study finished alone (heatmaps, draft, SR, FHIR, HL7, SEG).
    With ``defer_outputs`` and a classifier that does not crop by the lungs, the lungs
    are segmented later too, each study on its own, in :meth:`ScoredStudy.build_pending`.

    ``studies`` are ``(study UID, instance paths)``. Yields ``(index, outcome)`` for each
    study as soon as it is done (a study that cannot be read comes first): its
    :class:`ScoredStudy`, or the exception :func:`score_study` would have raised for it
    alone (:class:`NeedsCheck`, ``ImageReadError``, a model error). One study's failure
    never touches the others: a batched step that fails is run again study by study.
    With one study this is :func:`score_study`.

    Raises:
        OSError, WorklistError: a resource fault (see
            :func:`radiolens.worker.faults.resource_fault`); the studies not yet yielded
            are not done.

    Example:
        >>> for i, outcome in score_studies(data_dir, [(uid, paths)], predictor, policy,
        ...                                 "builtin:x"):  # doctest: +SKIP
        ...     print(uid, outcome)
    """
    from radiolens.worker.faults import resource_fault

    reads: dict[int, _Read] = {}
    for i, (uid, paths) in enumerate(studies):
        failed: Exception | None = None
        try:
            reads[i] = _read_study(data_dir, uid, paths)
        except Exception as exc:
            if resource_fault(exc):
                raise
            failed = exc
        if failed is not None:
            yield i, failed
    if not reads:
        return
    # triage first: a classifier that does not crop by the lungs is not kept waiting
    lungs_later = defer_outputs and lungs is not None and not lungs.feeds_classifier
    lung_of = ({i: (None, None) for i in reads} if lungs_later
               else _segment_batch(lungs, reads, data_dir))
    preds_of = _predict_batch(predictor, reads, {
        i: _model_masks(lungs, segs) for i, (segs, _) in lung_of.items()})
    for i, read in reads.items():
        outcome: ScoredStudy | Exception
        preds = preds_of[i]
        if isinstance(preds, Exception):
            outcome = preds
        else:
            segs, lung_error = lung_of[i]
            try:
                outcome = _finish(data_dir, read, segs, lung_error, preds, predictor, policy,
                                  model_name, heatmaps=heatmaps, lungs=lungs,
                                  defer_outputs=defer_outputs, lungs_later=lungs_later)
            except Exception as exc:
                if resource_fault(exc):
                    raise
                outcome = exc
        yield i, outcome


@dataclass
class _Read:
    """The images of a study that were read and passed the input gate, with headers."""

    uid: str
    images: list[Any]
    datasets: list[Any]


def _read_study(data_dir: Path, study_uid: str, instance_paths: list[str]) -> _Read:
    """Read and gate a study's images.

    Raises:
        ImageReadError: no image can be read. NeedsCheck: none passed the gate.
        OSError: a resource fault while reading.
    """
    import pydicom

    from radiolens.imaging import read_image

    images, datasets, errors, refused = [], [], [], []
    for rel in instance_paths:
        path = data_dir / rel
        try:
            image = read_image(path)
            ds = pydicom.dcmread(path, stop_before_pixels=False)
        except (ImageReadError, pydicom.errors.InvalidDicomError) as exc:
            errors.append(relative_message(str(exc), data_dir))
            continue
        except OSError as exc:
            from radiolens.worker.faults import resource_fault

            if resource_fault(exc):
                raise
            errors.append(relative_message(str(exc), data_dir))
            continue
        reason = _gate(image)
        if reason is not None:
            refused.append(f"{Path(rel).name}: {reason}")
            continue
        images.append(image)
        datasets.append(ds)
    if not images:
        if refused:
            raise NeedsCheck("; ".join(refused[:3]))
        raise ImageReadError(f"study {study_uid}: no readable image ("
                             + "; ".join(errors[:3]) + ")")
    if errors or refused:
        logger.warning("study %s: %d images unreadable, %d refused by the input gate",
                       study_uid, len(errors), len(refused))
    return _Read(study_uid, images, datasets)


def _model_masks(lungs: LungModel | None, segs: list[Any] | None) -> list[Any] | None:
    """The lung masks the classifier takes (one that crops to the lungs), or None."""
    if segs is None or lungs is None or not lungs.feeds_classifier:
        return None
    return [s.mask for s in segs]


def _predict(predictor: Any, images: list[Any], masks: list[Any] | None) -> list[Any]:
    return (predictor.predict(images, masks=masks) if masks is not None
            else predictor.predict(images))


def _split(items: list[Any], reads: dict[int, _Read]) -> dict[int, list[Any]]:
    """Cut a list over every image of ``reads`` back into one list per study."""
    out, start = {}, 0
    for i, read in reads.items():
        out[i] = items[start:start + len(read.images)]
        start += len(read.images)
    if start != len(items):
        raise ValueError(f"{start} images but {len(items)} results")
    return out


def _segment_batch(lungs: LungModel | None, reads: dict[int, _Read],
                   data_dir: Path) -> dict[int, tuple[list[Any] | None, str | None]]:
    """:func:`_segment` of each study, in one batched call; study by study if it fails."""
    if lungs is not None and len(reads) > 1:
        from radiolens.worker.faults import resource_fault

        pixels = [im.pixels for read in reads.values() for im in read.images]
        try:
            segs = _split(list(lungs.segmenter.segment_many(pixels)), reads)
        except Exception as exc:
            if resource_fault(exc):
                raise
            logger.warning("lung segmentation of %d studies together failed (%s: %s); "
                           "segmenting each alone", len(reads), type(exc).__name__,
                           relative_message(str(exc), data_dir))
        else:
            return {i: (s, None) for i, s in segs.items()}
    return {i: _segment(lungs, read.images, read.uid, data_dir) for i, read in reads.items()}


def _predict_batch(predictor: Any, reads: dict[int, _Read],
                   masks_of: dict[int, list[Any] | None]) -> dict[int, list[Any] | Exception]:
    """Each study's predictions from one ``predict`` over all images; study by study
    (each keeping its own error) if that fails."""
    from radiolens.worker.faults import resource_fault

    if len(reads) > 1:
        images = [im for read in reads.values() for im in read.images]
        masks = None
        if any(m is not None for m in masks_of.values()):
            masks = [m for i, read in reads.items()
                     for m in (masks_of[i] or [None] * len(read.images))]
        try:
            preds = _split(_predict(predictor, images, masks), reads)
        except Exception as exc:
            if resource_fault(exc):
                raise
            logger.warning("scoring %d studies together failed (%s); scoring each alone",
                           len(reads), type(exc).__name__)
        else:
            return dict(preds)
    out: dict[int, list[Any] | Exception] = {}
    for i, read in reads.items():
        try:
            out[i] = _predict(predictor, read.images, masks_of[i])
        except Exception as exc:
            if resource_fault(exc):
                raise
            out[i] = exc
    return out


def _finish(data_dir: Path, read: _Read, segs: list[Any] | None, lung_error: str | None,
            preds: list[Any], predictor: Any, policy: TriagePolicy, model_name: str, *,
            heatmaps: bool, lungs: LungModel | None, defer_outputs: bool = False,
            lungs_later: bool = False) -> ScoredStudy:
    """A study's findings, flags and priority from its predictions; its outputs written
    (the standard ones left to :meth:`ScoredStudy.build_pending` with ``defer_outputs``,
    and the lung segmentation too with ``lungs_later``)."""
    from radiolens.drafts import draft_report
    from radiolens.worker.lungs import image_check, lung_cautions

    study_uid, images, datasets = read.uid, read.images, read.datasets
    model_masks = _model_masks(lungs, segs)
    labels: list[str] = predictor.labels
    matrix = np.array([[p.probabilities[n] for n in labels] for p in preds])
    best_image = matrix.argmax(axis=0)
    findings = {n: float(matrix[:, j].max()) for j, n in enumerate(labels)}
    flags = [n for n in labels if policy.is_flagged(n, findings[n])]
    priority = policy.priority(findings)
    shown = shown_image(matrix, labels, flags)

    out_dir = data_dir / "results" / study_uid
    out_dir.mkdir(parents=True, exist_ok=True)
    out = _Outputs(data_dir, study_uid, out_dir, Path("results") / study_uid)
    if heatmaps:
        out.attempt("heatmap", lambda: _heatmaps(out, predictor, images, datasets, labels,
                                                 best_image, flags, model_masks, preds))

    def with_lungs(found: list[Any] | None, error: str | None,
                   known: bool = True) -> dict[str, Any]:
        """Heat in lungs, the lung check and mask, and the draft that says so
        (``known``: False before the lungs are segmented: their files are left alone)."""
        if error is not None:
            out.errors.update({"lung_mask": error, "lung_seg": error})
        summary = check = None
        if found is not None and lungs is not None:
            out.measure_heat([s.mask for s in found])
            check = image_check(found[shown].quality)
            summary = _lung_summary(lungs, found[shown], datasets[shown], flags, out)
            out.attempt("lung_mask", lambda: _lung_mask(out, found[shown]))
        elif known:
            _forget_lung_files(out_dir)
        out.result = _study_result(datasets[0], study_uid, model_name, labels, findings,
                                   flags, priority, policy,
                                   lung_cautions(flags, out.heat_in_lungs, check))
        out.draft = draft_report(out.result)
        _write(out_dir / "draft.txt", out.draft.full_text.encode("utf-8"))
        out.lung_seg = found[shown] if found is not None and lungs is not None else None
        return {"lungs": summary, "image_check": check, "draft_text": out.draft.full_text,
                "heat_in_lungs": dict(out.heat_in_lungs),
                "lung_mask_path": out.paths.get("lung_mask")}

    now = with_lungs(None, None, known=False) if lungs_later else with_lungs(segs, lung_error)

    def later(segmentations: list[Any] | None) -> dict[str, Any]:
        done: dict[str, Any] = {}
        if lungs_later:
            done = with_lungs(*((segmentations, None) if segmentations is not None else
                                _segment(lungs, images, study_uid, data_dir)))
        for name, idx, rgb in out.secondary_captures:
            out.attempt("heatmap", partial(_heatmap_sc, out, name, datasets[idx], rgb))
        if out.lung_seg is not None:
            assert lungs is not None
            out.attempt("lung_seg", partial(_lung_seg, out, datasets[shown], out.lung_seg,
                                            lungs))
        out.attempt("sr", lambda: _sr(out, out.result, datasets, out.draft))
        out.attempt("fhir", lambda: _fhir(out, out.result, out.draft))
        out.attempt("hl7", lambda: _hl7(out, out.result, out.draft))
        return {**done, "sr_path": out.paths.get("sr"), "fhir_path": out.paths.get("fhir"),
                "hl7_path": out.paths.get("hl7"), "lung_seg_path": out.paths.get("lung_seg"),
                "heatmap_sc_paths": dict(out.heatmap_sc_paths),
                "output_errors": dict(out.errors)}

    skipped = set() if lungs_later else {"lungs"}
    if lungs is None or (not lungs_later and out.lung_seg is None):
        skipped.add("lung_seg")
    if not out.secondary_captures:
        skipped.add("heatmap_sc")
    scored = ScoredStudy(findings=findings, flags=flags,
                         thresholds={n: float(policy.thresholds.get(n, 0.5)) for n in labels},
                         priority=priority, heatmap_paths=out.heatmap_paths,
                         draft_text=now["draft_text"], sr_path=None, fhir_path=None,
                         hl7_path=None, heatmap_sc_paths={}, output_errors=dict(out.errors),
                         lung_mask_path=now["lung_mask_path"], image_check=now["image_check"],
                         heat_in_lungs=now["heat_in_lungs"], lungs=now["lungs"],
                         pending=tuple(n for n in LATER_OUTPUTS if n not in skipped),
                         lung_images=list(images) if lungs_later else [], _later=later)
    if not defer_outputs:
        scored.build_pending()
    return scored


def segment_pending(lungs: LungModel | None, studies: Sequence[ScoredStudy]
                    ) -> list[list[Any] | None]:
    """The lung segmentations :meth:`ScoredStudy.build_pending` needs for each study, in
    one batched call; ``None`` for a study that needs none, or for all of them when the
    batch fails (then each study segments its own images and keeps its own error).

    Raises:
        OSError: a resource fault.
    """
    wanted = [s.lung_images for s in studies]
    if lungs is None or sum(len(w) > 0 for w in wanted) < 2:
        return [None] * len(studies)
    from radiolens.worker.faults import resource_fault

    try:
        found = list(lungs.segmenter.segment_many([im.pixels for w in wanted for im in w]))
    except Exception as exc:
        if resource_fault(exc):
            raise
        logger.warning("lung segmentation of %d studies together failed (%s); segmenting "
                       "each alone", len(studies), type(exc).__name__)
        return [None] * len(studies)
    out: list[list[Any] | None] = []
    start = 0
    for w in wanted:
        out.append(found[start:start + len(w)] if w else None)
        start += len(w)
    return out


def shown_image(matrix: Any, labels: list[str], flags: list[str]) -> int:
    """The image the viewer opens the study on: the one with the highest probability of
    a flagged finding (of any finding when none is flagged).

    Example:
        >>> shown_image(np.array([[0.9, 0.2], [0.1, 0.6]]), ["a", "b"], ["b"])
        1
    """
    cols = [labels.index(n) for n in flags] or list(range(len(labels)))
    return int(np.asarray(matrix)[:, cols].max(axis=1).argmax())


def _segment(lungs: LungModel | None, images: list[Any], uid: str,
             data_dir: Path) -> tuple[list[Any] | None, str | None]:
    """Each image's lung segmentation, or None and why (a failure is an output error:
    the lung outputs are retried, the study is scored without them)."""
    if lungs is None:
        return None, None
    from radiolens.worker.faults import resource_fault

    try:
        return list(lungs.segmenter.segment_many([im.pixels for im in images])), None
    except Exception as exc:
        if resource_fault(exc):
            raise
        reason = relative_message(f"{type(exc).__name__}: {exc}", data_dir)
        logger.error("study %s: no lung segmentation: %s", uid, reason,
                     exc_info=not isinstance(exc, RadiolensError))
        return None, reason


def _study_result(src: Any, study_uid: str, model_name: str, labels: list[str],
                  findings: dict[str, float], flags: list[str], priority: int,
                  policy: TriagePolicy, cautions: tuple[str, ...] = ()) -> Any:
    from radiolens import __version__
    from radiolens.drafts.model import result_from_header

    return result_from_header(
        src, study_uid=study_uid, model_name=model_name, model_version=__version__,
        findings={n: findings[n] for n in labels},
        thresholds={n: float(policy.thresholds.get(n, 0.5)) for n in labels}, flags=flags,
        priority=priority, scored_at=dt.datetime.now(dt.UTC),
        urgency={n: policy.urgency.get(n, 1) for n in labels}, cautions=cautions)


class _Outputs:
    """Where a study's outputs go, what was built and what failed."""

    def __init__(self, data_dir: Path, uid: str, out_dir: Path, rel_dir: Path) -> None:
        self.data_dir, self.uid, self.out_dir, self.rel_dir = data_dir, uid, out_dir, rel_dir
        self.paths: dict[str, str] = {}
        self.heatmap_paths: dict[str, str] = {}
        self.heatmap_sc_paths: dict[str, str] = {}
        self.heat_in_lungs: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        #: heatmap Secondary Captures still to make: (finding, image index, overlay RGB)
        self.secondary_captures: list[tuple[str, int, Any]] = []
        #: flagged finding -> (image index, heatmap), and what heatmaps.json says of them
        self.heats: dict[str, tuple[int, Any]] = {}
        self.heatmap_index: dict[str, dict[str, Any]] = {}
        #: the study result, its draft and the shown image's segmentation, once known
        self.result: Any = None
        self.draft: Any = None
        self.lung_seg: Any = None

    def measure_heat(self, lung_masks: list[Any]) -> None:
        """Each heatmap's share inside its image's lungs, recorded in heatmaps.json."""
        from radiolens.explain import heat_in_lungs

        for name, (idx, heat) in self.heats.items():
            fraction = heat_in_lungs(heat, lung_masks[idx])
            if fraction is not None:
                self.heat_in_lungs[name] = fraction
                self.heatmap_index[name]["heat_in_lungs"] = round(fraction, 4)
        if self.heats:
            _write(self.out_dir / "heatmaps.json",
                   json.dumps(self.heatmap_index, indent=1).encode("utf-8"))

    def attempt(self, name: str, build: Any) -> None:
        """Run ``build``; any failure but a resource fault is recorded, not raised."""
        from radiolens.worker.faults import resource_fault

        try:
            build()
        except Exception as exc:
            if resource_fault(exc):
                raise
            reason = relative_message(f"{type(exc).__name__}: {exc}", self.data_dir)
            self.errors[name] = reason
            logger.error("study %s: no %s output: %s", self.uid, name, reason,
                         exc_info=not isinstance(exc, RadiolensError))


def _heatmaps(out: _Outputs, predictor: Any, images: list[Any], datasets: list[Any],
              labels: list[str], best_image: Any, flags: list[str],
              model_masks: list[Any] | None = None,
              preds: list[Any] | None = None) -> None:
    """Grad-CAM of each flagged finding on its best image (``model_masks`` go to a
    classifier that crops), kept for :meth:`_Outputs.measure_heat`. ``preds``: the
    images' predictions; their class activation maps, where the backend gave them, make
    the heatmaps free (no second pass)."""
    from radiolens.explain import overlay_heatmap

    for name in flags:  # a heatmap for each flagged finding (Grad-CAM: a backward pass)
        idx = int(best_image[labels.index(name)])
        heat = predictor.explain(images[idx], name,
                                 mask=model_masks[idx] if model_masks is not None else None,
                                 prediction=preds[idx] if preds is not None else None)
        rgb = overlay_heatmap(images[idx].pixels, heat)
        png = out.out_dir / f"heatmap_{_slug(name)}.png"
        _write_png(png, rgb)
        out.heatmap_paths[name] = str(out.rel_dir / png.name)
        # the plain importance map (0..255) for viewers that colour it themselves
        heat_u8 = (np.clip(np.asarray(heat, dtype=np.float32), 0, 1) * 255).round()
        map_png = out.out_dir / f"heatmap_{_slug(name)}_map.png"
        _write_png(map_png, heat_u8.astype(np.uint8))
        out.heatmap_index[name] = {"map": str(out.rel_dir / map_png.name),
                                   "sop_instance_uid": str(datasets[idx].get("SOPInstanceUID",
                                                                             ""))}
        out.heats[name] = (idx, heat)
        _write(out.out_dir / "heatmaps.json",
               json.dumps(out.heatmap_index, indent=1).encode("utf-8"))
        out.secondary_captures.append((name, idx, rgb))


def _heatmap_sc(out: _Outputs, name: str, source: Any, rgb: Any) -> None:
    """The heatmap overlay of ``name`` as a DICOM Secondary Capture of ``source``."""
    from radiolens.drafts import make_heatmap_sc

    try:
        sc = make_heatmap_sc(source, rgb)
        sc_path = out.out_dir / f"heatmap_{_slug(name)}_sc.dcm"
        _write_dicom(sc_path, sc)
        out.heatmap_sc_paths[name] = str(out.rel_dir / sc_path.name)
    except RadiolensError as exc:
        logger.warning("study %s: no heatmap Secondary Capture: %s", out.uid, exc)


def _lung_summary(lungs: LungModel, seg: Any, source: Any, flags: list[str],
                  out: _Outputs) -> dict[str, Any]:
    """What the worklist keeps about the lungs of the shown image."""
    from radiolens.worker.lungs import attention_warning

    return {"model": lungs.name, "sop_instance_uid": str(source.get("SOPInstanceUID", "")),
            "quality": seg.quality.as_dict(),
            "heat_in_lungs": {k: round(v, 4) for k, v in out.heat_in_lungs.items()},
            "attention_warning": attention_warning(flags, out.heat_in_lungs)}


def _lung_mask(out: _Outputs, seg: Any) -> None:
    """``lung_mask.png``: 8-bit, 0 background and 255 lung, at the image's size."""
    png = out.out_dir / "lung_mask.png"
    _write_png(png, seg.as_png_array())
    out.paths["lung_mask"] = str(out.rel_dir / png.name)


def _lung_seg(out: _Outputs, source: Any, seg: Any, lungs: LungModel) -> None:
    """``lung_seg.dcm``: the mask as a DICOM Segmentation referencing ``source``."""
    from radiolens.drafts import make_lung_seg

    path = out.out_dir / "lung_seg.dcm"
    _write_dicom(path, make_lung_seg(source, seg.mask, model_name=lungs.name,
                                     model_version=lungs.version))
    out.paths["lung_seg"] = str(out.rel_dir / path.name)


def _forget_lung_files(out_dir: Path) -> None:
    """Remove lung outputs of an earlier scoring that this one did not make again."""
    for name in ("lung_mask.png", "lung_seg.dcm"):
        (out_dir / name).unlink(missing_ok=True)


def _sr(out: _Outputs, result: Any, datasets: list[Any], draft: Any) -> None:
    from radiolens.drafts import make_sr

    _write_dicom(out.out_dir / "sr.dcm", make_sr(result, datasets, draft))
    out.paths["sr"] = str(out.rel_dir / "sr.dcm")


def _fhir(out: _Outputs, result: Any, draft: Any) -> None:
    from radiolens.drafts import make_fhir_bundle

    bundle = make_fhir_bundle(result, draft)
    _write(out.out_dir / "fhir.json", json.dumps(bundle, indent=2).encode("utf-8"))
    out.paths["fhir"] = str(out.rel_dir / "fhir.json")


def _hl7(out: _Outputs, result: Any, draft: Any) -> None:
    from radiolens.drafts import make_oru

    _write(out.out_dir / "oru.hl7", make_oru(result, draft).encode("utf-8"))
    out.paths["hl7"] = str(out.rel_dir / "oru.hl7")
