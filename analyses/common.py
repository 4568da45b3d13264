"""What every study shares, written once: the problem's sizes, the data split and how a
worker loads it, the MLP configuration and its optimizer, figures, and a record of the
machine. Studies import this; fmlp itself never does, and no study imports another.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import importlib.metadata
import io
import math
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal, get_args

import attrs
import numpy as np

import fmlp
from fmlp.atomic import atomic_write_bytes
from fmlp.types import (
    ACTIVATION_NAMES,
    SCHEME_NAMES,
    ActivationName,
    FloatArray,
    IntArray,
    SchemeName,
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
        if not is_int(self.size) or self.size <= 0:
            raise ValueError(f"EvalSubset: size must be a positive integer, got {self.size!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"EvalSubset: seed must be a non-negative integer, got {self.seed!r}")

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
    n_train: int = QUICK_TRAIN, n_eval: int = QUICK_EVAL, *, seed: int = 0, dtype: Any = np.float64
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


# --------------------------------------------------------------------- the MLP

OptimizerName = Literal["sgd", "momentum", "nesterov", "adam", "adamw"]
ScheduleName = Literal["constant", "cosine", "step"]
OPTIMIZER_NAMES: Final[tuple[str, ...]] = get_args(OptimizerName)
SCHEDULE_NAMES: Final[tuple[str, ...]] = get_args(ScheduleName)
MOMENTUM_BETA: Final = 0.9
STEP_EVERY_EPOCHS: Final = 2
STEP_FACTOR: Final = 0.5


def _widths(value: Any) -> tuple[int, ...]:
    widths = tuple(value)
    if not widths or not all(is_int(w) and int(w) > 0 for w in widths):
        raise ValueError(
            f"hidden must list positive integer widths, e.g. (512, 512); got {value!r}"
        )
    return tuple(int(w) for w in widths)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


@attrs.frozen
class MlpConfig:
    """How an MLP is built and trained: everything a run depends on besides the data.

    hidden: the hidden widths (784 inputs and 10 classes are implied). optimizer:
    ``sgd``, ``momentum`` / ``nesterov`` (beta 0.9), ``adam`` or ``adamw``.
    weight_decay: L2 added to the gradient (decoupled from it for adamw). schedule:
    ``constant``, ``cosine`` (to 0 over ``epochs`` epochs) or ``step`` (halved every 2
    epochs). Every schedule is defined over the full ``epochs``, so a run paused after
    some epochs and resumed goes on exactly as an uninterrupted one.
    """

    hidden: tuple[int, ...] = attrs.field(converter=_widths)
    activation: ActivationName = "relu"
    optimizer: OptimizerName = "sgd"
    lr: float = attrs.field(default=0.1, converter=float)
    schedule: ScheduleName = "constant"
    weight_decay: float = attrs.field(default=0.0, converter=float)
    batch_size: int = 64
    epochs: int = 10
    init: SchemeName = "glorot"
    seed: int = 0
    dtype: DTypeName = "float32"

    def __attrs_post_init__(self) -> None:
        _choice("activation", self.activation, ACTIVATION_NAMES)
        _choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_NAMES)
        _choice("init scheme", self.init, SCHEME_NAMES)
        _choice("dtype", self.dtype, tuple(DTYPES))
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if not is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """All widths, input to output: (784, *hidden, 10)."""
        return (N_INPUT, *self.hidden, N_CLASSES)

    @property
    def n_params(self) -> int:
        return fmlp.count_params(self.sizes)

    @property
    def architecture(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    @property
    def in_range(self) -> bool:
        """Two hidden layers and 0.5M-1.0M parameters."""
        return len(self.hidden) == 2 and PARAM_RANGE[0] <= self.n_params <= PARAM_RANGE[1]

    @property
    def plain_sgd(self) -> bool:
        """The assignment's training: plain SGD at a constant learning rate, no decay."""
        return self.optimizer == "sgd" and self.schedule == "constant" and self.weight_decay == 0

    def describe(self) -> str:
        wd = f", weight decay {self.weight_decay:g}" if self.weight_decay else ""
        return (
            f"{self.architecture} {self.activation}, {self.optimizer} lr {self.lr:g} "
            f"{self.schedule}{wd}, batch {self.batch_size}"
        )


