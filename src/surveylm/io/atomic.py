"""Atomic output: write to a temporary file or folder beside the target, then rename.

A crash (or Ctrl-C, or kill -9) while writing never leaves a half-written result where a
finished one is expected: either the old file (folder) is still there or the new one is
complete. A folder is swapped whole (:func:`atomic_dir`), so a model folder never holds
new weights beside old settings. Temporaries are named ``.<target>.tmp-XXXXXXXX[suffix]``;
those a killed process left behind are removed the next time the same target is written
(:func:`remove_temporaries`). :func:`scratch_dir` gives a fit a temporary folder for
its checkpoints. The results-table format is in :mod:`surveylm.io.tables`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "TEMP_TAG",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_temporaries",
    "replace_dir",
    "scratch_dir",
    "temporary_target",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: What ``open(path, "w")`` would have given: 0666 less the process umask.
_FILE_MODE = 0o666 & ~_umask()
#: What ``mkdir`` would have given: 0777 less the process umask.
_DIR_MODE = 0o777 & ~_umask()
#: The tag between a target's name and the random part of its temporaries.
TEMP_TAG = ".tmp-"
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.tmp-[a-z0-9_]{8}(\.[^/]*)?$")


def temporary_target(name: str) -> str | None:
    """The target name a temporary called ``name`` was for (``None``: not a temporary)."""
    m = _TEMP_RE.match(name)
    return m.group("target") if m else None


def remove_temporaries(folder: str | Path, target: str | None = None,
                       recursive: bool = False) -> list[Path]:  # fmt: skip
    """Remove the temporaries a killed writer left in ``folder`` (those of ``target``
    only, when given; in sub-folders too with ``recursive``); returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        owner = temporary_target(entry.name)
        if owner is not None and (target is None or owner == target):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            removed += remove_temporaries(entry, target, recursive=True)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it to ``path`` on success.

    The temporary file lives in the target's directory (so the rename is atomic on the
    same filesystem) and keeps the target's suffix (so writers that look at the
    extension behave). It is removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_temporaries(path.parent, path.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}{TEMP_TAG}",
        suffix=suffix if suffix is not None else path.suffix or ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are ordinary files
        from surveylm.faults import checkpoint

        checkpoint("file-written", path.name)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty sibling folder to write to; swap it in for ``path`` on success.

    The old folder stays whole until the new one is complete; then the two are exchanged
    in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames) and the
    old one is removed. If the body raises, the temporary folder is removed and ``path``
    is untouched. Files and folders inside get ordinary permissions (what ``open`` and
    ``mkdir`` give under the umask).

    Args:
        path: The folder to (re)place.
        marker: A file that every folder this replaces holds (``model.json``,
            ``settings.json``): an existing non-empty folder without it is refused, so
            a folder of other files is never wiped by mistake.

    Raises:
        OutputError: ``path`` is a file, or an existing folder without ``marker``.
    """
    from surveylm.errors import OutputError
    from surveylm.faults import checkpoint

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"'{path}' is a file, not a folder")
    if (
        marker is not None
        and path.is_dir()
        and not (path / marker).exists()
        and any(temporary_target(p.name) is None for p in path.iterdir())
    ):
        raise OutputError(f"'{path}' holds files that are not this output (no {marker}); "
                          "not replacing it: choose another folder")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TEMP_TAG}", dir=path.parent))
    try:
        yield tmp
        _ordinary_modes(tmp)
        checkpoint("folder-written", path.name)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ordinary_modes(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes ``mkdir``/``open`` would have given
    (``mkdtemp``/``mkstemp`` and some writers make them private)."""
    os.chmod(folder, _DIR_MODE)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), _DIR_MODE)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, _FILE_MODE | (os.stat(p).st_mode & 0o111 & ~_umask()))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); ``False`` if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(src: str | Path, dst: str | Path) -> None:
    """Put folder ``src`` at ``dst``, replacing a folder there whole (see :func:`atomic_dir`)."""
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.rename(src, dst)
        return
    if _exchange(src, dst):  # src now holds the old folder
        shutil.rmtree(src, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}{TEMP_TAG}", dir=dst.parent))
    os.rmdir(old)
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder for one fit's checkpoints, named ``<prefix><pid>-XXXX`` in the
    system's temporary directory and removed on exit; folders of the same prefix left by
    a process that no longer runs (killed mid-fit, so its ``finally`` never ran) are
    removed first, so kills do not pile up checkpoints."""
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{prefix}*"):
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-") as tmp:
        yield Path(tmp)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
