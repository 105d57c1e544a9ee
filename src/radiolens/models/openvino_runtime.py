"""OpenVINO on the CPU, without torch: compile an exported ONNX model at fp32 or bf16.

OpenVINO reads the ONNX file directly. On CPUs with AVX-512 BF16 or AMX it compiles to
bf16 by default; ``precision="fp32"`` asks for fp32 explicitly. One stream and a latency
hint with ``threads`` inference threads keep a shared machine usable. Compiled models are
cached (``$RADIOLENS_CACHE/openvino``), so only the first load pays for compiling.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

from radiolens.errors import CheckpointError, ConfigError, MissingDependencyError

__all__ = ["Precision", "openvino_available", "openvino_model"]

Precision = Literal["auto", "fp32", "bf16"]
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_available() -> bool:
    """Whether the ``openvino`` package is installed (``pip install radiolens[fast]``)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def openvino_model(path: str | os.PathLike[str], threads: int = 2,
                   precision: Precision = "auto") -> Any:
    """A compiled OpenVINO model for ``path`` (ONNX or OpenVINO IR ``.xml``).

    Returns:
        An ``openvino.CompiledModel``; ``model(batch)[0]`` gives the logits.

    Raises:
        MissingDependencyError: openvino is not installed.
        CheckpointError: the file is missing or OpenVINO cannot read it.
        ConfigError: ``threads`` below 1 or an unknown precision.
    """
    if not openvino_available():
        raise MissingDependencyError("openvino", "fast")
    import openvino as ov

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model file {str(file)!r} does not exist")
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r} for OpenVINO; use fp32 or bf16 "
                          "(int8 needs a quantized model: radiolens quantize)")
    # no pinning: OpenVINO pins its threads to the first cores, so several processes (the
    # worker pool of `predict --workers`, Ray actors, the service beside a predict run)
    # would all share core 0 (two 1-thread processes measured 0.5x one process each)
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                              "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    if precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = _HINTS[precision]
    cache = _compiled_cache()
    if cache is not None:  # compiling takes about a second; a cached blob loads at once
        config["CACHE_DIR"] = str(cache)
    core = ov.Core()
    try:
        return core.compile_model(str(file), "CPU", config)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CheckpointError(f"OpenVINO cannot load {file}: {first}") from exc


def _compiled_cache() -> Path | None:
    """OpenVINO's cache of compiled models (keyed by OpenVINO on the model file and the
    settings), under :func:`~radiolens.models.onnx_runtime.cache_root`; None when it
    cannot be created (a read-only home): then each load compiles again."""
    from radiolens.models.onnx_runtime import cache_root

    folder = cache_root() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def compiled_precision(compiled: Any) -> str:
    """The precision OpenVINO actually chose (``f32``, ``bf16``...)."""
    try:
        return str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    except RuntimeError:
        return "unknown"
