"""Find text burned into pixel data with Tesseract OCR.

Needs the ``pytesseract`` package (``pip install 'radiolens[privacy]'``) and the Tesseract
program (Debian/Ubuntu: ``apt-get install tesseract-ocr``). The recognised words are never
returned or logged, only how many there were, their confidence and where they lie, since
burned-in text is often the patient's name.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens.errors import MissingDependencyError

__all__ = [
    "DEFAULT_MIN_CHARS",
    "DEFAULT_MIN_CONFIDENCE",
    "OcrResult",
    "OcrUnavailableError",
    "TextDetector",
]

logger = logging.getLogger(__name__)

#: Tesseract word confidence (0-100) a word needs to count.
DEFAULT_MIN_CONFIDENCE = 60.0
#: Letters or digits a word needs to count (shorter ones are mostly noise).
DEFAULT_MIN_CHARS = 3
#: Images are scaled down to at most this many pixels on the long side before OCR.
_MAX_SIDE = 2048

TESSERACT_HINT = (
    "install the Tesseract program: apt-get install tesseract-ocr (Debian/Ubuntu), "
    "dnf install tesseract (Fedora), brew install tesseract (macOS); or pass --no-ocr to "
    "skip the burned-in text check"
)


class OcrUnavailableError(MissingDependencyError):
    """pytesseract or the Tesseract program is missing; the message says how to install it."""

    def __init__(self, package: str, extra: str = "privacy", hint: str | None = None) -> None:
        super().__init__(package, extra)
        if hint is not None:  # a program, not a pip package: say how to install it
            self.msg = f"this feature needs {package!r}, which is not installed; {hint}"
            self.args = (self.msg,)


@dataclass(frozen=True)
class OcrResult:
    """What OCR found in one image (never the words themselves).

    Attributes:
        n_words: words above the confidence and length thresholds.
        max_confidence: the highest confidence among them (0 when none).
        boxes: ``(left, top, width, height)`` of each counted word, in image pixels.
    """

    n_words: int = 0
    max_confidence: float = 0.0
    boxes: tuple[tuple[int, int, int, int], ...] = field(default_factory=tuple)

    @property
    def text_found(self) -> bool:
        """Whether any word passed the thresholds."""
        return self.n_words > 0


class TextDetector:
    """Detects burned-in text in greyscale images with Tesseract.

    Args:
        min_confidence: Tesseract confidence (0-100) a word needs.
        min_chars: letters or digits a word needs.

    Example:
        >>> detector = TextDetector().load()         # doctest: +SKIP
        >>> detector.detect(pixels).text_found       # doctest: +SKIP
        False
    """

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 min_chars: int = DEFAULT_MIN_CHARS) -> None:
        self.min_confidence = min_confidence
        self.min_chars = min_chars

    def load(self) -> TextDetector:
        """Check that pytesseract and Tesseract are installed.

        Raises:
            OcrUnavailableError: either is missing (with the install command).
        """
        try:
            import pytesseract
        except ImportError:
            raise OcrUnavailableError("pytesseract") from None
        cmd = getattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
        if shutil.which(cmd) is None:
            raise OcrUnavailableError("tesseract", hint=TESSERACT_HINT)
        try:
            self.version_ = str(pytesseract.get_tesseract_version())
        except Exception as exc:  # pytesseract raises its own kinds when it cannot run it
            raise OcrUnavailableError("tesseract", hint=f"{TESSERACT_HINT} ({exc})") from None
        self.pytesseract_: Any = pytesseract
        return self

    def detect(self, pixels: npt.NDArray[Any]) -> OcrResult:
        """Run OCR on a greyscale image (``float`` in [0, 1], or ``uint8``).

        Both polarities are tried (dark text on light, light text on dark), as annotations
        on radiographs are usually white.
        """
        if not hasattr(self, "pytesseract_"):
            self.load()
        from PIL import Image

        arr = np.asarray(pixels)
        if arr.dtype != np.uint8:
            arr = (np.clip(np.nan_to_num(arr.astype(np.float64)), 0.0, 1.0) * 255).round()
            arr = arr.astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
        scale = 1.0
        if max(img.size) > _MAX_SIDE:
            scale = _MAX_SIDE / max(img.size)
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        best = OcrResult()
        for candidate in (img, Image.eval(img, lambda v: 255 - v)):
            found = self._words(candidate, scale)
            if found.n_words > best.n_words:
                best = found
        return best

    def _words(self, img: Any, scale: float) -> OcrResult:
        pt = self.pytesseract_
        data = pt.image_to_data(img, output_type=pt.Output.DICT, config="--psm 11")
        boxes: list[tuple[int, int, int, int]] = []
        confidences: list[float] = []
        for i, word in enumerate(data.get("text", [])):
            try:
                conf = float(data["conf"][i])
            except (TypeError, ValueError):
                continue
            chars = sum(ch.isalnum() for ch in str(word))
            if conf < self.min_confidence or chars < self.min_chars:
                continue
            confidences.append(conf)
            left, top, width, height = (round(int(data[k][i]) / scale)
                                        for k in ("left", "top", "width", "height"))
            boxes.append((left, top, width, height))
        return OcrResult(len(boxes), max(confidences, default=0.0), tuple(boxes))
