"""Fixtures of the fmlp.data tests.

Every test here runs with its own empty data cache and no Debian files (``isolated``),
so none of them sees or changes the machine's data.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

import fmlp.data as fd
from fmlp.data import sources
from tests.data.helpers import IdxSet, fake_wheel_with, pickle_parts, raw_dataset, write_idx_set


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


@pytest.fixture
def benign_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, fd.RawDataset]:
    raw = raw_dataset()
    member = gzip.compress(pickle.dumps(pickle_parts(raw), protocol=2))
    return fake_wheel_with(tmp_path, monkeypatch, member), raw
