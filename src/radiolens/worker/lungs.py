"""The worker's lung segmentation: which model, and what a reader is told about it.

``radiolens serve --lung-model`` names a segmentation run directory, ``builtin:lungs``
(the default) or ``none``. When the default is not installed the service logs one
warning and scores without lung masks. Each scored study then gets the lung mask of the
image shown with its heatmap, a plausibility check ("check image: ...", the study is
still scored) and, per flagged finding, the share of its heatmap inside the lungs
("AI attention outside the lungs: check" when it is low).

Importing this module loads nothing heavy; :func:`check_lung_model` reads ``model.json``
only (the supervisor checks the setting before anything starts), and
:func:`load_lung_model` loads the network in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from radiolens.errors import CheckpointError, ConfigError

__all__ = ["DEFAULT_LUNG_MODEL", "LungModel", "attention_warning", "check_lung_model",
           "image_check", "load_lung_model", "lung_cautions", "lung_model_setting"]

logger = logging.getLogger(__name__)

#: The lung model the service uses unless told otherwise.
DEFAULT_LUNG_MODEL = "builtin:lungs"
#: The setting that turns the lung segmentation off.
OFF = "none"


@dataclass(frozen=True)
class LungModel:
    """A loaded lung segmenter, the name it was given by, and whether the classifier's
    own preprocessing uses this very model (then its masks feed the classifier too,
    and each image is segmented once)."""

    segmenter: Any
    name: str
    feeds_classifier: bool = False

    @property
    def version(self) -> str:
        """The radiolens version that trained the segmentation model ("" if unknown)."""
        info = getattr(self.segmenter, "info_", None)
        return str(getattr(info, "radiolens_version", "") or "")


def lung_model_setting(ref: str | None) -> str | None:
    """The lung model to load, or None when the setting turns it off (``none``, empty)."""
    text = (ref or "").strip()
    return None if text.lower() in ("", OFF) else text


def _default_missing(ref: str) -> bool:
    from radiolens.models.info import builtin_names

    prefix = "builtin:"
    return (ref == DEFAULT_LUNG_MODEL
            and DEFAULT_LUNG_MODEL[len(prefix):] not in builtin_names())


def check_lung_model(ref: str | None) -> None:
    """Refuse a ``--lung-model`` that is not a segmentation model, before anything
    starts (reads ``model.json`` only). The default builtin may be missing.

    Raises:
        ConfigError: the setting names no segmentation model.
    """
    from radiolens.segment.info import read_seg_info

    name = lung_model_setting(ref)
    if name is None or _default_missing(name):
        return
    try:
        read_seg_info(name)
    except CheckpointError as exc:
        raise ConfigError(f"--lung-model {name}: {exc}; or turn the lung segmentation off "
                          "with --lung-model none") from None


def load_lung_model(ref: str | None, predictor: Any, device: str = "cpu") -> LungModel | None:
    """Load the lung segmenter the worker uses (None: off, or the default is missing).

    When the classifier crops or dims with the same lung model, its segmenter is shared.

    Raises:
        ConfigError: an explicitly named lung model cannot be loaded.
    """
    name = lung_model_setting(ref)
    if name is None:
        logger.info("lung segmentation off (--lung-model none)")
        return None
    uses_lungs = bool(getattr(predictor, "uses_lungs", False))
    own = predictor.info_.preprocessing.lung_model if uses_lungs else None
    if own == name:
        return LungModel(predictor.lung_segmenter(), name, feeds_classifier=True)
    if _default_missing(name):
        logger.warning("the lung segmentation model %s is not installed: studies are "
                       "scored without lung masks, lung checks or lung outputs (give "
                       "--lung-model RUN_DIR, or --lung-model none to say so)", name)
        return None
    from radiolens.segment import LungSegmenter

    try:
        segmenter = LungSegmenter(name, device=device).load()
    except CheckpointError as exc:
        raise ConfigError(f"--lung-model {name}: {exc}; or turn the lung segmentation off "
                          "with --lung-model none") from None
    if uses_lungs:
        logger.info("the classifier segments with its own lung model %s; %s makes the "
                    "lung masks, checks and outputs", own, name)
    return LungModel(segmenter, name)


def image_check(quality: Any) -> str | None:
    """The reasons a lung mask failed its plausibility check, joined, or None if it passed."""
    if quality.ok:
        return None
    return "; ".join(quality.reasons) or "implausible lung mask"


def _outside(flags: Sequence[str], heat_in_lungs: Mapping[str, float]) -> list[str]:
    from radiolens.explain.lungs import attention_outside

    return [n for n in flags if attention_outside(heat_in_lungs.get(n))]


def attention_warning(flags: Sequence[str], heat_in_lungs: Mapping[str, float]) -> str | None:
    """The worklist's words for flagged findings whose heatmap lies mostly outside the
    lungs, e.g. ``"AI attention outside the lungs: check (Pneumonia 23 %)"``; None if none."""
    from radiolens.drafts.text import percent
    from radiolens.explain.lungs import ATTENTION_WARNING

    names = _outside(flags, heat_in_lungs)
    if not names:
        return None
    return (f"{ATTENTION_WARNING} ("
            + ", ".join(f"{n} {percent(heat_in_lungs[n])}" for n in names) + ")")


def lung_cautions(flags: Sequence[str], heat_in_lungs: Mapping[str, float],
                  check: str | None) -> tuple[str, ...]:
    """The sentences the draft carries about the lungs: the image check, then one
    :data:`~radiolens.explain.lungs.ATTENTION_WARNING` per flagged finding whose heatmap
    lies mostly outside the lungs."""
    from radiolens.drafts.text import human_name, percent
    from radiolens.explain.lungs import ATTENTION_WARNING

    out: list[str] = []
    if check:
        out.append(f"Check image: {check} (lung segmentation); the AI result may not "
                   "apply to this image.")
    out += [f"{ATTENTION_WARNING} ({human_name(n)}: {percent(heat_in_lungs[n])} of the "
            "heatmap lies inside the lungs)." for n in _outside(flags, heat_in_lungs)]
    return tuple(out)
