"""Tests of fmlp.data.records: the Split / Dataset records, errors, the float view."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fmlp.data as fd
from tests.data.helpers import raw_dataset


def test_float32_pixels_equal_the_pickles_values() -> None:
    k = np.arange(256, dtype=np.uint8)
    pickle_values = (k.astype(np.float64) / 256).astype(np.float32)
    part = fd.RawSplit(np.tile(k, (1, 784 // 256 + 1))[:, :784].copy(), np.zeros(1, np.uint8))
    raw = fd.RawDataset(part, part, part, source="k")
    x = fd.to_dataset(raw, "mnist", dtype=np.float32).train.x[0, :256]
    np.testing.assert_array_equal(x, pickle_values)


def test_split_subset_and_len() -> None:
    ds = fd.to_dataset(raw_dataset(), "mnist", dtype=np.float64)
    sub = ds.train.subset(4)
    assert len(sub) == sub.n == 4 and sub.x.shape == (4, 784)
    np.testing.assert_array_equal(sub.y, ds.train.y[:4])
    with pytest.raises(ValueError, match="subset\\(8\\) of a split of 7"):
        ds.train.subset(8)
    with pytest.raises(ValueError, match="Split needs"):
        fd.Split(np.zeros((3, 784)), np.zeros(2, np.int64))


def test_unsafe_pickle_error_is_both_kinds() -> None:
    assert issubclass(fd.UnsafePickleError, fd.DataError)
    assert issubclass(fd.UnsafePickleError, pickle.UnpicklingError)
