"""Tests of fmlp.data.idx on small synthetic idx files written into tmp_path."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fmlp.data as fd
from tests.data.helpers import flat, idx_bytes, random_idx_set, write_file, write_idx_set


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_parse_idx_round_trip(shape: list[int], seed: int) -> None:
    a = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    got = fd.parse_idx(idx_bytes(a), ndim=len(shape))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("layout", [".", "MNIST/raw"])
def test_read_idx_dir_splits_train_file(tmp_path: Path, gz: bool, layout: str) -> None:
    s = random_idx_set(60, 7)
    write_idx_set(tmp_path / "root" / layout, s, gz=gz)
    raw = fd.read_idx_dir(tmp_path / "root", "mnist", n_train=50)
    assert raw.counts == (50, 10, 7)
    np.testing.assert_array_equal(raw.train.x, flat(s.train_x[:50]))
    np.testing.assert_array_equal(raw.train.y, s.train_y[:50])
    np.testing.assert_array_equal(raw.valid.x, flat(s.train_x[50:]))
    np.testing.assert_array_equal(raw.valid.y, s.train_y[50:])
    np.testing.assert_array_equal(raw.test.x, flat(s.test_x))
    np.testing.assert_array_equal(raw.test.y, s.test_y)


def test_read_idx_dir_torchvision_fashion_layout(tmp_path: Path) -> None:
    s = random_idx_set(12, 3)
    write_idx_set(tmp_path / "FashionMNIST" / "raw", s, gz=True)
    raw = fd.read_idx_dir(tmp_path, "fashion-mnist", n_train=10)
    assert raw.counts == (10, 2, 3)
    with pytest.raises(fd.DataNotFoundError, match="MNIST/raw"):
        fd.read_idx_dir(tmp_path, "mnist", n_train=10)


def test_read_idx_dir_rejects_a_split_point_outside_the_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path, random_idx_set(10, 2), gz=False)
    with pytest.raises(fd.DataError, match=r"train-images-idx3-ubyte.*cannot split at 10"):
        fd.read_idx_dir(tmp_path, n_train=10)


def corrupt_idx(tmp_path: Path, role: str, data: bytes, *, gz: bool = False) -> Path:
    """A valid 60/7 idx set, then ``role``'s file replaced by ``data``; returns that file."""
    files = write_idx_set(tmp_path, random_idx_set(60, 7), gz=False)
    files[role].unlink()
    return write_file(files[role], data, gz=gz)


@pytest.mark.parametrize(
    ("role", "make", "message"),
    [
        (
            "train_images",
            lambda a: b"\x00\x00\x08\x01" + idx_bytes(a)[4:],
            "wrong idx magic number 0x00000801, expected 0x00000803",
        ),
        ("train_labels", lambda a: b"\x1234" + idx_bytes(a)[4:], "wrong idx magic number"),
        ("test_images", lambda a: idx_bytes(a)[:-1], "inconsistent sizes.*truncated"),
        ("test_labels", lambda a: idx_bytes(a) + b"\x00", "inconsistent sizes.*trailing"),
        ("train_labels", lambda a: idx_bytes(a)[:6], "truncated idx header"),
        ("train_images", lambda a: b"", "no header"),
        (
            "train_images",
            lambda a: idx_bytes(a.reshape(60, 14, 56)),
            "14x56 pixels, expected 28x28",
        ),
        ("train_labels", lambda a: idx_bytes(a[:59]), "inconsistent sizes.*60 images.*59 labels"),
        ("test_labels", lambda a: idx_bytes(np.full_like(a, 10)), "label 10 outside 0..9"),
    ],
)
def test_bad_idx_file_is_named(tmp_path: Path, role: str, make: Any, message: str) -> None:
    s = random_idx_set(60, 7)
    source = {
        "train_images": s.train_x,
        "train_labels": s.train_y,
        "test_images": s.test_x,
        "test_labels": s.test_y,
    }[role]
    path = corrupt_idx(tmp_path, role, make(source))
    with pytest.raises(fd.DataError, match=message) as info:
        fd.read_idx_dir(tmp_path, n_train=50)
    assert path.name in str(info.value)


@pytest.mark.parametrize("damage", ["header only", "half", "no trailer", "bad crc"])
def test_truncated_or_damaged_gz_is_named(tmp_path: Path, damage: str) -> None:
    s = random_idx_set(60, 7)
    good = gzip.compress(idx_bytes(s.train_x))
    bad = {
        "header only": good[:10],
        "half": good[: len(good) // 2],
        "no trailer": good[:-8],
        "bad crc": good[:-8] + bytes(b ^ 0xFF for b in good[-8:-4]) + good[-4:],
    }[damage]
    path = corrupt_idx(tmp_path, "train_images", b"")
    path.unlink()
    path = path.with_name(path.name + ".gz")
    path.write_bytes(bad)
    with pytest.raises(fd.DataError, match=f"{path}: corrupt or truncated gzip file"):
        fd.read_idx_dir(tmp_path, n_train=50)
