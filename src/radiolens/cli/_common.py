"""Helpers shared by subcommands: progress bars, option parsing, number formatting."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # numpy is not part of the core install
    import numpy as np
    import numpy.typing as npt

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``items`` in a progress bar when stderr is a terminal, else pass them through."""
    if not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, unit=unit, total=total, dynamic_ncols=True, leave=False)


@contextlib.contextmanager
def progress_counter(desc: str, unit: str, total: int | None = None
                     ) -> Iterator[Callable[[int], None]]:
    """A progress bar (when stderr is a terminal) advanced by calling ``update(n)``."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit=unit, total=total, dynamic_ncols=True, leave=False)

    def update(n: int) -> None:
        bar.update(n)

    try:
        yield update
    finally:
        bar.close()


class RayAddress(argparse.Action):
    """``--ray [ADDRESS]``: no value starts a local Ray instance (``local``).

    argparse gives an optional value the next word, so in ``--ray scans/`` the path would
    become the address: a value that is not a Ray address but an existing file or folder
    is kept in ``<dest>_paths`` for the command to use as an input."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        from radiolens.archive.ray_runtime import LOCAL, is_ray_address

        value = str(values) if isinstance(values, str) else LOCAL
        if not is_ray_address(value):
            if not os.path.exists(value):
                parser.error(f"{option_string} {value!r}: not a Ray address; use auto, "
                             "HOST:PORT or ray://HOST:PORT (no value: a local Ray instance)")
            stray = getattr(namespace, f"{self.dest}_paths", None) or []
            setattr(namespace, f"{self.dest}_paths", [*stray, value])
            value = LOCAL
        setattr(namespace, self.dest, value)


def comma_list(text: str) -> list[str]:
    """argparse type for ``a,b,c``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def positive_int(text: str) -> int:
    """argparse type for a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def key_value(text: str) -> tuple[str, str]:
    """argparse type for ``COLUMN=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    return key.strip(), value.strip()


def add_scoring_options(p: argparse.ArgumentParser, *, checkpoint_help: str,
                        split_help: str) -> None:
    """The options of commands that score a split of a label table with a model.

    ``--checkpoint``, ``--data``, ``--images-root``, ``--split``, ``--where``, ``--n-boot``,
    ``--skip-missing``, ``--batch-size`` and ``--device`` (``evaluate``, ``thresholds``).
    """
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR", help=checkpoint_help)
    p.add_argument("--data", required=True, metavar="CSV", help="label table (CSV)")
    p.add_argument("--images-root", metavar="DIR")
    p.add_argument("--split", default=None, metavar="NAME", help=split_help)
    p.add_argument("--where", type=key_value, action="append", metavar="COL=VALUE")
    p.add_argument("--n-boot", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the confidence intervals (default 1000)")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out rows whose image file does not exist (counted) instead of "
                        "stopping")
    p.add_argument("--batch-size", type=int, default=32, metavar="N")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "openvino"], default="auto",
                   help="auto (default): OpenVINO when installed, else ONNX Runtime, else "
                        "PyTorch (a GPU device: PyTorch)")


def run_destination(checkpoint: str, output: str | None, what: str) -> tuple[Path, Path]:
    """``(source run directory, where to write)`` for commands that update a run's
    ``model.json`` in place or write a copy to ``-o NEW_RUN_DIR`` (``thresholds``,
    ``quantize``); ``what`` names what the copy gets, for the error message.

    Raises:
        CheckpointError: a builtin model without ``-o``, or ``-o`` is a non-empty folder.
    """
    from radiolens.errors import CheckpointError
    from radiolens.models.info import BUILTIN_PREFIX, resolve_run_dir

    source = resolve_run_dir(checkpoint)
    if output is None and str(checkpoint).startswith(BUILTIN_PREFIX):
        raise CheckpointError(f"{checkpoint} is read-only; pass -o NEW_RUN_DIR to write "
                              f"a copy with {what}")
    dest = Path(output).expanduser() if output else source
    if output and dest.exists() and any(dest.iterdir()):
        raise CheckpointError(f"{dest} exists and is not empty; choose a new folder for -o")
    return source, dest


def add_scale_options(p: argparse.ArgumentParser, *, workers_help: str, verb: str) -> None:
    """``--workers N`` and ``--ray [ADDRESS]`` (``predict``, ``label``)."""
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help=workers_help)
    p.add_argument("--ray", nargs="?", const="local", default=None, action=RayAddress,
                   metavar="ADDRESS",
                   help=f"{verb} with Ray Data (pip install 'radiolens[scale]'): no ADDRESS "
                        "starts a local Ray instance; auto or HOST:PORT joins a cluster")


def percent(x: float | None) -> str:
    """``0.95`` as ``95.0%``; ``None`` as ``n/a``."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def image_files(paths: Iterable[str]) -> list[str]:
    """The DICOM/PNG/JPEG files in ``paths`` (files or folders), checked to exist.

    Raises:
        ConfigError: a path does not exist, or no image file is found.
    """
    from pathlib import Path

    from radiolens.errors import ConfigError
    from radiolens.imaging import iter_image_files

    given = list(paths)
    for raw in given:
        if not Path(raw).exists():
            raise ConfigError(f"{raw}: no such file or folder")
    files = [str(f) for f in iter_image_files(given)]
    if not files:
        raise ConfigError("no DICOM, PNG or JPEG files found in " + ", ".join(given))
    return files


def read_each(files: list[str], desc: str
              ) -> Iterator[tuple[str, str, npt.NDArray[np.float32], str | None]]:
    """``(path, unique stem, pixels, error)`` per file, with a progress bar: an
    unreadable file yields empty pixels and its error instead of stopping the command."""
    import numpy as np

    from radiolens.errors import ImageReadError
    from radiolens.imaging import read_image
    from radiolens.segment.overlay import unique_stems

    for path, stem in progress(list(zip(files, unique_stems(files), strict=True)), desc,
                               "img"):
        try:
            yield path, stem, read_image(path).pixels, None
        except ImageReadError as exc:
            yield path, stem, np.zeros((0, 0), np.float32), str(exc)
