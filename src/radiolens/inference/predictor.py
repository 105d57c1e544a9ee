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
from radiolens.models.onnx_runtime import onnx_cache_path

__all__ = ["BACKENDS", "ClassActivation", "FilePrediction", "Prediction", "Predictor",
           "onnx_cache_path", "resolve_backend"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx", "openvino"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
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


@dataclass(frozen=True)
class ClassActivation:
    """The class activation maps of one scored image, from the forward pass that scored
    it, kept so that its heatmaps cost nothing more (:meth:`Predictor.explain`).

    Attributes:
        maps: ``(labels, h, w)`` at the network's last feature map.
        box: the lung box the model saw (``None``: the whole image).
        image_shape: ``(H, W)`` of the image scored.
    """

    maps: npt.NDArray[np.float32]
    box: Any
    image_shape: tuple[int, ...]


@dataclass(frozen=True)
class Prediction:
    """Scores of one image.

    Attributes:
        probabilities: label name to probability, in the model's label order.
        thresholds: label name to the operating threshold from ``model.json``.
        flags: label name to ``probability >= threshold``.
        activation: the image's class activation maps when the backend gave them
            (ONNX Runtime and OpenVINO, for DenseNet and ResNets), else ``None``.
    """

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    flags: dict[str, bool] = field(default_factory=dict)
    activation: ClassActivation | None = field(default=None, compare=False, repr=False)

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


def _pixels(image: XrayImage | npt.ArrayLike) -> npt.NDArray[Any]:
    return image.pixels if isinstance(image, XrayImage) else np.asarray(image)


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
        if self.precision not in ("auto", "fp32", "bf16", "int8"):
            raise ConfigError(f"unknown precision {self.precision!r}; use auto, fp32, bf16 "
                              "or int8")
        if self.precision == "bf16" and backend == "onnx":
            raise ConfigError("ONNX Runtime runs fp32 here; use --backend openvino (or torch) "
                              "for bf16")
        if self.precision == "int8" and backend != "openvino":
            raise ConfigError(f"int8 runs on OpenVINO only, not {backend}; use --backend "
                              "openvino (pip install radiolens[fast])")
        self.backend_ = backend
        self.precision_: str = self.precision
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
            self.session_ = onnx_session(self.onnx_file(), threads=self.threads or 2)
        else:
            from radiolens.models.openvino_runtime import openvino_model

            self.device_ = "cpu"
            int8 = self._int8_file()
            self.precision_ = "int8" if int8 is not None else self.precision
            self.compiled_ = openvino_model(
                int8 or self.onnx_file(), threads=self.threads or 2,
                precision="auto" if int8 is not None else self.precision)  # type: ignore[arg-type]
        return self

    def _int8_file(self) -> Path | None:
        """The run's accepted int8 model for ``precision`` int8 or auto, else ``None``.

        Raises:
            ConfigError: int8 was asked for and the run has none that can be used.
        """
        if self.precision not in ("int8", "auto"):
            return None
        from radiolens.models.quantize import weights_sha256

        record = self.info_.int8
        why = ""
        if record is None:
            why = "it has no int8 model"
        elif not record.accepted:
            why = (f"its int8 model was refused (AUROC fell by {record.max_auroc_drop:.4f}, "
                   f"over {record.limit})")
        elif not (self.run_dir_ / record.file).is_file():
            why = f"{record.file} is missing"
        elif weights_sha256(self.run_dir_ / "model.safetensors") != record.weights_sha256:
            why = "its int8 model was made from other weights"
        if not why:
            assert record is not None
            return self.run_dir_ / record.file
        if self.precision == "int8":
            raise ConfigError(f"cannot score {self.checkpoint} at int8: {why}; run `radiolens "
                              f"quantize --checkpoint {self.checkpoint} --data TABLE.csv` "
                              "first, or use --precision auto")
        return None

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

    def onnx_file(self) -> Path:
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

            self.segmenter_ = LungSegmenter(self.info_.preprocessing.lung_model,
                                            threads=self.threads or 2).load()
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
        return self._forward(batch)[0]

    @property
    def gives_activations(self) -> bool:
        """Whether a forward pass also gives the class activation maps (exported models
        of DenseNet and ResNets on ONNX Runtime or OpenVINO): heatmaps without torch."""
        self._check_loaded()
        if self.compiled_ is not None:
            return len(self.compiled_.outputs) > 1
        return self.session_ is not None and len(self.session_.get_outputs()) > 1

    def _forward(self, batch: npt.ArrayLike
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Probabilities ``(N, L)`` and, where the backend gives them, the class
        activation maps ``(N, L, h, w)``."""
        self._check_loaded()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.compiled_ is not None or self.session_ is not None:
            outputs = (self.compiled_(x) if self.compiled_ is not None
                       else self.session_.run(None, {"image": x}))
            logits = np.asarray(outputs[0], dtype=np.float32)
            cams = np.asarray(outputs[1], dtype=np.float32) if len(outputs) > 1 else None
            probs: npt.NDArray[np.float32] = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
            return probs, cams
        import torch

        model = self.model_
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self._torch_device)
            probs = torch.sigmoid(model(t).float()).cpu().numpy().astype(np.float32)
        return probs, None

    def _wrap(self, probs: npt.NDArray[np.float32],
              activation: ClassActivation | None = None) -> Prediction:
        th = self.thresholds
        values = {n: float(probs[j]) for j, n in enumerate(self.labels)}
        return Prediction(values, th, {n: values[n] >= th[n] for n in values}, activation)

    def predict(self, images: Sequence[XrayImage | npt.ArrayLike],
                masks: Sequence[npt.ArrayLike | None] | None = None) -> list[Prediction]:
        """Score images (``XrayImage`` or 2-D arrays in [0, 1]), in batches; ``masks``:
        their lung masks when already known (models that crop to the lungs; the missing
        ones are segmented a batch at a time)."""
        out: list[Prediction] = []
        given = list(masks) if masks is not None else [None] * len(images)
        if len(given) != len(images):
            raise ValueError(f"{len(images)} images but {len(given)} masks")
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            mchunk = self.lung_masks(chunk, given[start:start + self.batch_size])
            prepared = [self.prepare(im, m) for im, m in zip(chunk, mchunk, strict=True)]
            probs, cams = self._forward(np.stack([x for x, _ in prepared]))
            for j, row in enumerate(probs):
                act = None
                if cams is not None:
                    shape = _pixels(chunk[j]).shape
                    act = ClassActivation(cams[j], prepared[j][1], tuple(shape))
                out.append(self._wrap(row, act))
        return out

    def lung_masks(self, images: Sequence[XrayImage | npt.ArrayLike],
                   masks: Sequence[npt.ArrayLike | None] | None = None
                   ) -> list[npt.ArrayLike | None]:
        """``masks`` (default: none known) with the missing ones segmented in one batch,
        for a model that crops to or dims by the lungs; for other models as given."""
        masks = list(masks) if masks is not None else [None] * len(images)
        todo = [i for i, m in enumerate(masks) if m is None]
        if not self.uses_lungs or not todo:
            return list(masks)
        found = self.lung_segmenter().segment_many([_pixels(images[i]) for i in todo])
        out = list(masks)
        for i, seg in zip(todo, found, strict=True):
            out[i] = seg.mask
        return out

    def _read_one(self, path: Path) -> tuple[Path, Any, str | None]:
        """A file decoded and, for a model that needs no lung mask, preprocessed."""
        try:
            image = read_image(path)
            return path, image if self.uses_lungs else self.preprocess(image), None
        except ImageReadError as exc:
            return path, None, str(exc)

    def _read_all(self, paths: Iterable[str | os.PathLike[str]], readers: int
                  ) -> Iterator[tuple[Path, Any, str | None]]:
        """Read (and preprocess) files in input order, ``readers`` threads ahead of the
        caller (decoding and resizing release the GIL), at most two batches in flight."""
        files = (Path(p) for p in paths)
        if readers <= 1:
            yield from map(self._read_one, files)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        window = 2 * max(self.batch_size, readers)
        with ThreadPoolExecutor(readers, thread_name_prefix="radiolens-read") as pool:
            pending: deque[Any] = deque()
            for path in files:
                pending.append(pool.submit(self._read_one, path))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def iter_files(self, paths: Iterable[str | os.PathLike[str]],
                   readers: int = 2) -> Iterator[FilePrediction]:
        """Score image files in batches, in input order; an unreadable file yields its
        error instead of a prediction (never silently dropped).

        ``readers``: threads that decode and resize the next files while a batch is
        scored. A model that crops to the lungs segments each batch in one call.
        """
        pending: list[tuple[Path, Any, str | None]] = []

        def flush() -> Iterator[FilePrediction]:
            inputs = [x for _, x, _ in pending if x is not None]
            if inputs and self.uses_lungs:  # decoded images: segment the batch, then crop
                masks = self.lung_masks(inputs)
                inputs = [self.preprocess(im, m) for im, m in zip(inputs, masks, strict=True)]
            batch = self.predict_batch(np.stack(inputs)) if inputs else np.zeros((0, 1))
            probs: Iterator[npt.NDArray[np.float32]] = iter(batch)
            for path, x, error in pending:
                if x is None:
                    yield FilePrediction(path, None, error)
                else:
                    yield FilePrediction(path, self._wrap(next(probs)))
            pending.clear()

        n_inputs = 0
        for item in self._read_all(paths, readers):
            pending.append(item)
            n_inputs += item[1] is not None
            if n_inputs >= self.batch_size:
                yield from flush()
                n_inputs = 0
        yield from flush()

    def predict_files(self, paths: Iterable[str | os.PathLike[str]]) -> list[FilePrediction]:
        """List form of :meth:`iter_files`."""
        return list(self.iter_files(paths))

    # ------------------------------------------------------------ explanation
    def explain(self, image: XrayImage | npt.ArrayLike, label: str | None = None,
                mask: npt.ArrayLike | None = None,
                prediction: Prediction | None = None) -> npt.NDArray[np.float32]:
        """A Grad-CAM heatmap in [0, 1] for ``label`` (default: the first), at the input
        image's size (zero outside the lung box for models that crop to the lungs).

        With ONNX Runtime or OpenVINO and a DenseNet or ResNet, the map is the class
        activation map (equal to Grad-CAM at the last feature map) from a forward pass,
        or from ``prediction`` (this image's, from :meth:`predict`) at no cost: no torch.
        Otherwise Grad-CAM with the torch model (loaded on first use)."""
        self._check_loaded()
        name = label or self.labels[0]
        if name not in self.labels:
            raise ConfigError(f"label {name!r} is not one of the model's: "
                              f"{', '.join(self.labels)}")
        pixels = image.pixels if isinstance(image, XrayImage) else np.asarray(image)
        act = prediction.activation if prediction is not None else None
        if act is not None and tuple(act.image_shape) != pixels.shape:
            raise ValueError(f"the prediction was made for an image of {act.image_shape}, "
                             f"not this one of {pixels.shape}")
        if act is None and self.gives_activations:
            x, box = self.prepare(pixels, mask)
            cams = self._forward(x[None])[1]
            assert cams is not None
            act = ClassActivation(cams[0], box, pixels.shape)
        if act is not None:
            return self._heat_from(act, self.labels.index(name))
        from radiolens.explain import gradcam

        x, box = self.prepare(pixels, mask)
        if box is None:
            return gradcam(self.model_, self.info_.architecture, x, self.labels.index(name),
                           output_shape=pixels.shape)
        from radiolens.segment.crop import paste_box

        heat = gradcam(self.model_, self.info_.architecture, x, self.labels.index(name),
                       output_shape=box.shape)
        return paste_box(heat, box, pixels.shape)

    def _heat_from(self, act: ClassActivation, index: int) -> npt.NDArray[np.float32]:
        from radiolens.explain.cam import cam_heatmap

        size = self.info_.preprocessing.image_size
        if act.box is None:
            return cam_heatmap(act.maps[index], size, act.image_shape)
        from radiolens.segment.crop import paste_box

        height, width = act.image_shape[:2]
        return paste_box(cam_heatmap(act.maps[index], size, act.box.shape), act.box,
                         (height, width))
