"""int8 models for OpenVINO: static quantization with NNCF, calibrated on the model's
validation images, accepted only when no label's AUROC falls by more than a limit.

Torch-free: it reads the run's exported ONNX file (``Predictor`` exports and caches it).

Example:
    >>> from radiolens.models.quantize import quantize_int8    # doctest: +SKIP
    >>> quantize_int8("model.onnx", inputs, "run/model.int8.xml")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radiolens.errors import MissingDependencyError

__all__ = ["INT8_FILE", "quantize_int8", "weights_sha256"]

logger = logging.getLogger(__name__)

INT8_FILE = "model.int8.xml"


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weights file (ties an int8 model to the weights it came from)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require() -> tuple[Any, Any]:
    try:
        import openvino as ov
    except ImportError:
        raise MissingDependencyError("openvino", "fast") from None
    try:
        import nncf
    except ImportError:
        raise MissingDependencyError("nncf", "fast") from None
    return ov, nncf


def quantize_int8(onnx_file: str | os.PathLike[str], inputs: npt.NDArray[np.float32],
                  out_xml: str | os.PathLike[str], subset_size: int = 300,
                  batch_size: int = 16) -> Path:
    """Quantize an exported model to int8 (NNCF post-training static quantization) and
    save it as OpenVINO IR (``out_xml`` and its ``.bin``).

    Args:
        onnx_file: the model exported by :func:`radiolens.models.export_onnx`.
        inputs: preprocessed calibration inputs ``(N, C, S, S)``.
        out_xml: where to write the IR.
        subset_size: how many of ``inputs`` NNCF uses to calibrate.
        batch_size: the batch the calibration runs at.

    Returns:
        The written ``.xml`` path.
    """
    ov, nncf = _require()
    model = ov.Core().read_model(str(onnx_file))
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    dataset = nncf.Dataset(batches)
    n = min(subset_size, len(inputs))
    quantized = nncf.quantize(model, dataset, subset_size=max(1, -(-n // batch_size)),
                              preset=nncf.QuantizationPreset.PERFORMANCE)
    out = Path(out_xml)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    logger.info("wrote the int8 model %s (calibrated on %d images)", out, n)
    return out
