"""The names, sizes, errors and records that every part of :mod:`fmlp.data` shares.

A :class:`Dataset` holds the float :class:`Split` records that ``load`` returns; a
:class:`RawDataset` holds the uint8 :class:`RawSplit` records as every source yields
them and the cache stores them; ``to_dataset`` turns the one into the other. Nothing
here reads or writes a file.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Final, Generic, Literal, TypeVar, get_args

import attrs
import numpy as np
from numpy.typing import NDArray

DatasetName = Literal["mnist", "fashion-mnist"]
SplitName = Literal["train", "valid", "test"]

DATASETS: Final[tuple[DatasetName, ...]] = get_args(DatasetName)
SPLITS: Final[tuple[SplitName, ...]] = get_args(SplitName)

N_PIXELS: Final = 784
IMAGE_SHAPE: Final = (28, 28)
N_CLASSES: Final = 10
PIXEL_SCALE: Final = 1.0 / 256.0
"""Byte ``k`` becomes ``k * PIXEL_SCALE``: exact in float32 and float64 (a power of two)."""

FloatT = TypeVar("FloatT", np.float32, np.float64)

U8 = NDArray[np.uint8]


# ---------------------------------------------------------------------------
# Errors


class DataError(ValueError):
    """A data file is corrupt, truncated or malformed; the message names the file."""


class ChecksumError(DataError):
    """A file's sha256 is not the one expected."""


class UnsafePickleError(DataError, pickle.UnpicklingError):
    """A pickle asked for something other than numpy array reconstruction."""


class DataNotFoundError(FileNotFoundError):
    """No source holds the dataset; the message lists the sources tried and the fetch command."""


# ---------------------------------------------------------------------------
# Records


@attrs.frozen(eq=False)
class Split(Generic[FloatT]):
    """One split: images ``x`` (N, 784) in [0, 1], labels ``y`` (N,) int64 in 0..9."""

    x: NDArray[FloatT]
    y: NDArray[np.int64]

    def __attrs_post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.shape != (self.x.shape[0],):
            raise ValueError(
                f"Split needs x (N, D) and y (N,), got {self.x.shape} and {self.y.shape}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n(self) -> int:
        """Number of samples N."""
        return len(self)

    def subset(self, n: int) -> Split[FloatT]:
        """The first ``n`` samples: x (n, 784), y (n,). Views, no copy."""
        if not 0 <= n <= len(self):
            raise ValueError(f"subset({n}) of a split of {len(self)} samples")
        return Split(self.x[:n], self.y[:n])


@attrs.frozen(eq=False)
class Dataset(Generic[FloatT]):
    """The splits of one dataset that were asked for; ``.train``, ``.valid``, ``.test``.

    Reading a split that was not loaded raises ``LookupError`` saying how to load it.
    """

    name: str
    source: str
    _train: Split[FloatT] | None = None
    _valid: Split[FloatT] | None = None
    _test: Split[FloatT] | None = None

    @property
    def train(self) -> Split[FloatT]:
        """Training split: 50,000 samples for MNIST and Fashion-MNIST."""
        return self.get("train")

    @property
    def valid(self) -> Split[FloatT]:
        """Validation split: 10,000 samples (the last 10,000 of the idx training file)."""
        return self.get("valid")

    @property
    def test(self) -> Split[FloatT]:
        """Test split: 10,000 samples."""
        return self.get("test")

    @property
    def splits(self) -> tuple[SplitName, ...]:
        """Names of the loaded splits, in train / valid / test order."""
        return tuple(s for s in SPLITS if self._lookup(s) is not None)

    def get(self, split: SplitName) -> Split[FloatT]:
        """The split named ``split``; ``LookupError`` if it was not loaded."""
        found = self._lookup(split)
        if found is None:
            raise LookupError(
                f"split {split!r} of {self.name!r} was not loaded (loaded: {list(self.splits)}); "
                f"pass split=(..., {split!r}) to fmlp.data.load"
            )
        return found

    def _lookup(self, split: str) -> Split[FloatT] | None:
        if split == "train":
            return self._train
        if split == "valid":
            return self._valid
        if split == "test":
            return self._test
        raise LookupError(f"unknown split {split!r}; known: {list(SPLITS)}")


@attrs.frozen(eq=False)
class RawSplit:
    """Stored form of a split: images x (N, 784) uint8 bytes k, labels y (N,) uint8."""

    x: U8
    y: U8


@attrs.frozen(eq=False)
class RawDataset:
    """All three splits as stored in the cache (uint8), and where they came from."""

    train: RawSplit
    valid: RawSplit
    test: RawSplit
    source: str

    def get(self, split: SplitName) -> RawSplit:
        return {"train": self.train, "valid": self.valid, "test": self.test}[split]

    @property
    def counts(self) -> tuple[int, int, int]:
        """(N_train, N_valid, N_test)."""
        return (len(self.train.y), len(self.valid.y), len(self.test.y))


# ---------------------------------------------------------------------------
# Checks of names, splits and stored arrays


def _check_name(name: str) -> DatasetName:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return name


def _check_splits(split: str | Sequence[str]) -> tuple[SplitName, ...]:
    wanted = (split,) if isinstance(split, str) else tuple(split)
    bad = [s for s in wanted if s not in SPLITS]
    if bad or not wanted:
        raise ValueError(
            f"unknown or no split {bad or wanted!r}; known splits: {', '.join(SPLITS)}"
        )
    return tuple(s for s in SPLITS if s in wanted)


def _check_raw_split(x: U8, y: U8, where: str) -> RawSplit:
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise DataError(f"{where}: expected uint8 arrays, got {x.dtype} and {y.dtype}")
    if x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise DataError(f"{where}: images have shape {x.shape}, expected (N, {N_PIXELS})")
    if y.shape != (x.shape[0],):
        raise DataError(
            f"{where}: inconsistent sizes: {x.shape[0]} images but labels of shape {y.shape}"
        )
    if y.size and int(y.max()) >= N_CLASSES:
        raise DataError(f"{where}: label {int(y.max())} outside 0..{N_CLASSES - 1}")
    return RawSplit(x, y)


# ---------------------------------------------------------------------------
# Conversion to the public float record


def to_dataset(
    raw: RawDataset, name: str, *, split: Sequence[SplitName] = SPLITS, dtype: type[FloatT]
) -> Dataset[FloatT]:
    """Float view of the stored bytes: x = k / 256 as ``dtype`` (N, 784), y as int64 (N,)."""
    parts = {s: raw.get(s) for s in _check_splits(split)}
    return _dataset(name, raw.source, parts, dtype)


def _dataset(
    name: str, source: str, parts: Mapping[SplitName, RawSplit], dtype: type[FloatT]
) -> Dataset[FloatT]:
    def convert(s: SplitName) -> Split[FloatT] | None:
        return None if s not in parts else _to_split(parts[s], dtype)

    return Dataset(name, source, convert("train"), convert("valid"), convert("test"))


def _to_split(raw: RawSplit, dtype: type[FloatT]) -> Split[FloatT]:
    x: NDArray[FloatT] = np.multiply(raw.x, dtype(PIXEL_SCALE), dtype=dtype)
    return Split(x, raw.y.astype(np.int64))
