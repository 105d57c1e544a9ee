"""Find radiographs in files and folders, and check that each one can be read.

:func:`scan_images` tries every file and reports all unreadable ones at the end, so one
bad file in a folder of thousands costs one line in a report, not a rerun.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from radiolens.errors import ImageReadError
from radiolens.imaging.image import IMAGE_SUFFIXES, has_dicom_preamble, read_image

__all__ = ["ScanReport", "iter_image_files", "scan_images"]

logger = logging.getLogger(__name__)

PathsArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def _as_paths(paths: PathsArg) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _has_dicm_marker(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return has_dicom_preamble(fh.read(132))
    except OSError:
        return False


def _is_candidate(path: Path) -> bool:
    """Whether a file found inside a folder looks like an image radiolens reads."""
    if path.name.startswith(".") or path.name.endswith(".partial"):
        return False
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    # DICOM files are often stored without a suffix, or named by their UID (1.2.840...).
    if suffix == "" or suffix[1:].isdigit():
        return _has_dicm_marker(path)
    return False


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir(), key=lambda e: e.name)
    except OSError as exc:
        raise ImageReadError(f"{folder}: cannot list the folder: {exc.strerror or exc}") from None
    subfolders = []
    for entry in entries:
        if entry.is_dir():
            if recursive and not entry.name.startswith("."):
                subfolders.append(entry)
        elif entry.is_file() and _is_candidate(entry):
            yield entry
    for sub in subfolders:
        yield from _walk(sub, recursive)


def iter_image_files(paths: PathsArg, recursive: bool = True) -> Iterator[Path]:
    """Yield the image files named by ``paths``, in a stable (sorted) order.

    A file given explicitly is yielded whatever its suffix. Inside folders, files whose
    suffix is in :data:`~radiolens.imaging.IMAGE_SUFFIXES` are yielded, and so are files
    with no (or a numeric) suffix that carry the DICOM ``DICM`` marker; hidden files and
    ``*.partial`` files are skipped. Each file is yielded once.

    Args:
        paths: a file or folder, or an iterable of them.
        recursive: descend into sub-folders.

    Yields:
        Paths of candidate image files.

    Raises:
        ImageReadError: a path does not exist or a folder cannot be listed.

    Example:
        >>> files = list(iter_image_files(["study1/", "extra.png"]))  # doctest: +SKIP
    """
    seen: set[Path] = set()
    for path in _as_paths(paths):
        if path.is_dir():
            found: Iterable[Path] = _walk(path, recursive)
        elif path.exists():
            found = [path]
        else:
            raise ImageReadError(f"{path}: no such file or folder; check the path")
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


@dataclass
class ScanReport:
    """The outcome of :func:`scan_images`.

    Attributes:
        readable: files that were read successfully.
        errors: ``(file, message)`` for every file that could not be read.

    Example:
        >>> report = scan_images("incoming/")  # doctest: +SKIP
        >>> report.raise_if_errors()            # doctest: +SKIP
    """

    readable: list[Path] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        """How many files were tried."""
        return len(self.readable) + len(self.errors)

    @property
    def ok(self) -> bool:
        """``True`` when every file was readable."""
        return not self.errors

    def raise_if_errors(self) -> None:
        """Raise one :class:`~radiolens.errors.ImageReadError` listing every unreadable file.

        Raises:
            ImageReadError: at least one file could not be read.
        """
        if not self.errors:
            return
        lines = "\n".join(f"  {message}" for _, message in self.errors)
        raise ImageReadError(
            f"{len(self.errors)} of {self.n_files} image files cannot be read; fix or remove "
            f"them and retry:\n{lines}")


def scan_images(paths: PathsArg, recursive: bool = True) -> ScanReport:
    """Read every image file under ``paths`` and report which ones fail.

    Args:
        paths: a file or folder, or an iterable of them (see :func:`iter_image_files`).
        recursive: descend into sub-folders.

    Returns:
        A :class:`ScanReport`; a path that does not exist is reported as an error too.
    """
    report = ScanReport()
    seen: set[Path] = set()
    for path in _as_paths(paths):
        try:
            for file in iter_image_files([path], recursive=recursive):
                if file.resolve() in seen:
                    continue
                seen.add(file.resolve())
                try:
                    read_image(file)
                except ImageReadError as exc:
                    report.errors.append((file, str(exc)))
                    logger.debug("unreadable: %s", exc)
                else:
                    report.readable.append(file)
        except ImageReadError as exc:
            report.errors.append((path, str(exc)))
    if report.n_files == 0:
        logger.warning("no image files found in %s", ", ".join(map(str, _as_paths(paths))))
    elif report.errors:
        logger.warning("%d of %d image files cannot be read", len(report.errors),
                       report.n_files)
    return report
