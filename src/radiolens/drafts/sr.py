"""DICOM outputs: a Comprehensive SR with the scores and the draft, and a heatmap capture.

The SR follows TID 1500 (Measurement Report): one measurement group per finding with the
model probability (DCM "Certainty of Finding", in %), the operating threshold (local code),
and the call as SCT "Presence" = Present/Absent. The draft text (findings, impression) and
the disclaimer are added as TEXT items under the root container, which the Comprehensive
SR IOD allows. The document is marked PRELIMINARY and UNVERIFIED.

Example:
    >>> sr = make_sr(result, [source_ds])          # doctest: +SKIP
    >>> sr.save_as("draft_sr.dcm", enforce_file_format=True)   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radiolens import DISCLAIMER, __version__
from radiolens.drafts._codes import LOCAL_SCHEME, local_code, snomed_code
from radiolens.drafts.model import FindingScore, SignedRead, StudyResult, valid_dicom_date
from radiolens.drafts.text import DRAFT_HEADER, DraftReport, draft_report, human_name
from radiolens.errors import DraftError

__all__ = [
    "FINAL_SR_SERIES_DESCRIPTION",
    "HEATMAP_SERIES_DESCRIPTION",
    "SR_SERIES_DESCRIPTION",
    "make_heatmap_sc",
    "make_sr",
]

logger = logging.getLogger(__name__)

#: SeriesDescription of the SR series.
SR_SERIES_DESCRIPTION = "radiolens AI draft (not for diagnosis)"
#: SeriesDescription of the signed (verified) SR series.
FINAL_SR_SERIES_DESCRIPTION = "radiolens signed report (AI-assisted)"
#: The reviewer's call -> SCT Presence value in the signed SR.
_CALL_CODES = {"present": codes.SCT.Present, "absent": codes.SCT.Absent,
               "uncertain": codes.SCT.Indeterminate}
#: SeriesDescription of the heatmap Secondary Capture series.
HEATMAP_SERIES_DESCRIPTION = "radiolens AI heatmap (not for diagnosis)"

_MANUFACTURER = "radiolens"
_SOFTWARE = f"radiolens {__version__}"
_PRESENCE = hd.sr.CodedConcept("705057003", "SCT", "Presence")
_THRESHOLD = hd.sr.CodedConcept("THRESHOLD", LOCAL_SCHEME, "AI operating threshold")
_PLAIN_CHEST_XRAY = hd.sr.CodedConcept("399208008", "SCT", "Plain chest X-ray")
_DEFAULT_ORIENTATION = ("L", "F")  # PA chest radiograph as usually displayed


def _finding_code(name: str) -> hd.sr.CodedConcept:
    coded = snomed_code(name)
    if coded is not None:
        return hd.sr.CodedConcept(coded[0], "SCT", coded[1])
    return hd.sr.CodedConcept(local_code(name), LOCAL_SCHEME, human_name(name).capitalize())


#: Type 2 attributes of the patient and study modules that highdicom copies from the first
#: source image; many real images leave some out, so an empty value is filled in.
_TYPE2 = ("PatientName", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate",
          "StudyTime", "AccessionNumber", "ReferringPhysicianName")


_DATES = ("PatientBirthDate", "StudyDate")


def _with_type2(ds: pydicom.Dataset) -> pydicom.Dataset:
    """A shallow copy of ``ds`` with every missing Type 2 patient/study attribute empty,
    and invalid dates emptied (with a warning that does not show the value)."""
    missing = [kw for kw in _TYPE2 if kw not in ds]
    bad = [kw for kw in _DATES if kw in ds and str(ds.get(kw) or "").strip()
           and not valid_dicom_date(str(ds.get(kw)).strip())]
    if not missing and not bad:
        return ds
    filled = ds.copy()
    for keyword in missing + bad:
        setattr(filled, keyword, "")
    for keyword in bad:
        logger.warning("source %s: %s is not a valid date; left empty in the output",
                       getattr(ds, "SOPInstanceUID", "?"), keyword)
    return filled


def _check_sources(result: StudyResult, sources: Sequence[pydicom.Dataset]) -> None:
    if not sources:
        raise DraftError("make_sr needs at least one source image to reference")
    for ds in sources:
        uid = str(getattr(ds, "StudyInstanceUID", ""))
        if uid != result.study_instance_uid:
            raise DraftError(
                f"source image {getattr(ds, 'SOPInstanceUID', '?')} belongs to study {uid!r}, "
                f"not to the scored study {result.study_instance_uid!r}; pass the images "
                "the model scored")
        pid = str(getattr(ds, "PatientID", ""))
        if pid != result.patient_id:
            raise DraftError(
                f"source image PatientID {pid!r} differs from the result's patient_id "
                f"{result.patient_id!r}; refusing to attach a draft to another patient")


def _group(result: StudyResult, f: FindingScore, sources: Sequence[pydicom.Dataset],
           algo: hd.sr.AlgorithmIdentification, call: str | None = None
           ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """One finding: the AI's certainty and threshold, and its presence (the AI's call, or
    the reviewer's ``call`` in a signed report)."""
    presence = (_CALL_CODES[call] if call is not None
                else codes.SCT.Present if f.flagged else codes.SCT.Absent)
    tracking_uid = generate_uid(entropy_srcs=[result.study_instance_uid, f.name,
                                              result.model_name, result.model_version])
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=f.name),
        algorithm_id=algo,
        finding_type=_finding_code(f.name),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds)
                       for ds in sources],
        measurements=[
            hd.sr.Measurement(name=codes.DCM.CertaintyOfFinding,
                              value=round(f.probability * 100.0, 4), unit=codes.UCUM.Percent),
            hd.sr.Measurement(name=_THRESHOLD, value=round(f.threshold * 100.0, 4),
                              unit=codes.UCUM.Percent),
        ],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=_PRESENCE, value=presence)],
    )


