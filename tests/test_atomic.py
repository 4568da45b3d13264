"""Atomic writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fmlp.atomic import atomic_open, atomic_write_bytes, atomic_write_text


def test_write_creates_folders_and_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "f.bin"
    assert atomic_write_bytes(path, b"old") == path
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    atomic_write_text(path, "caf\u00e9")
    assert path.read_text(encoding="utf-8") == "caf\u00e9"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_an_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_the_new_file_gets_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_rename_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    assert list(tmp_path.iterdir()) == []
