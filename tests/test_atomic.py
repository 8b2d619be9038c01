"""Atomic writes: complete or absent, never half-written; ordinary file permissions."""

from __future__ import annotations

import stat

import pytest

from surveylm.io.atomic import atomic_path, atomic_write_text


def test_written_file_has_the_permissions_open_would_give(tmp_path):
    path = atomic_write_text(tmp_path / "report.html", "<html></html>")
    plain = tmp_path / "plain.html"
    plain.write_text("<html></html>")  # what open() gives under this process's umask
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_crash_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "table.csv", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_scratch_dir_removes_what_a_killed_process_left(tmp_path, monkeypatch):
    """Issue 16: a fit killed mid-run leaves its checkpoint folder; the next fit with the
    same prefix removes it (its process is gone) but never a running process's."""
    import os
    import subprocess
    import sys
    import tempfile

    from surveylm.io.atomic import scratch_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f"surveylm-test-{gone.stdout.strip()}-abcd"
    alive = tmp_path / f"surveylm-test-{os.getppid()}-efgh"
    other = tmp_path / "surveylm-testing-notapid"
    for folder in (dead, alive, other):
        (folder / "checkpoint-1").mkdir(parents=True)
    with scratch_dir("surveylm-test-") as tmp:
        assert tmp.is_dir() and tmp.name.startswith(f"surveylm-test-{os.getpid()}-")
        assert not dead.exists() and alive.exists() and other.exists()
    assert not tmp.exists()
