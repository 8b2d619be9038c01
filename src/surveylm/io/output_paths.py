"""Output paths checked before any work starts, each refusal one clear line.

A command that would fail at its very end (after minutes of fitting) because its output
path is a folder, sits under a file, is read-only, or names a format it does not write,
fails here first. Existing model and run folders are never merged with a new one: they
are refused unless the caller asks to replace (``overwrite``) or continue (``resume``)
them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from surveylm.errors import OutputError
from surveylm.io.atomic import temporary_target

__all__ = ["check_file_output", "check_folder_output", "existing_output"]


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists."""
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")  # pragma: no cover - the root always exists


def _check_writable_place(path: Path) -> None:
    """Refuse a path under a file, or in a folder this process cannot write to."""
    base = _nearest_existing(path.parent if path != path.parent else path)
    if not base.is_dir():
        raise OutputError(f"cannot write '{path}': '{base}' is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"cannot write '{path}': folder '{base}' is not writable "
                          f"({reason.lower()})") from None  # fmt: skip


def check_file_output(path: str | Path, suffixes: Iterable[str], what: str = "output") -> Path:
    """Check that ``path`` can take an output file of one of ``suffixes`` (``".csv"``).

    Raises:
        OutputError: ``path`` is a folder, lies under a file, is in a folder that cannot
            be written, or ends in a suffix the command does not write (``out/g.txt``
            would otherwise get Parquet bytes under a ``.txt`` name).
    """
    path = Path(path)
    allowed = [s.lower() for s in suffixes]
    if path.is_dir():
        raise OutputError(f"{what} '{path}' is a folder; give a file name ending in "
                          f"{_either(allowed)}")  # fmt: skip
    if path.suffix.lower() not in allowed:
        got = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise OutputError(f"{what} '{path}' has {got}; this command writes "
                          f"{_either(allowed)}")  # fmt: skip
    _check_writable_place(path)
    return path


def existing_output(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding anything but the temporaries of killed writers."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(temporary_target(p.name) is None for p in path.iterdir())


def check_folder_output(
    path: str | Path,
    what: str = "output folder",
    marker: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Check that ``path`` can take an output folder (a model, a run, tidy results).

    Args:
        path: The folder.
        what: What it is, for the messages (``"model folder"``).
        marker: The file every such folder holds (``model.json``, ``run.json``). With a
            marker, an existing non-empty folder is refused unless it holds the marker
            and ``overwrite`` or ``resume`` is given; without one, a folder's existing
            files are simply replaced one by one.
        overwrite: Replace an existing folder of this kind.
        resume: Continue an existing folder of this kind.

    Raises:
        OutputError: ``path`` is a file, lies under a file, cannot be written, is a
            folder of other files, or already holds a result and neither ``overwrite``
            nor ``resume`` was given.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} '{path}' is a file, not a folder")
    _check_writable_place(path / "x")
    if marker is None or not existing_output(path):
        return path
    if not (path / marker).exists():
        raise OutputError(f"{what} '{path}' exists and holds other files (no {marker}); "
                          "choose a new or empty folder")  # fmt: skip
    if not (overwrite or resume):
        raise OutputError(f"{what} '{path}' already exists; pass --overwrite to replace it "
                          "whole, or choose another folder")  # fmt: skip
    return path


def _either(suffixes: list[str]) -> str:
    """``[".a", ".b", ".c"]`` → ``".a, .b or .c"``."""
    if len(suffixes) > 1:
        return ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}"
    return suffixes[0]