BASE_MLP: Final = MlpConfig(hidden=(512, 512))
"""The base configuration: 784-512-512-10 (669,706 parameters), ReLU, plain SGD at lr
0.1, batch 64, 10 epochs, Glorot, seed 0, float32."""


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return -(-n_train // batch_size)


def make_optimizer(config: MlpConfig, n_train: int) -> fmlp.Optimizer[Any]:
    """The config's optimizer with its learning-rate schedule over ``config.epochs``
    epochs of ``n_train`` samples (steps counted from 0)."""
    per_epoch = steps_per_epoch(n_train, config.batch_size)
    lr: float | Callable[[int], float]
    if config.schedule == "constant":
        lr = config.lr
    elif config.schedule == "cosine":
        lr = fmlp.cosine_decay(config.lr, total_steps=config.epochs * per_epoch)
    else:
        lr = fmlp.step_decay(config.lr, every=STEP_EVERY_EPOCHS * per_epoch, factor=STEP_FACTOR)
    wd = config.weight_decay
    base: fmlp.Optimizer[Any]
    if config.optimizer == "adamw":
        return fmlp.adamw(lr, weight_decay=wd)
    if config.optimizer == "adam":
        base = fmlp.adam(lr)
    elif config.optimizer in ("momentum", "nesterov"):
        base = fmlp.momentum(lr, MOMENTUM_BETA, nesterov=config.optimizer == "nesterov")
    else:
        base = fmlp.sgd(lr)
    return fmlp.chain(fmlp.add_decayed_weights(wd), base) if wd else base


def init_params(config: MlpConfig) -> fmlp.MLP:
    return fmlp.init(
        config.sizes,
        scheme=config.init,
        activation=config.activation,
        seed=config.seed,
        dtype=DTYPES[config.dtype],
    )


def params_digest(params: fmlp.MLP) -> str:
    """sha256 of the parameters (dtype, shapes and bytes of every leaf) and activation."""
    h = hashlib.sha256(params.activation.encode())
    for leaf in fmlp.tree_leaves(params):
        h.update(f"{leaf.dtype}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- figures


def new_figure(*, figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure that draws with its own Agg canvas: no pyplot, no global
    backend, nothing left open."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_figure(fig: Any, folder: Path, name: str) -> list[str]:
    """Save ``fig`` as ``name.svg`` (vector, for the report), atomically; returns the file
    name. The same data give the same bytes: no date, a fixed hash salt for the SVG's ids,
    glyphs drawn as paths (no font needed to view it). Settings are scoped to this call."""
    from matplotlib import rc_context

    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "fmlp", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    atomic_write_bytes(folder / f"{name}.svg", buf.getvalue())
    return [f"{name}.svg"]


# ---------------------------------------------------------------------- machine


@attrs.frozen
class BlasInfo:
    internal_api: str | None
    version: str | None
    architecture: str | None
    num_threads: int | None


@attrs.frozen
class MachineInfo:
    """Versions and machine facts recorded beside the results."""

    python: str
    numpy: str
    torch: str | None
    fmlp: str
    fmlp_commit: str
    cores: int
    platform: str
    blas: tuple[BlasInfo, ...]
    openblas_coretype: str | None


def _is_scipys(filepath: str | None) -> bool:
    """True for a BLAS library that scipy ships (in ``scipy.libs``, scipy's package or
    ``scipy_openblas32``), not numpy's."""
    folders = Path(filepath or "").parts[:-1]
    return any(f in ("scipy", "scipy.libs", "scipy_openblas32") for f in folders)


def _blas_info() -> tuple[BlasInfo, ...]:
    """The BLAS that numpy uses. Where scipy is installed, numba loads scipy's OpenBLAS
    too (when its compiler starts, whether or not this process has run a kernel yet); it
    does none of fmlp's work, and listing it would make this record depend on what ran
    first in the process, so it is left out (unless it is the only one)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ()
    infos = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    numpy_own = [info for info in infos if not _is_scipys(info.get("filepath"))]
    return tuple(
        BlasInfo(
            internal_api=info.get("internal_api"),
            version=info.get("version"),
            architecture=info.get("architecture"),
            num_threads=info.get("num_threads"),
        )
        for info in (numpy_own or infos)
    )


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_info() -> MachineInfo:
    try:  # the installed version, without paying for importing torch
        torch_version: str | None = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return MachineInfo(
        python=platform.python_version(),
        numpy=np.__version__,
        torch=torch_version,
        fmlp=fmlp.__version__,
        fmlp_commit=git_commit(),
        cores=os.cpu_count() or 1,
        platform=platform.platform(),
        blas=_blas_info(),
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
    )


def floats(values: Any) -> tuple[float, ...]:
    """A numpy array (or sequence) as a tuple of Python floats (NaN kept)."""
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
