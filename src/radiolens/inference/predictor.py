"""Score radiographs with a trained model: the code both ``radiolens predict`` and the
triage service's worker use, with preprocessing identical to training."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from radiolens.data.preprocess import preprocess
from radiolens.errors import ConfigError, ImageReadError
from radiolens.imaging import XrayImage, read_image

__all__ = ["BACKENDS", "FilePrediction", "Prediction", "Predictor", "onnx_cache_path",
           "resolve_backend"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx", "openvino"]
Precision = Literal["auto", "fp32", "bf16"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "openvino")


def resolve_backend(backend: str) -> str:
    """``auto``: OpenVINO when installed (``radiolens[fast]``), else ONNX Runtime when
    installed, else PyTorch. Any other name is checked."""
    import importlib.util

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    from radiolens.models.openvino_runtime import openvino_available

    if openvino_available():
        return "openvino"
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"


def onnx_cache_path(run_dir: Path) -> Path:
    """Where the ONNX export of ``run_dir`` is cached: named by the SHA-256 of its weights
    and ``model.json``, so a retrained or re-thresholded model is exported again."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("model.safetensors", "model.json"):
        with (run_dir / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    root = Path(os.environ.get("RADIOLENS_CACHE") or Path.home() / ".cache" / "radiolens")
    return root / "onnx" / f"{digest.hexdigest()[:32]}.onnx"


@dataclass(frozen=True)
class Prediction:
    """Scores of one image.

    Attributes:
        probabilities: label name to probability, in the model's label order.
        thresholds: label name to the operating threshold from ``model.json``.
        flags: label name to ``probability >= threshold``.
    """

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def flagged(self) -> list[str]:
        """Labels at or above their threshold."""
        return [name for name, on in self.flags.items() if on]


@dataclass(frozen=True)
class FilePrediction:
    """A prediction for a file, or the reason it could not be read."""

    path: Path
    prediction: Prediction | None
    error: str | None = None


class Predictor:
    """Batched inference with a radiolens run directory (or ``builtin:NAME``).

    The constructor only stores settings; :meth:`load` reads the model.

    Args:
        checkpoint: a run directory, its ``model.json``, or ``builtin:NAME``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (torch backend only).
        batch_size: images per forward pass.
        backend: ``"auto"`` (OpenVINO, else ONNX Runtime, else PyTorch: the fastest one
            installed; all give the same calls), ``"openvino"``, ``"torch"`` (eager PyTorch)
            or ``"onnx"`` (ONNX Runtime on CPU; the run
            directory's ``model.onnx`` is used, or one is exported to a temporary folder).
        threads: CPU threads (default: torch's setting / 2 for ONNX Runtime).

    Example:
        >>> p = Predictor("builtin:pneumonia-kermany").load()       # doctest: +SKIP
        >>> p.predict_files(["chest.dcm"])[0].prediction.flagged   # doctest: +SKIP
        ['pneumonia']
    """

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "cpu",
                 batch_size: int = 16, backend: Backend = "torch",
                 threads: int | None = None, precision: Precision = "auto") -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads
        self.precision = precision

    # ------------------------------------------------------------------ loading
    def load(self) -> Predictor:
        """Read the model: the torch network for ``backend="torch"``; for ``"onnx"`` an
        ONNX Runtime session, without importing torch when ``model.onnx`` exists in the run
        directory or in the export cache (``$RADIOLENS_CACHE``, default
        ``~/.cache/radiolens``)."""
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        backend = resolve_backend(self.backend)
        if self.backend == "auto" and str(self.device).startswith("cuda"):
            backend = "torch"  # a GPU: PyTorch
        if backend != "torch" and str(self.device).startswith("cuda"):
            raise ConfigError(f"the {backend} backend runs on the CPU; use --backend torch "
                              "for --device cuda")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"unknown precision {self.precision!r}; use auto, fp32 or bf16")
        if self.precision == "bf16" and backend == "onnx":
            raise ConfigError("ONNX Runtime runs fp32 here; use --backend openvino (or torch) "
                              "for bf16")
        self.backend_ = backend
        from radiolens.models.info import read_model_info, resolve_run_dir

        self.run_dir_ = resolve_run_dir(self.checkpoint)
        self.info_ = read_model_info(self.checkpoint)
        self._model: Any = None
        self.session_: Any = None
        self.compiled_: Any = None
        if backend == "torch":
            import torch

            from radiolens.devices import resolve_device

            if self.threads is not None:
                torch.set_num_threads(self.threads)
            self.device_: Any = resolve_device(self.device)
            self._load_torch()
        elif backend == "onnx":
            from radiolens.models.onnx_runtime import onnx_session

            self.device_ = "cpu"
            self.session_ = onnx_session(self._onnx_file(), threads=self.threads or 2)
        else:
            from radiolens.models.openvino_runtime import openvino_model

            self.device_ = "cpu"
            self.compiled_ = openvino_model(self._onnx_file(), threads=self.threads or 2,
                                            precision=self.precision)
        return self

    @property
    def model_(self) -> Any:
        """The torch network (loaded on first use with the ONNX backend, e.g. for
        Grad-CAM)."""
        self._check_loaded()
        if self._model is None:
            self._load_torch()
        return self._model

    def _load_torch(self) -> None:
        import torch

        from radiolens.models.checkpoint import load_run

        device = self.device_ if isinstance(self.device_, torch.device) else torch.device("cpu")
        self._model, _ = load_run(self.checkpoint, device=device)
        self._torch_device = device

    def _onnx_file(self) -> Path:
        """The run directory's ``model.onnx``, else an export cached by weights hash."""
        own = self.run_dir_ / "model.onnx"
        if own.is_file():
            return own
        cached = onnx_cache_path(self.run_dir_)
        if not cached.is_file():
            from radiolens.models import export_onnx

            self._load_torch()
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
                path = export_onnx(self._model, self.info_, Path(tmp) / "model.onnx")
                os.replace(path, cached)
            logger.info("exported %s to ONNX once (cached in %s)", self.checkpoint, cached)
        return cached

    def _check_loaded(self) -> None:
        if not hasattr(self, "info_"):
            raise RuntimeError("call Predictor.load() first")

    @property
    def labels(self) -> list[str]:
        """Label names in output order."""
        self._check_loaded()
        return list(self.info_.labels)

    @property
    def thresholds(self) -> dict[str, float]:
        """Operating threshold per label (0.5 where ``model.json`` gives none)."""
        self._check_loaded()
        return {n: float(self.info_.thresholds.get(n, 0.5)) for n in self.info_.labels}

    # ------------------------------------------------------------ the numbers
    @property
    def uses_lungs(self) -> bool:
        """Whether this model's input needs a lung mask (``crop: lungs`` or dimming)."""
        self._check_loaded()
        return bool(self.info_.preprocessing.uses_lungs)

    def lung_segmenter(self) -> Any:
        """The :class:`~radiolens.segment.LungSegmenter` named by the model's
        preprocessing (loaded once)."""
        self._check_loaded()
        if getattr(self, "segmenter_", None) is None:
            from radiolens.segment import LungSegmenter

            self.segmenter_ = LungSegmenter(self.info_.preprocessing.lung_model).load()
        return self.segmenter_

    def prepare(self, image: XrayImage | npt.ArrayLike, mask: npt.ArrayLike | None = None
                ) -> tuple[npt.NDArray[np.float32], Any]:
        """The model input ``(C, S, S)`` for one image and the box of the image it covers
        (``None``: the whole image). ``mask``: the image's lung mask when the model crops
        or dims (segmented here when not given)."""
        self._check_loaded()
        pixels = image.pixels if isinstance(image, XrayImage) else np.asarray(image)
        pre = self.info_.preprocessing
        box = None
        if pre.uses_lungs:
            from radiolens.data.preprocess import lung_view

            if mask is None:
                mask = self.lung_segmenter().segment(pixels).mask
            pixels, _, box = lung_view(
                pixels, mask, crop=pre.crop == "lungs",
                dim=pre.dim_factor if pre.outside_lungs == "dim" else None,
                margin=pre.crop_margin)
        return preprocess(pixels, pre.image_size, pre.mean, pre.std, pre.channels), box

    def preprocess(self, image: XrayImage | npt.ArrayLike,
                   mask: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        """The model input for one image: ``(C, S, S)`` float32."""
        return self.prepare(image, mask)[0]

    def predict_batch(self, batch: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Probabilities ``(N, L)`` for preprocessed inputs ``(N, C, S, S)``."""
        self._check_loaded()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.compiled_ is not None:
            logits = np.asarray(self.compiled_(x)[0], dtype=np.float32)
            out_ov: npt.NDArray[np.float32] = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
            return out_ov
        if self.session_ is not None:
            logits = self.session_.run(None, {"image": x})[0]
            out: npt.NDArray[np.float32] = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
            return out
        import torch

        model = self.model_
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self._torch_device)
            probs = torch.sigmoid(model(t).float()).cpu().numpy()
        return probs.astype(np.float32)

    def _wrap(self, probs: npt.NDArray[np.float32]) -> Prediction:
        th = self.thresholds
        values = {n: float(probs[j]) for j, n in enumerate(self.labels)}
        return Prediction(values, th, {n: values[n] >= th[n] for n in values})

    def predict(self, images: Sequence[XrayImage | npt.ArrayLike],
                masks: Sequence[npt.ArrayLike | None] | None = None) -> list[Prediction]:
        """Score images (``XrayImage`` or 2-D arrays in [0, 1]), in batches; ``masks``:
        their lung masks when already known (models that crop to the lungs)."""
        out: list[Prediction] = []
        given = list(masks) if masks is not None else [None] * len(images)
        if len(given) != len(images):
            raise ValueError(f"{len(images)} images but {len(given)} masks")
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            mchunk = given[start:start + self.batch_size]
            probs = self.predict_batch(np.stack([self.preprocess(im, m)
                                                 for im, m in zip(chunk, mchunk, strict=True)]))
            out.extend(self._wrap(row) for row in probs)
        return out

    def iter_files(self, paths: Iterable[str | os.PathLike[str]]) -> Iterator[FilePrediction]:
        """Score image files in batches, in input order; an unreadable file yields its
        error instead of a prediction (never silently dropped)."""
        pending: list[tuple[Path, npt.NDArray[np.float32] | None, str | None]] = []

        def flush() -> Iterator[FilePrediction]:
            inputs = [x for _, x, _ in pending if x is not None]
            batch = self.predict_batch(np.stack(inputs)) if inputs else np.zeros((0, 1))
            probs: Iterator[npt.NDArray[np.float32]] = iter(batch)
            for path, x, error in pending:
                if x is None:
                    yield FilePrediction(path, None, error)
                else:
                    yield FilePrediction(path, self._wrap(next(probs)))
            pending.clear()

        n_inputs = 0
        for raw in paths:
            path = Path(raw)
            try:
                pending.append((path, self.preprocess(read_image(path)), None))
                n_inputs += 1
            except ImageReadError as exc:
                pending.append((path, None, str(exc)))
            if n_inputs >= self.batch_size:
                yield from flush()
                n_inputs = 0
        yield from flush()

    def predict_files(self, paths: Iterable[str | os.PathLike[str]]) -> list[FilePrediction]:
        """List form of :meth:`iter_files`."""
        return list(self.iter_files(paths))

    # ------------------------------------------------------------ explanation
    def explain(self, image: XrayImage | npt.ArrayLike, label: str | None = None,
                mask: npt.ArrayLike | None = None) -> npt.NDArray[np.float32]:
        """A Grad-CAM heatmap in [0, 1] for ``label`` (default: the first), at the input
        image's size (zero outside the lung box for models that crop to the lungs).
        Needs the torch backend's model (always loaded)."""
        from radiolens.explain import gradcam

        self._check_loaded()
        name = label or self.labels[0]
        if name not in self.labels:
            raise ConfigError(f"label {name!r} is not one of the model's: "
                              f"{', '.join(self.labels)}")
        pixels = image.pixels if isinstance(image, XrayImage) else np.asarray(image)
        x, box = self.prepare(pixels, mask)
        if box is None:
            return gradcam(self.model_, self.info_.architecture, x, self.labels.index(name),
                           output_shape=pixels.shape)
        from radiolens.segment.crop import paste_box

        heat = gradcam(self.model_, self.info_.architecture, x, self.labels.index(name),
                       output_shape=box.shape)
        return paste_box(heat, box, pixels.shape)
