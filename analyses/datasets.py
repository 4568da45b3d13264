"""The data every study uses: the problem's sizes, the split and how a worker loads it by
name (MNIST, Fashion-MNIST, or a small synthetic stand-in for tests), and the fixed
training subset the curves are measured on."""

from __future__ import annotations

import errno
import functools
from typing import Final, Literal

import attrs
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fmlp.checks import nonnegative_int, positive_int
from fmlp.types import (
    FloatArray,
    IntArray,
    is_int,
)

N_INPUT: Final = 784
"""Inputs: 28 x 28 pixels."""
N_CLASSES: Final = 10
PARAM_RANGE: Final = (500_000, 1_000_000)
"""Weights and biases of the assignment's MLPs: two hidden layers within this range."""
QUICK_TRAIN: Final = 600
QUICK_EVAL: Final = 200

DTypeName = Literal["float32", "float64"]
DTYPES: Final[dict[str, type[np.float32] | type[np.float64]]] = {
    "float32": np.float32,
    "float64": np.float64,
}


# --------------------------------------------------------------------------- data


def _positive_or_none(name: str, value: int | None) -> None:
    if value is not None and (not is_int(value) or value <= 0):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


@attrs.frozen
class DataSpec:
    """The data every study uses, by name: ``mnist`` (the classic 50,000 / 10,000 /
    10,000 split), ``fashion-mnist`` (the same split sizes), or ``synthetic`` (a small
    learnable stand-in for tests). ``n_train`` / ``n_eval`` keep the first samples of
    the training / validation and test splits (None: all). Workers load the data by
    this name from their own cache, so no pixels travel with a task."""

    name: str = "mnist"
    n_train: int | None = None
    n_eval: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise ValueError("the dataset name is empty: use mnist, fashion-mnist or synthetic")
        _positive_or_none("n_train", self.n_train)
        _positive_or_none("n_eval", self.n_eval)

    @property
    def label(self) -> str:
        if self.n_train is None and self.n_eval is None:
            return self.name
        return f"{self.name}[train {self.n_train or 'all'}, eval {self.n_eval or 'all'}]"


TRAIN_EVAL_SIZE: Final = 10_000
TRAIN_EVAL_SEED: Final = 7


@attrs.frozen
class EvalSubset:
    """The training samples the MLP and the CNN are measured on after each epoch (their
    training loss and error, cheaper than the whole split):
    ``np.random.default_rng(seed).choice(n_train, min(size, n_train), replace=False)``,
    sorted: the same samples for every run and epoch."""

    size: int = TRAIN_EVAL_SIZE
    seed: int = TRAIN_EVAL_SEED

    def __attrs_post_init__(self) -> None:
        positive_int("size", self.size, "EvalSubset")
        nonnegative_int("seed", self.seed, "EvalSubset")

    def indices(self, n_train: int) -> IntArray:
        """The sorted indices into a training split of ``n_train`` samples."""
        k = min(self.size, n_train)
        chosen = np.random.default_rng(self.seed).choice(n_train, k, replace=False)
        return np.sort(chosen).astype(np.int64)

    def describe(self, n_train: int) -> str:
        k = min(self.size, n_train)
        if k == n_train:
            return f"all {n_train:,} training samples"
        return (
            f"a fixed subset of {k:,} of the {n_train:,} training samples, "
            f"np.random.default_rng({self.seed}).choice({n_train}, {k}, replace=False), sorted"
        )


def quick_data(name: str = "mnist") -> DataSpec:
    """The smoke-run data: the first 600 training and 200 validation / test samples."""
    return DataSpec(name, QUICK_TRAIN, QUICK_EVAL)


@attrs.frozen
class SplitSizes:
    """How many samples each split holds."""

    train: int
    valid: int
    test: int

    def text(self) -> str:
        """'train 50,000, valid 10,000, test 10,000'."""
        return f"train {self.train:,}, valid {self.valid:,}, test {self.test:,}"


@attrs.frozen(eq=False)
class StudyData:
    """The three splits. x: (N, 784) in [0, 1]; y: int64 (N,)."""

    name: str
    x_train: FloatArray
    y_train: IntArray
    x_valid: FloatArray
    y_valid: IntArray
    x_test: FloatArray
    y_test: IntArray

    def head(self, n_train: int | None, n_eval: int | None) -> StudyData:
        """The first ``n_train`` training and ``n_eval`` validation/test samples."""
        t = slice(None, n_train)
        e = slice(None, n_eval)
        return attrs.evolve(
            self,
            x_train=self.x_train[t],
            y_train=self.y_train[t],
            x_valid=self.x_valid[e],
            y_valid=self.y_valid[e],
            x_test=self.x_test[e],
            y_test=self.y_test[e],
        )

    @property
    def sizes(self) -> SplitSizes:
        return SplitSizes(len(self.y_train), len(self.y_valid), len(self.y_test))


def synthetic_data(
    n_train: int = QUICK_TRAIN,
    n_eval: int = QUICK_EVAL,
    *,
    seed: int = 0,
    dtype: DTypeLike = np.float64,
) -> StudyData:
    """A small learnable stand-in for MNIST: each class is a noisy copy of its own
    random prototype in [0, 1]^784."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((N_CLASSES, N_INPUT))

    def draw(n: int) -> tuple[FloatArray, IntArray]:
        y = rng.integers(0, N_CLASSES, n)
        x = np.clip(prototypes[y] + 0.3 * rng.standard_normal((n, N_INPUT)), 0.0, 1.0)
        return np.ascontiguousarray(x, dtype=dtype), y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = draw(n_train), draw(n_eval), draw(n_eval)
    return StudyData("synthetic", xt, yt, xv, yv, xs, ys)


@functools.lru_cache(maxsize=4)
def _load_full(name: str, dtype: DTypeName) -> StudyData:
    import fmlp.data as fdata

    # Memory maps of the cache's arrays: the workers of one machine share one copy of
    # the pages instead of each holding its own (220 MB in float32, 440 MB in float64).
    try:
        ds = fdata.open_mapped(name, dtype=DTYPES[dtype])
    except fdata.DataNotFoundError:  # not in the cache: the other sources, in memory
        ds = fdata.load(name, dtype=DTYPES[dtype])
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # a cache this user cannot write to cannot hold the maps: its file, in memory
        ds = fdata.load(name, dtype=DTYPES[dtype])
    return StudyData(name, ds.train.x, ds.train.y, ds.valid.x, ds.valid.y, ds.test.x, ds.test.y)


def load_data(spec: DataSpec, dtype: DTypeName = "float32") -> StudyData:
    """The data ``spec`` names, in ``dtype``; loaded once per process and dtype."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected float32 or float64")
    if spec.name == "synthetic":
        return synthetic_data(
            spec.n_train or QUICK_TRAIN, spec.n_eval or QUICK_EVAL, dtype=DTYPES[dtype]
        )
    data = _load_full(spec.name, dtype)
    if spec.n_train is None and spec.n_eval is None:
        return data
    return data.head(spec.n_train, spec.n_eval)


def floats(values: ArrayLike) -> tuple[float, ...]:
    """A numpy array (or sequence) as a tuple of Python floats (NaN kept)."""
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
