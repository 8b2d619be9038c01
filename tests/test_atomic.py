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
