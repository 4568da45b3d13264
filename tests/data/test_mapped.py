"""Tests of fmlp.data.mapped: the cache as memory maps, made once, checked by sha256,
and made again (never mapped) when a file is changed or truncated."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp.data as fd
from fmlp.data import mapped
from tests.data.helpers import assert_dataset_matches, no_temp_files, raw_dataset


def _same_as_load(ds: fd.Dataset[Any], dtype: Any = np.float32) -> None:
    loaded = fd.load("mnist", dtype=dtype)
    for s in fd.SPLITS:
        a, b = ds.get(s), loaded.get(s)
        assert a.x.dtype == b.x.dtype and a.y.dtype == b.y.dtype
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()


def _hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the files hashed from now on."""
    hashed: list[str] = []
    real = mapped._file_sha256

    def spy(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(mapped, "_file_sha256", spy)
    return hashed


def test_an_old_cache_is_upgraded_to_read_only_maps_of_the_same_bits(isolated: Path) -> None:
    raw = raw_dataset()
    fd.write_cache(raw, "mnist")  # the cache as older fmlp wrote it: the .npz alone
    for dtype in (np.float32, np.float64):
        ds = fd.open_mapped("mnist", dtype=dtype)
        _same_as_load(ds, dtype)
        assert_dataset_matches(ds, raw)
        x = ds.train.x
        assert not x.flags.writeable and not x.flags.owndata
        assert isinstance(x.base, np.memmap) or isinstance(getattr(x.base, "base", None), np.memmap)
    folder = fd.mapped_dir("mnist")
    assert folder == isolated / "mnist.mapped"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".npy") == sorted(
        f"{s}_{k}.npy" for s in fd.SPLITS for k in ("x.float32", "x.float64", "y.int64")
    )
    assert no_temp_files(folder)
    only = fd.open_mapped("mnist", split="test")
    assert only.splits == ("test",)


def test_a_second_open_checks_stamps_not_hashes(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd.write_cache(raw_dataset(), "mnist")
    fd.open_mapped("mnist")
    hashed = _hashes(monkeypatch)
    _same_as_load(fd.open_mapped("mnist"))
    assert hashed == []
    # touched, not changed: hashed once more, found right, stamped again, not made again
    path = fd.mapped_dir("mnist") / "train_x.float32.npy"
    inode = path.stat().st_ino
    os.utime(path)
    fd.open_mapped("mnist")
    assert hashed == ["train_x.float32.npy"] and path.stat().st_ino == inode
    fd.open_mapped("mnist")
    assert hashed == ["train_x.float32.npy"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "flip-keeping-mtime", "delete"])
def test_a_changed_or_truncated_file_is_made_again_never_mapped(
    isolated: Path, damage: str
) -> None:
    fd.write_cache(raw_dataset(), "mnist")
    fd.open_mapped("mnist")
    path = fd.mapped_dir("mnist") / "valid_x.float32.npy"
    before = path.stat()
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "delete":
        path.unlink()
    else:
        data[-5] ^= 0x40  # one pixel of the last image, same size
        with open(path, "r+b") as f:  # in place: the same inode
            f.write(bytes(data))
        if damage == "flip-keeping-mtime":
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    ds = fd.open_mapped("mnist")
    _same_as_load(ds)
    if damage != "delete":  # (a deleted file's inode number may be used again)
        assert path.stat().st_ino != before.st_ino  # a new file took its place


def test_a_fetched_again_cache_with_other_content_makes_every_file_again(isolated: Path) -> None:
    fd.write_cache(raw_dataset(seed=1), "mnist")
    first = fd.open_mapped("mnist").train.x.copy()
    new = raw_dataset(seed=2)
    fd.write_cache(new, "mnist")
    ds = fd.open_mapped("mnist")
    assert_dataset_matches(ds, new)
    assert not np.array_equal(ds.train.x, first)


def test_a_damaged_cache_file_is_refused_and_nothing_is_mapped(isolated: Path) -> None:
    raw = raw_dataset()
    path = fd.write_cache(raw, "mnist")
    manifest_of = fd.mapped_dir("mnist") / "manifest.json"
    data = bytearray(path.read_bytes())
    at = bytes(data).index(raw.train.x.tobytes()[:64]) + 100
    data[at] ^= 0xFF  # the zip's CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(fd.DataError, match=r"python -m fmlp\.data fetch mnist"):
        fd.open_mapped("mnist")
    assert not manifest_of.exists()


def test_a_cache_whose_recorded_checksum_differs_is_refused(isolated: Path) -> None:
    raw = raw_dataset()
    path = fd.write_cache(raw, "mnist")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["content_sha256"] = np.array("0" * 64)
    np.savez(path, **arrays)
    with pytest.raises(fd.ChecksumError, match=f"{path}: content sha256 .* records 0000"):
        fd.open_mapped("mnist")


def test_absent_data_and_bad_dtype_say_what_to_do(isolated: Path) -> None:
    with pytest.raises(fd.DataNotFoundError, match=r"python -m fmlp\.data fetch mnist"):
        fd.open_mapped("mnist")
    with pytest.raises(ValueError, match=r"dtype must be np\.float32 or np\.float64"):
        fd.open_mapped("mnist", dtype=np.int8)  # type: ignore[arg-type]  # the wrong dtype is the point
    with pytest.raises(ValueError, match="unknown dataset"):
        fd.open_mapped("cifar")


def test_the_manifest_records_each_files_sha256(isolated: Path) -> None:
    fd.write_cache(raw_dataset(), "mnist")
    fd.open_mapped("mnist")
    folder = fd.mapped_dir("mnist")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == fd.MAPPED_FORMAT
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == mapped._file_sha256(folder / name)
