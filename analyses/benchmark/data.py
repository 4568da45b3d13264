"""The data the benchmark trains on (synthetic of MNIST's shape, or a cached dataset), and
the two throughputs that are not training: loading a dataset from the cache and
``fmlp.evaluate``, as records."""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs
import numpy as np

import fmlp
from analyses.benchmark.spec import SEED, SIZES
from analyses.datasets import DataSpec, DTypeName, StudyData, load_data, synthetic_data


@attrs.frozen
class EvalTiming:
    """``fmlp.evaluate`` on ``samples`` rows in one dtype: every time and the median."""

    samples: int
    seconds: tuple[float, ...]
    seconds_median: float
    samples_per_second: float


@attrs.frozen
class Evaluation:
    """Evaluation throughput on ``dataset``, per dtype."""

    dataset: str
    dtypes: dict[str, EvalTiming]


@attrs.frozen
class LoadTiming:
    """Loading a dataset from the cache into arrays of one dtype."""

    seconds: tuple[float, ...]
    seconds_median: float


@attrs.frozen
class DataLoading:
    """Loading ``dataset`` per dtype, or (``available`` false) why it was not measured."""

    available: bool
    dataset: str
    dtypes: dict[str, LoadTiming]
    note: str | None = None


def get_data(dataset: str, dtype: str, n_train: int, n_eval: int) -> StudyData:
    """Synthetic data of MNIST's shape, or a cached dataset, cut to ``n_train`` training
    and ``n_eval`` validation/test samples, in ``dtype``."""
    if dataset == "synthetic":
        return synthetic_data(n_train, n_eval, dtype=dtype)
    return load_data(DataSpec(dataset), _dtype_name(dtype)).head(n_train, n_eval)


def _dtype_name(dtype: str) -> DTypeName:
    name = str(np.dtype(dtype))
    if name == "float32":
        return "float32"
    if name == "float64":
        return "float64"
    raise ValueError(f"unsupported dtype {dtype}: the benchmark trains in float32 or float64")


def measure_evaluation(
    data: StudyData, dtypes: Sequence[str], samples: int, reps: int, *, dataset: str
) -> Evaluation:
    """Seconds of ``fmlp.evaluate`` on ``samples`` rows of the validation+test images of
    ``data`` (``dataset``)."""
    out: dict[str, EvalTiming] = {}
    x_all = np.concatenate([data.x_valid, data.x_test])[:samples]
    y_all = np.concatenate([data.y_valid, data.y_test])[:samples]
    for dtype in dtypes:
        x = np.ascontiguousarray(x_all, dtype=dtype)
        params = fmlp.init(SIZES, seed=SEED, dtype=dtype)
        fmlp.evaluate(params, x, y_all)
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fmlp.evaluate(params, x, y_all)
            secs.append(time.perf_counter() - t0)
        med = float(np.median(secs))
        out[dtype] = EvalTiming(
            samples=int(x.shape[0]),
            seconds=tuple(secs),
            seconds_median=med,
            samples_per_second=x.shape[0] / med,
        )
    return Evaluation(dataset=dataset, dtypes=out)


def dataset_cached(name: str) -> bool:
    """True when fmlp's data cache holds ``name``."""
    try:
        from fmlp import data as fdata

        return bool(fdata.cache_path(name).exists())
    except (ImportError, AttributeError, ValueError, OSError):
        return False


def measure_loading(name: str, dtypes: Sequence[str], reps: int) -> DataLoading:
    """Seconds to load ``name`` from the cache into arrays of each dtype."""
    if not dataset_cached(name):
        return DataLoading(
            available=False,
            dataset=name,
            dtypes={},
            note=f"{name} is not in the cache (python -m fmlp.data fetch {name})",
        )
    from fmlp import data as fdata

    out: dict[str, LoadTiming] = {}
    for dtype in dtypes:
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fdata.load(name, dtype=np.dtype(dtype).type)
            secs.append(time.perf_counter() - t0)
        out[dtype] = LoadTiming(seconds=tuple(secs), seconds_median=float(np.median(secs)))
    return DataLoading(available=True, dataset=name, dtypes=out)
