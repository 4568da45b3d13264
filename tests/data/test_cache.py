"""Tests of fmlp.data.cache: the cache file written atomically, read back and checked."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp.data as fd
from tests.data.helpers import assert_dataset_matches, no_temp_files, raw_dataset


def test_cache_round_trip(isolated: Path) -> None:
    raw = raw_dataset()
    path = fd.write_cache(raw, "mnist")
    assert path == isolated / "mnist.npz" == fd.cache_path("mnist")
    assert no_temp_files(isolated)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["train_x"].dtype == np.uint8
    assert_dataset_matches(fd.load("mnist"), raw)
    assert_dataset_matches(fd.load("mnist", split=("valid", "test")), raw, ("valid", "test"))
    only_test = fd.load("mnist", split="test")
    assert_dataset_matches(only_test, raw, ("test",))
    with pytest.raises(LookupError, match="split 'train' of 'mnist' was not loaded"):
        only_test.train  # noqa: B018


def test_cache_write_is_atomic(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = raw_dataset(seed=1)
    fd.write_cache(old, "mnist")

    def savez_then_fail(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    with monkeypatch.context() as m, pytest.raises(OSError, match="disk full"):
        m.setattr(np, "savez", savez_then_fail)
        fd.write_cache(raw_dataset(seed=2), "mnist")
    assert no_temp_files(isolated)
    assert_dataset_matches(fd.load("mnist"), old)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_cache_file_gets_the_umask_permissions(isolated: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        path = fd.write_cache(raw_dataset(), "mnist")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert no_temp_files(isolated)


def test_corrupt_cache_names_the_file(isolated: Path) -> None:
    path = fd.write_cache(raw_dataset(), "mnist")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(fd.DataError, match=f"{path}.*corrupt.*python -m fmlp.data fetch mnist"):
        fd.load("mnist")


def test_flipped_byte_in_cache_is_detected(isolated: Path) -> None:
    raw = raw_dataset()
    path = fd.write_cache(raw, "mnist")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(raw.valid.x.tobytes()[:64]) + 100
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(fd.DataError, match=f"{path}.*CRC"):
        fd.load("mnist")


def test_cache_with_wrong_shapes_is_refused(isolated: Path) -> None:
    isolated.mkdir()
    arrays: dict[str, Any] = {
        f"{s}_{a}": np.zeros((3, 10) if a == "x" else 3, np.uint8) for s in fd.SPLITS for a in "xy"
    }
    np.savez(
        isolated / "mnist.npz",
        format_version=np.array(fd.CACHE_FORMAT),
        source=np.array("s"),
        content_sha256=np.array("0"),
        **arrays,
    )
    with pytest.raises(fd.DataError, match=r"mnist.npz \[train\]: images have shape \(3, 10\)"):
        fd.load("mnist")
