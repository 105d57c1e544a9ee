"""ONNX Runtime sessions, without torch: scoring an exported model needs only this."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from radiolens.errors import CheckpointError, ConfigError, MissingDependencyError

__all__ = ["cache_root", "onnx_cache_path", "onnx_session"]


def cache_root() -> Path:
    """The folder of radiolens' caches: ``$RADIOLENS_CACHE``, else ``~/.cache/radiolens``."""
    return Path(os.environ.get("RADIOLENS_CACHE") or Path.home() / ".cache" / "radiolens")


def onnx_cache_path(run_dir: Path, kind: str = "onnx") -> Path:
    """Where the ONNX export of ``run_dir`` is cached: named by the SHA-256 of its weights
    and ``model.json``, so a retrained or re-thresholded model is exported again.
    ``kind`` names the cache folder (classifiers ``onnx``, segmenters ``onnx-seg``)."""
    import hashlib

    from radiolens.models.info import EXPORT_VERSION

    digest = hashlib.sha256(EXPORT_VERSION.encode())
    for name in ("model.safetensors", "model.json"):
        with (run_dir / name).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return cache_root() / kind / f"{digest.hexdigest()[:32]}.onnx"


def onnx_session(path: str | os.PathLike[str], threads: int = 2) -> Any:
    """Create an onnxruntime CPU session tuned for a shared machine.

    ``intra_op_num_threads=threads``, ``inter_op_num_threads=1`` and no spinning of idle
    threads (``session.intra_op.allow_spinning=0``), which keeps throughput when other
    processes use the cores.

    Returns:
        An ``onnxruntime.InferenceSession``; run it with ``{"image": batch}``.

    Raises:
        CheckpointError: if the file is missing or onnxruntime cannot load it.
        ConfigError: if ``threads`` is below 1.
        MissingDependencyError: if ``onnxruntime`` is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime", "train") from None
    file = Path(path).expanduser()
    if not file.is_file():
        raise CheckpointError(f"ONNX file {str(file)!r} does not exist; export one with "
                              "radiolens.models.export_onnx")
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(file), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise CheckpointError(f"onnxruntime cannot load {file}: {exc}") from exc