def make_sr(result: StudyResult, source_images: Sequence[pydicom.Dataset],
            draft: DraftReport | None = None, *, series_number: int = 990,
            read: SignedRead | None = None, previous: Sequence[pydicom.Dataset] = (),
            organization: str = "radiolens") -> pydicom.Dataset:
    """Build a Comprehensive SR for one study: the preliminary AI draft, or a signed read.

    Args:
        result: the model's result.
        source_images: the scored image(s); they must belong to the same study and patient.
            The patient and study modules are copied from the first one.
        draft: the draft text; drafted from ``result`` when omitted.
        series_number: SeriesNumber of the new SR series.
        read: a radiologist's signed read: the SR is then FINAL, COMPLETE and VERIFIED with
            the reviewer as verifying observer, their text and their call per finding.
        previous: earlier signed SRs this one amends (Predecessor Documents).
        organization: the verifying organization of a signed SR.

    Returns:
        The SR dataset (Comprehensive SR Storage, Explicit VR Little Endian); write it with
        ``save_as(path, enforce_file_format=True)``.

    Raises:
        DraftError: no source image, a source from another study or patient, or highdicom
            rejected the content.
    """
    _check_sources(result, source_images)
    draft = draft if draft is not None else draft_report(result)
    device_uid = generate_uid(entropy_srcs=["radiolens", result.model_name, result.model_version])
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid, name="radiolens", manufacturer_name=_MANUFACTURER,
        model_name=f"{result.model_name} {result.model_version}"[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    algo = hd.sr.AlgorithmIdentification(name=result.model_name, version=result.model_version)
    try:
        calls = read.calls if read is not None else {}
        groups = [_group(result, f, source_images, algo, calls.get(f.name))
                  for f in result.findings]
        report = hd.sr.MeasurementReport(observation_context=context,
                                         procedure_reported=_PLAIN_CHEST_XRAY,
                                         imaging_measurements=groups)
        root = report[0]
        texts: tuple[tuple[Any, str], ...]
        if read is None:
            texts = ((codes.DCM.Findings, draft.findings_text),
                     (codes.DCM.Impression, draft.impression),
                     (codes.DCM.Comment, f"{DRAFT_HEADER} {draft.disclaimer}"))
        else:
            texts = ((codes.DCM.Findings, read.text),
                     (codes.DCM.Comment, _signed_comment(result, read)))
        for name, value in texts:
            root.ContentSequence.append(hd.sr.TextContentItem(
                name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        sr = hd.sr.ComprehensiveSR(
            evidence=[_with_type2(ds) for ds in source_images], content=root,
            series_instance_uid=generate_uid(), series_number=series_number,
            sop_instance_uid=generate_uid(), instance_number=read.version if read else 1,
            manufacturer=_MANUFACTURER, manufacturer_model_name=result.model_name[:64],
            software_versions=_SOFTWARE,
            series_description=FINAL_SR_SERIES_DESCRIPTION if read else SR_SERIES_DESCRIPTION,
            is_complete=True, is_final=read is not None, is_verified=read is not None,
            verifying_observer_name=_person_name(read.reviewer) if read else None,
            verifying_organization=organization if read else None,
            previous_versions=list(previous) or None,
            transfer_syntax_uid=ExplicitVRLittleEndian)
        sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the draft text is not ASCII-only
    except (TypeError, ValueError, AttributeError) as exc:
        raise DraftError(f"cannot build the DICOM SR for study {result.study_instance_uid}: "
                         f"{exc}") from exc
    logger.info("built SR %s for study %s (%d findings)", sr.SOPInstanceUID,
                result.study_instance_uid, len(groups))
    return sr


def _person_name(user: str) -> str:
    """A user name as a DICOM person name: one component, with the trailing caret that
    marks a single-component name as intended."""
    return (user.replace("^", " ").strip()[:63] or "unknown") + "^"


def _signed_comment(result: StudyResult, read: SignedRead) -> str:
    calls = "; ".join(f"{human_name(k)}: {v}" for k, v in read.calls.items())
    kind = "Amended" if read.version > 1 else "Signed"
    return (f"{kind} by {read.reviewer} at {read.signed_at.isoformat(timespec='seconds')} "
            f"(version {read.version}). Reviewer's calls: {calls or 'none'}. AI assistance: "
            f"model {result.model_name} {result.model_version}; the AI scores in this "
            f"report are the model's, the calls and the text the radiologist's.")


def _orientation(source: pydicom.Dataset) -> tuple[str, str]:
    value = getattr(source, "PatientOrientation", None)
    if value is not None and not isinstance(value, str) and len(value) == 2:
        return str(value[0]), str(value[1])
    logger.info("source %s has no PatientOrientation; assuming %s (PA chest)",
                   getattr(source, "SOPInstanceUID", "?"), "\\".join(_DEFAULT_ORIENTATION))
    return _DEFAULT_ORIENTATION


def make_heatmap_sc(source: pydicom.Dataset, overlay_rgb: np.ndarray, *,
                    series_number: int = 991) -> pydicom.Dataset:
    """Build an RGB Secondary Capture of a heatmap overlay, in the source's study.

    Args:
        source: the scored image; patient and study modules are copied from it.
        overlay_rgb: ``uint8`` array of shape (rows, columns, 3).
        series_number: SeriesNumber of the new heatmap series.

    Returns:
        The Secondary Capture dataset (Explicit VR Little Endian), in a new series whose
        description marks it as an AI heatmap.

    Raises:
        DraftError: the overlay is not an H×W×3 ``uint8`` array, or highdicom rejected it.
    """
    arr = np.asarray(overlay_rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DraftError(f"overlay_rgb must be a uint8 array of shape (H, W, 3), got "
                         f"{arr.dtype} {arr.shape}; convert with np.asarray(img, np.uint8)")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DraftError(f"overlay_rgb is empty: shape {arr.shape}")
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source, pixel_array=np.ascontiguousarray(arr),
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=generate_uid(), series_number=series_number,
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer=_MANUFACTURER,
            patient_orientation=_orientation(source), transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=HEATMAP_SERIES_DESCRIPTION, software_versions=_SOFTWARE)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DraftError(f"cannot build the heatmap Secondary Capture: {exc}") from exc
    sc.SpecificCharacterSet = "ISO_IR 192"
    sc.BurnedInAnnotation = "NO"
    sc.ImageComments = f"AI heatmap overlay, not for diagnosis. {DISCLAIMER}"
    logger.info("built heatmap SC %s for study %s", sc.SOPInstanceUID, sc.StudyInstanceUID)
    return sc
