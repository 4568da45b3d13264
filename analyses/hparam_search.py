"""Hyper-parameter search for the two-hidden-layer MLP on MNIST (issue 5, section 2).

Glorot initialization throughout. The grid varies, around one base configuration,
the architecture (two hidden layers, 0.5M-1.0M parameters counted exactly), the
learning rate with the nonlinearity (relu, tanh, sigmoid), the mini-batch size --
all with plain SGD at a constant learning rate, the headline -- and, reported
separately, SGD with momentum and learning-rate schedules. Each configuration trains
10 epochs and records its validation accuracy r(valid) after every epoch.

The search is a list of configurations mapped over a ``concurrent.futures`` executor
(``analyses.sweep``): a task is a small ``HParamConfig``; a worker runs
``run_config``, which loads the data by name itself (cached per process) and returns a
small result record; the driver writes each result atomically as it arrives, named by
the configuration's hash, so a rerun skips finished runs. Each run also saves its final
parameters, so the chosen model needs no retraining: it is copied to
``<out>/hparam_search/best_params.npz`` and its test accuracy is measured once, after
the choice.

    python -m analyses.hparam_search [--out results] [--quick] [--quiet]
        [--dataset mnist] [--executor local|process|dask] [--workers N] [--scheduler ADDRESS]
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import attrs
import numpy as np
from threadpoolctl import threadpool_limits

import fmlp
from analyses.common import (
    QUICK_EVAL,
    QUICK_TRAIN,
    ResultStore,
    StudyData,
    Timer,
    atomic_write_json,
    config_hash,
    load_study_data,
    machine_info,
    read_json,
    save_figure,
    study_parser,
    synthetic_data,
    to_jsonable,
    use_agg,
)
from analyses.sweep import EXECUTOR_NAMES, SweepExecutor, SweepOutcome, make_executor, run_sweep
from fmlp.atomic import atomic_write_bytes
from fmlp.checkpoint import load as load_params
from fmlp.checkpoint import save as save_params
from fmlp.types import ACTIVATION_NAMES, SCHEME_NAMES, ActivationName, SchemeName, is_int

STUDY: Final = "hparam_search"
N_INPUT: Final = 784
N_CLASSES: Final = 10
PARAM_RANGE: Final = (500_000, 1_000_000)
MOMENTUM_BETA: Final = 0.9
STEP_EVERY_EPOCHS: Final = 2
STEP_FACTOR: Final = 0.5
TOP_CURVES: Final = 8
DIVERGED_LOSS: Final = 10 * math.log(N_CLASSES)
"""A run whose last epoch ends with a running training loss above ten times that of a
uniform guess (10 ln 10 = 23.0: the true class gets probability 1e-10 on average) has
diverged, even where the loss stayed finite (e.g. ReLU with lr = 1e6). A slow learner
(sigmoid with a small lr) hovers near ln 10 and is not flagged."""
RUN_BLAS_THREADS: Final = 1
"""BLAS threads of every run, whichever executor runs it. OpenBLAS's sums depend on its
thread count, so pinning it makes a run's result the same bit for bit in this process,
in a process pool or on a cluster; parallelism comes from running configurations side
by side (``--executor process``). On a shared, busy machine one thread is also much
faster than two contending ones."""

OptimizerName = Literal["sgd", "momentum"]
ScheduleName = Literal["constant", "cosine", "step"]
DTypeName = Literal["float32", "float64"]
OPTIMIZER_NAMES: Final[tuple[str, ...]] = get_args(OptimizerName)
SCHEDULE_NAMES: Final[tuple[str, ...]] = get_args(ScheduleName)
DTYPE_NAMES: Final[tuple[str, ...]] = get_args(DTypeName)
DTYPES: Final[Mapping[str, type[np.float32] | type[np.float64]]] = {
    "float32": np.float32,
    "float64": np.float64,
}
SCHEDULE_TEXT: Final[Mapping[str, str]] = {
    "constant": "constant learning rate",
    "cosine": "cosine decay from lr to 0 over all steps of the run",
    "step": f"lr halved every {STEP_EVERY_EPOCHS} epochs (x{STEP_FACTOR} per {STEP_EVERY_EPOCHS} epochs)",
}


# ------------------------------------------------------------------ configuration


def _widths(value: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(value)
    if not widths or not all(is_int(w) and int(w) > 0 for w in widths):
        raise ValueError(
            f"hidden must list positive integer widths, e.g. (512, 512); got {value!r}"
        )
    return tuple(int(w) for w in widths)


def _positive_int(name: str, value: object) -> None:
    if not is_int(value) or int(cast(int, value)) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")


@attrs.frozen
class HParamConfig:
    """One configuration of the search: everything a run depends on, and nothing else.

    hidden: the hidden widths (input 784 and 10 classes are implied). optimizer "sgd"
    is plain SGD; "momentum" is heavy-ball momentum with beta = 0.9. schedule:
    constant, cosine (to 0 over the run) or step (halved every 2 epochs). dataset is a
    name a worker loads by itself ("mnist", "fashion-mnist" or "synthetic");
    n_train / n_eval keep the first samples of the training / validation and test
    splits (None: the whole split). The same config always gives the same result.
    """

    hidden: tuple[int, ...] = attrs.field(converter=_widths)
    activation: ActivationName = "relu"
    lr: float = attrs.field(default=0.1, converter=float)
    batch_size: int = 64
    epochs: int = 10
    optimizer: OptimizerName = "sgd"
    schedule: ScheduleName = "constant"
    init: SchemeName = "glorot"
    seed: int = 0
    dtype: DTypeName = "float32"
    dataset: str = "mnist"
    n_train: int | None = None
    n_eval: int | None = None

    def __attrs_post_init__(self) -> None:
        _choice("activation", self.activation, ACTIVATION_NAMES)
        _choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_NAMES)
        _choice("init scheme", self.init, SCHEME_NAMES)
        _choice("dtype", self.dtype, DTYPE_NAMES)
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.dataset:
            raise ValueError(
                f"dataset must be a dataset name such as 'mnist', got {self.dataset!r}"
            )
        for name in ("n_train", "n_eval"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(name, value)

    @property
    def sizes(self) -> tuple[int, ...]:
        """All widths, input to output: (784, *hidden, 10)."""
        return (N_INPUT, *self.hidden, N_CLASSES)

    @property
    def n_params(self) -> int:
        """Weights and biases, counted exactly."""
        return fmlp.count_params(self.sizes)

    @property
    def in_range(self) -> bool:
        """Two hidden layers and a parameter count within [0.5M, 1.0M]."""
        return len(self.hidden) == 2 and PARAM_RANGE[0] <= self.n_params <= PARAM_RANGE[1]

    @property
    def headline(self) -> bool:
        """The assignment's setting: plain SGD, constant lr, an in-range model, all data."""
        return (
            self.optimizer == "sgd"
            and self.schedule == "constant"
            and self.in_range
            and self.n_train is None
            and self.n_eval is None
        )

    @property
    def architecture(self) -> str:
        return "-".join(str(s) for s in self.sizes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record whose hash names this configuration's result file."""
        record = attrs.asdict(self)
        record["hidden"] = list(self.hidden)
        return record

    @property
    def hash(self) -> str:
        return config_hash(self.to_dict())


def check_param_range(config: HParamConfig) -> HParamConfig:
    """``config`` if its model has two hidden layers and 0.5M-1.0M parameters, else a
    ValueError naming the count (the assignment's constraint on the headline models)."""
    if not config.in_range:
        raise ValueError(
            f"architecture {config.architecture} has {config.n_params:,} parameters in "
            f"{len(config.hidden)} hidden layers; the search needs two hidden layers and "
            f"{PARAM_RANGE[0]:,}-{PARAM_RANGE[1]:,} parameters: change the widths"
        )
    return config


@attrs.frozen
class Block:
    """A group of configurations that vary ``varies`` (config field names) around a base;
    one panel of the by-dimension figure and one tag in the table."""

    name: str
    varies: tuple[str, ...]
    configs: tuple[HParamConfig, ...]


def _evolve(base: HParamConfig, **changes: Any) -> HParamConfig:
    return attrs.evolve(base, **changes)


BASE: Final = HParamConfig(hidden=(512, 512))
"""The base of the grid: 784-512-512-10 (669,706 parameters), ReLU, SGD, lr 0.1,
batch 64, 10 epochs, float32, seed 0."""

ARCHITECTURES: Final = ((512, 512), (600, 400), (700, 500), (800, 300), (1000, 200))
LEARNING_RATES: Final = (0.01, 0.03, 0.1, 0.3)
BATCH_SIZES: Final = (32, 64, 128, 256)


def full_grid(dataset: str = "mnist") -> tuple[Block, ...]:
    """Stage 1 of the search: 25 distinct configurations, every model within [0.5M, 1.0M].

    nonlinearity x learning rate (12, plain SGD), architecture (5), mini-batch size (4),
    then momentum and schedules (6), all around BASE; the base is shared by blocks.
    Stage 2 (``combined_block``) adds up to 3 configurations built from its results.
    """
    base = _evolve(BASE, dataset=dataset)
    blocks = (
        Block(
            "nonlinearity x learning rate",
            ("lr", "activation"),
            tuple(
                _evolve(base, activation=a, lr=lr)
                for a in ACTIVATION_NAMES
                for lr in LEARNING_RATES
            ),
        ),
        Block("architecture", ("hidden",), tuple(_evolve(base, hidden=h) for h in ARCHITECTURES)),
        Block(
            "mini-batch size",
            ("batch_size",),
            tuple(_evolve(base, batch_size=b) for b in BATCH_SIZES),
        ),
        Block(
            "optimizer and schedule",
            ("optimizer", "schedule", "lr"),
            (
                base,
                _evolve(base, schedule="step"),
                _evolve(base, schedule="cosine"),
                _evolve(base, optimizer="momentum", lr=0.01),
                _evolve(base, optimizer="momentum", lr=0.01, schedule="cosine"),
                _evolve(base, optimizer="momentum", lr=0.02, schedule="cosine"),
                _evolve(base, optimizer="momentum", lr=0.01, schedule="cosine", batch_size=32),
            ),
        ),
    )
    for block in blocks:
        for config in block.configs:
            check_param_range(config)
    return blocks


COMBINED_FIELDS: Final = frozenset({"hidden", "activation", "lr", "batch_size"})
STAGE2_NAME: Final = "stage 2: best of each dimension, combined"


def combined_block(blocks: Sequence[Block], rows: Sequence[Mapping[str, Any]]) -> Block | None:
    """Stage 2, built from stage 1's results: take the best successful configuration of
    every plain-SGD block that varies only architecture, nonlinearity, learning rate or
    batch size, and combine their varied values (each block differs from the shared
    base only there). Then train that combination with plain SGD (a headline run),
    with a cosine schedule, and with momentum at the same effective step size
    lr / (1 - beta) and a cosine schedule. None when no block qualifies."""
    by_hash = {r["hash"]: r for r in rows}
    combined: HParamConfig | None = None
    for block in blocks:
        if not set(block.varies) <= COMBINED_FIELDS:
            continue
        if any(c.optimizer != "sgd" or c.schedule != "constant" for c in block.configs):
            continue
        ok = [c for c in block.configs if by_hash.get(c.hash, {}).get("status") == "ok"]
        if not ok:
            continue
        best = min(ok, key=lambda c: rank_key(by_hash[c.hash]))
        combined = (
            best
            if combined is None
            else _evolve(combined, **{f: getattr(best, f) for f in block.varies})
        )
    if combined is None:
        return None
    configs = (
        combined,
        _evolve(combined, schedule="cosine"),
        _evolve(
            combined,
            optimizer="momentum",
            lr=_round(combined.lr * (1 - MOMENTUM_BETA)),
            schedule="cosine",
        ),
    )
    return Block(STAGE2_NAME, ("optimizer", "schedule", "lr"), configs)


def _round(value: float) -> float:
    """``value`` to 6 significant digits, so 0.3 * (1 - 0.9) names the config as 0.03."""
    return float(f"{value:.6g}")


def quick_grid(dataset: str = "synthetic") -> tuple[Block, ...]:
    """A smoke run in seconds: 3 small models (not headline) on 600 / 200 samples, 2 epochs."""
    base = HParamConfig(
        hidden=(64, 32),
        lr=0.1,
        batch_size=32,
        epochs=2,
        dataset=dataset,
        n_train=QUICK_TRAIN,
        n_eval=QUICK_EVAL,
    )
    return (
        Block("nonlinearity", ("activation",), (base, _evolve(base, activation="tanh"))),
        Block(
            "optimizer and schedule",
            ("optimizer", "schedule", "lr"),
            (base, _evolve(base, optimizer="momentum", lr=0.05, schedule="cosine")),
        ),
    )


def grid_configs(blocks: Sequence[Block]) -> tuple[HParamConfig, ...]:
    """The distinct configurations of ``blocks``, in order of first appearance."""
    seen: dict[HParamConfig, None] = {}
    for block in blocks:
        for config in block.configs:
            seen.setdefault(config, None)
    return tuple(seen)


# ------------------------------------------------------------------------- a run


@functools.lru_cache(maxsize=2)
def _full_data(dataset: str, dtype: DTypeName) -> StudyData:
    if dataset == "synthetic":
        raise AssertionError("synthetic data is generated per size, not cached whole")
    return load_study_data(dataset, dtype=DTYPES[dtype])


@functools.lru_cache(maxsize=2)
def _synthetic(n_train: int, n_eval: int, dtype: DTypeName) -> StudyData:
    return synthetic_data(n_train, n_eval, dtype=DTYPES[dtype])


def load_named_data(
    dataset: str, n_train: int | None, n_eval: int | None, dtype: DTypeName
) -> StudyData:
    """The data a config names, loaded once per process (workers load their own;
    pixels never travel with a task). "synthetic" is analyses.common.synthetic_data
    with seed 0 (600 / 200 samples unless sized)."""
    if dataset == "synthetic":
        return _synthetic(n_train or QUICK_TRAIN, n_eval or QUICK_EVAL, dtype)
    data = _full_data(dataset, dtype)
    if n_train is None and n_eval is None:
        return data
    sizes = data.sizes
    return data.head(n_train or sizes["train"], n_eval or sizes["valid"])


def config_data(config: HParamConfig) -> StudyData:
    return load_named_data(config.dataset, config.n_train, config.n_eval, config.dtype)


def make_optimizer(config: HParamConfig, n_train: int) -> fmlp.Optimizer[Any]:
    """The config's optimizer with its learning-rate schedule (steps counted from 0)."""
    steps_per_epoch = -(-n_train // config.batch_size)
    lr: float | Callable[[int], float]
    if config.schedule == "constant":
        lr = config.lr
    elif config.schedule == "cosine":
        lr = fmlp.cosine_decay(config.lr, total_steps=config.epochs * steps_per_epoch)
    else:
        lr = fmlp.step_decay(
            config.lr, every=STEP_EVERY_EPOCHS * steps_per_epoch, factor=STEP_FACTOR
        )
    if config.optimizer == "momentum":
        return fmlp.momentum(lr, MOMENTUM_BETA)
    return fmlp.sgd(lr)


def params_path(params_dir: Path, config: HParamConfig) -> Path:
    return params_dir / f"{config.hash}.npz"


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def run_config(
    config: HParamConfig, *, params_dir: str | None = None, show_epochs: bool = False
) -> dict[str, Any]:
    """Train ``config`` and return its small result record (JSON-able).

    Loads its data by name (cached per process), initializes with the config's scheme
    and seed, trains with fmlp.fit (the epoch order derived from the same seed),
    measuring r(valid) and the validation loss after each epoch and the running mean of
    the mini-batch losses. A run that diverges (a non-finite loss) or raises while
    training is returned with status "failed" and its error; a failure to load the data
    is raised (the driver does not store it, so a rerun tries again). With
    ``params_dir`` the final parameters of a successful run are saved there as
    ``<config hash>.npz`` (fmlp.checkpoint), so the best model needs no retraining.
    """
    with threadpool_limits(limits=RUN_BLAS_THREADS):
        return _run_config(config, params_dir=params_dir, show_epochs=show_epochs)


def _run_config(
    config: HParamConfig, *, params_dir: str | None, show_epochs: bool
) -> dict[str, Any]:
    start = time.perf_counter()
    data = config_data(config)
    record: dict[str, Any] = {
        "hash": config.hash,
        "sizes": list(config.sizes),
        "n_params": config.n_params,
        "headline": config.headline,
        "data_sizes": data.sizes,
        "blas_threads": RUN_BLAS_THREADS,
        "status": "ok",
        "error": None,
        "diverged": False,
        "diverged_epoch": None,
        "val_accuracy": [],
        "val_loss": [],
        "running_loss": [],
        "running_accuracy": [],
        "epoch_seconds": [],
        "final_val_accuracy": math.nan,
        "final_val_loss": math.nan,
        "params_file": None,
    }
    bar: Any = None
    try:
        if show_epochs:
            from tqdm import tqdm

            bar = tqdm(
                total=config.epochs,
                desc=config.architecture,
                leave=False,
                position=1,
                dynamic_ncols=True,
            )
        params = fmlp.init(
            config.sizes,
            scheme=config.init,
            activation=config.activation,
            seed=config.seed,
            dtype=DTYPES[config.dtype],
        )
        state, metrics = fmlp.fit(
            params,
            data.x_train,
            data.y_train,
            epochs=config.epochs,
            batch_size=config.batch_size,
            optimizer=make_optimizer(config, len(data.y_train)),
            seed=config.seed,
            validation=(data.x_valid, data.y_valid),
            eval_train=False,
            callback=None if bar is None else (lambda epoch, m: bar.update(1)),
        )
    except Exception as exc:
        record.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc))[-2000:],
        )
    else:
        diverged = np.asarray(metrics.diverged, dtype=bool)
        record.update(
            val_accuracy=_floats(metrics.val_accuracy),
            val_loss=_floats(metrics.val_loss),
            running_loss=_floats(metrics.running_loss),
            running_accuracy=_floats(metrics.running_accuracy),
            epoch_seconds=_floats(metrics.seconds),
        )
        if diverged.any():
            first = int(np.argmax(diverged))
            record.update(
                status="failed",
                diverged=True,
                diverged_epoch=first + 1,
                error=f"diverged: the training loss became non-finite in epoch {first + 1} of {config.epochs}",
            )
        elif not record["running_loss"][-1] <= DIVERGED_LOSS:
            record.update(
                status="failed",
                diverged=True,
                final_val_accuracy=record["val_accuracy"][-1],
                final_val_loss=record["val_loss"][-1],
                error=(
                    f"diverged: the last epoch's running training loss {record['running_loss'][-1]:.4g} "
                    f"exceeds 10 ln({N_CLASSES}) = {DIVERGED_LOSS:.4g}, ten times the loss of a uniform guess"
                ),
            )
        else:
            record.update(
                final_val_accuracy=record["val_accuracy"][-1],
                final_val_loss=record["val_loss"][-1],
            )
            if params_dir is not None:
                save_params(params_path(Path(params_dir), config), state.params)
                record["params_file"] = f"params/{config.hash}.npz"
    finally:
        if bar is not None:
            bar.close()
    record["wall_seconds"] = time.perf_counter() - start
    return record


# ------------------------------------------------------------------ the search


def search(
    configs: Sequence[HParamConfig],
    *,
    out: Path,
    executor: SweepExecutor | None = None,
    quiet: bool = True,
    save: bool = True,
) -> SweepOutcome[HParamConfig]:
    """Run every configuration not yet in ``<out>/hparam_search/runs`` on ``executor``
    (default: inline, sequential), writing each result as it arrives."""
    store = ResultStore(out, STUDY)
    inline = executor is None or executor.name == "local"
    task = functools.partial(
        run_config,  # looked up now, so a test can count calls by monkeypatching it
        params_dir=str((store.folder / "params").resolve()) if save else None,
        show_epochs=inline and not quiet,
    )
    bar: Any = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(
            total=len(configs), desc="configurations", leave=False, position=0, dynamic_ncols=True
        )

    def on_result(i: int, config: HParamConfig, result: dict[str, Any], now: bool) -> None:
        if bar is not None:
            bar.update(1)
            acc = result.get("final_val_accuracy", math.nan)
            bar.set_postfix_str(
                f"last {config.architecture} {config.activation} r(valid)={acc:.4f}"
            )

    try:
        return run_sweep(task, configs, store=store, executor=executor, on_result=on_result)
    finally:
        if bar is not None:
            bar.close()


def rank_key(row: Mapping[str, Any]) -> tuple[int, float, float, str]:
    """Successful runs first, by final r(valid) (higher first), then validation loss,
    then hash (so ties are broken the same way every time)."""
    ok = row["status"] == "ok"
    acc = float(row["final_val_accuracy"]) if ok else 0.0
    loss = float(row["final_val_loss"]) if ok else math.inf
    return (0 if ok else 1, -acc, loss, str(row["hash"]))


def rows_of(outcome: SweepOutcome[HParamConfig], blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """One row per configuration (config, its blocks, its result), ranked."""
    tags: dict[HParamConfig, list[str]] = {}
    for block in blocks:
        for config in block.configs:
            tags.setdefault(config, []).append(block.name)
    rows = []
    for config, result in zip(outcome.configs, outcome.results):
        row = {
            "hash": config.hash,
            "config": config.to_dict(),
            "architecture": config.architecture,
            "blocks": tags.get(config, []),
            **{k: v for k, v in result.items() if k != "hash"},
        }
        row.setdefault("n_params", config.n_params)
        row.setdefault("headline", config.headline)
        row.setdefault("final_val_accuracy", math.nan)
        row.setdefault("final_val_loss", math.nan)
        rows.append(row)
    rows.sort(key=rank_key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def choose(rows: Sequence[Mapping[str, Any]], *, headline_only: bool) -> Mapping[str, Any] | None:
    """The best successful row (rows are ranked), among headline rows if asked."""
    for row in rows:
        if row["status"] == "ok" and (row["headline"] or not headline_only):
            return row
    return None


def finalize_choice(row: Mapping[str, Any], *, folder: Path, copy_to: str) -> dict[str, Any]:
    """After the choice: the chosen run's saved parameters (retrained deterministically
    only if their file is missing), copied to ``folder/copy_to``, and its test
    accuracy, measured once here."""
    config = HParamConfig(**row["config"])
    path = folder / "params" / f"{config.hash}.npz"
    retrained = False
    matches: bool | None = None
    if not path.exists():
        again = run_config(config, params_dir=str(folder / "params"))
        retrained = True
        matches = (
            again["val_accuracy"] == row["val_accuracy"] and again["val_loss"] == row["val_loss"]
        )
    params = load_params(path)
    if params.sizes != config.sizes:
        raise ValueError(
            f"{path} holds a {params.sizes} model, not the {config.sizes} the config names; delete it and rerun"
        )
    save_params(folder / copy_to, params)
    data = config_data(config)
    with threadpool_limits(limits=RUN_BLAS_THREADS):
        test = fmlp.evaluate(params, data.x_test, data.y_test)
        check = fmlp.evaluate(params, data.x_valid, data.y_valid)
    return {
        "hash": config.hash,
        "config": config.to_dict(),
        "architecture": config.architecture,
        "n_params": config.n_params,
        "headline": config.headline,
        "val_accuracy": row["val_accuracy"],
        "final_val_accuracy": row["final_val_accuracy"],
        "final_val_loss": row["final_val_loss"],
        "val_accuracy_of_saved_params": check.accuracy,
        "test_accuracy": test.accuracy,
        "test_loss": test.loss,
        "test_size": len(data.y_test),
        "params_file": copy_to,
        "retrained": retrained,
        "retrain_matches_stored": matches,
    }


# --------------------------------------------------------------------- tables


TABLE_COLUMNS: Final = (
    "rank",
    "r_valid",
    "max_r_valid",
    "val_loss",
    "architecture",
    "n_params",
    "activation",
    "lr",
    "batch_size",
    "optimizer",
    "schedule",
    "headline",
    "status",
    "wall_s",
    "blocks",
    "hash",
)


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        c = row["config"]
        accs = [a for a in row.get("val_accuracy", []) if math.isfinite(a)]
        out.append(
            {
                "rank": row["rank"],
                "r_valid": row["final_val_accuracy"],
                "max_r_valid": max(accs) if accs else math.nan,
                "val_loss": row["final_val_loss"],
                "architecture": row["architecture"],
                "n_params": row["n_params"],
                "activation": c["activation"],
                "lr": c["lr"],
                "batch_size": c["batch_size"],
                "optimizer": c["optimizer"],
                "schedule": c["schedule"],
                "headline": row["headline"],
                "status": row["status"] if row["status"] == "ok" else f"failed: {row.get('error')}",
                "wall_s": row.get("wall_seconds", math.nan),
                "blocks": "; ".join(row["blocks"]),
                "hash": row["hash"],
            }
        )
    return out


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.2f}"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sorted table for the README / report (accuracies in %)."""
    head = (
        "rank",
        "r(valid) %",
        "max over epochs %",
        "val loss",
        "architecture",
        "params",
        "activation",
        "lr",
        "batch",
        "optimizer",
        "schedule",
        "headline",
        "status",
        "wall s",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in table_rows(rows):
        cells = (
            str(t["rank"]),
            _pct(t["r_valid"]),
            _pct(t["max_r_valid"]),
            "-" if not math.isfinite(t["val_loss"]) else f"{t['val_loss']:.4g}",
            t["architecture"],
            f"{t['n_params']:,}",
            t["activation"],
            f"{t['lr']:g}",
            str(t["batch_size"]),
            t["optimizer"],
            t["schedule"],
            "yes" if t["headline"] else "no",
            str(t["status"]).replace("|", "/"),
            f"{t['wall_s']:.1f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for t in table_rows(rows):
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in t.items()})
    return buf.getvalue()


# -------------------------------------------------------------------- figures


def _label(config: HParamConfig, varies: Sequence[str]) -> str:
    parts = []
    for field in varies:
        if field == "hidden":
            parts.append(config.architecture)
        elif field == "lr":
            parts.append(f"lr {config.lr:g}")
        elif field == "batch_size":
            parts.append(f"batch {config.batch_size}")
        elif field == "schedule":
            parts.append(config.schedule)
        else:
            parts.append(str(getattr(config, field)))
    extra = []
    if "hidden" not in varies and config.hidden != BASE.hidden and config.n_train is None:
        extra.append(config.architecture)
    if (
        "batch_size" not in varies
        and config.batch_size != BASE.batch_size
        and config.n_train is None
    ):
        extra.append(f"batch {config.batch_size}")
    return " ".join(parts + extra)


def plot_curves(
    rows: Sequence[Mapping[str, Any]], folder: Path, top: int = TOP_CURVES
) -> list[Path]:
    """r(valid) per epoch (left) and the running training loss (right) of the top runs."""
    import matplotlib.pyplot as plt

    best = [r for r in rows if r["status"] == "ok"][:top]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in best:
        config = HParamConfig(**row["config"])
        label = (
            f"#{row['rank']} {config.architecture} {config.activation} lr {config.lr:g} "
            f"b{config.batch_size} {config.optimizer}/{config.schedule}"
        )
        epochs = np.arange(1, len(row["val_accuracy"]) + 1)
        ax.plot(epochs, 100 * np.asarray(row["val_accuracy"]), marker="o", ms=3, label=label)
        ax2.plot(epochs, row["running_loss"], marker="o", ms=3)
    ax.axhline(97.0, color="grey", ls=":", lw=1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax2.xaxis.get_major_locator().set_params(integer=True)
    ax.set(
        xlabel="epoch",
        ylabel="r(valid) %",
        title=f"validation accuracy, top {len(best)} configurations",
    )
    ax.legend(fontsize=6.5, loc="lower right")
    ax2.set_yscale("log")
    ax2.set(
        xlabel="epoch",
        ylabel="running mean of mini-batch losses",
        title="training loss (same runs)",
    )
    fig.tight_layout()
    paths = save_figure(fig, folder, "val_curves")
    plt.close(fig)
    return paths


def plot_by_dimension(
    rows: Sequence[Mapping[str, Any]], blocks: Sequence[Block], folder: Path
) -> list[Path]:
    """One panel per block: final r(valid) of each configuration, by the varied value
    (grouped bars when a block varies two dimensions). Failed runs are marked 'failed'."""
    import matplotlib.pyplot as plt

    by_hash = {r["hash"]: r for r in rows}
    ncols = min(3, len(blocks))
    nrows = -(-len(blocks) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.6 * nrows), squeeze=False)
    for ax in axes.flat[len(blocks) :]:
        ax.set_visible(False)
    for ax, block in zip(axes.flat, blocks):
        accs = [_ok_accuracy(by_hash[c.hash]) for c in block.configs]
        finite = [a for a in accs if math.isfinite(a)]
        lo = (min(finite) if finite else 0.9) * 100
        floor = max(0.0, math.floor(lo - 0.5 * (100 - lo) - 0.2))
        if len(block.varies) == 2:
            xs_field, color_field = block.varies
            xvals = list(dict.fromkeys(getattr(c, xs_field) for c in block.configs))
            colors = list(dict.fromkeys(getattr(c, color_field) for c in block.configs))
            width = 0.8 / len(colors)
            for j, cv in enumerate(colors):
                for i, xv in enumerate(xvals):
                    match = [
                        c
                        for c in block.configs
                        if getattr(c, xs_field) == xv and getattr(c, color_field) == cv
                    ]
                    if not match:
                        continue
                    acc = _ok_accuracy(by_hash[match[0].hash])
                    x = i + (j - (len(colors) - 1) / 2) * width
                    _bar(ax, x, acc, floor, width, f"C{j}", label=str(cv) if i == 0 else None)
            ax.set_xticks(
                range(len(xvals)),
                [f"{xs_field} {v:g}" if isinstance(v, float) else str(v) for v in xvals],
            )
            ax.legend(
                fontsize=7,
                title=color_field,
                title_fontsize=7,
                ncol=len(colors),
                loc="upper center",
                bbox_to_anchor=(0.5, -0.1),
            )
        else:
            for i, config in enumerate(block.configs):
                _bar(ax, i, _ok_accuracy(by_hash[config.hash]), floor, 0.7, f"C{i % 10}")
            ax.set_xticks(
                range(len(block.configs)),
                [_label(c, block.varies) for c in block.configs],
                rotation=35,
                ha="right",
                fontsize=7,
            )
        hi = 100 * max(finite) if finite else 100.0
        ax.set_ylim(floor, min(100.0, hi) + 0.12 * (min(100.0, hi) - floor) + 0.05)
        ax.set_title(block.name, fontsize=9)
        ax.set_ylabel("final r(valid) %")
        ax.axhline(97.0, color="grey", ls=":", lw=1)
    fig.tight_layout()
    paths = save_figure(fig, folder, "by_dimension")
    plt.close(fig)
    return paths


def _ok_accuracy(row: Mapping[str, Any]) -> float:
    return float(row["final_val_accuracy"]) if row["status"] == "ok" else math.nan


def _bar(
    ax: Any, x: float, acc: float, floor: float, width: float, color: str, label: str | None = None
) -> None:
    if math.isfinite(acc):
        ax.bar(x, 100 * acc - floor, width, bottom=floor, color=color, label=label)
        ax.text(
            x, 100 * acc, f"{100 * acc:.2f}", ha="center", va="bottom", fontsize=5.5, rotation=90
        )
    else:
        ax.text(x, floor, "failed", ha="center", va="bottom", fontsize=6, rotation=90, color="red")
        if label is not None:
            ax.bar(x, 0, width, bottom=floor, color=color, label=label)


# ---------------------------------------------------------------------- study


def study(
    blocks: Sequence[Block],
    *,
    out: Path,
    executor: SweepExecutor | None = None,
    quiet: bool = True,
    quick: bool = False,
    stage2: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) the search of ``blocks`` (then, with ``stage2``, default: not
    ``quick``, the combination of each dimension's best, ``combined_block``), choose,
    and write everything under ``<out>/hparam_search/``: runs/<hash>.json,
    params/<hash>.npz, best_params.npz, best_sgd_params.npz, table.md, table.csv,
    val_curves.png/pdf, by_dimension.png/pdf and summary.json (returned)."""
    use_agg()
    configs = grid_configs(blocks)
    if not configs:
        raise ValueError("the search has no configurations")
    folder = ResultStore(out, STUDY).folder
    for config in {(c.dataset, c.n_train, c.n_eval, c.dtype) for c in configs}:
        load_named_data(*config)  # fail fast, here, with the data's own message
    stage2 = not quick if stage2 is None else stage2
    extra: Block | None = None
    with Timer() as timer:
        outcome = search(configs, out=out, executor=executor, quiet=quiet)
        computed = len(outcome.computed)
        if stage2:
            extra = combined_block(blocks, rows_of(outcome, blocks))
        if extra is not None:
            blocks = (*blocks, extra)
            configs = grid_configs(blocks)
            outcome = search(configs, out=out, executor=executor, quiet=quiet)
            computed += len(outcome.computed)
    rows = rows_of(outcome, blocks)
    chosen: dict[str, Any] | None = None
    chosen_sgd: dict[str, Any] | None = None
    best_row = choose(rows, headline_only=False)
    if best_row is not None:
        chosen = finalize_choice(best_row, folder=folder, copy_to="best_params.npz")
    sgd_row = choose(rows, headline_only=True)
    if sgd_row is not None:
        chosen_sgd = (
            {**chosen, "params_file": "best_params.npz"}
            if chosen is not None and sgd_row is best_row
            else finalize_choice(sgd_row, folder=folder, copy_to="best_sgd_params.npz")
        )
    atomic_write_bytes(folder / "table.md", markdown_table(rows).encode())
    atomic_write_bytes(folder / "table.csv", csv_table(rows).encode())
    figures = [
        str(p.relative_to(folder))
        for p in plot_curves(rows, folder) + plot_by_dimension(rows, blocks, folder)
    ]
    executor_info = (
        {"name": "local", "workers": 1, "blas_threads": None}
        if executor is None
        else {
            "name": executor.name,
            "workers": executor.workers,
            "blas_threads": executor.blas_threads,
        }
    )
    invocations = log_invocation(
        folder,
        {
            "computed": computed,
            "sweep_seconds": timer.seconds,
            "n_configs": len(configs),
            "executor": executor_info,
            "loadavg_1min": _loadavg(),
        },
    )
    ok = [r for r in rows if r["status"] == "ok"]
    first = configs[0]
    data = config_data(first)
    summary: dict[str, Any] = {
        "study": STUDY,
        "quick": quick,
        "dataset": first.dataset,
        "data_sizes": data.sizes,
        "selection": (
            "best = highest final-epoch r(valid) over all configurations (ties: lower validation "
            "loss, then hash); best_sgd = the same among headline runs (plain SGD, constant lr, "
            "in-range model, all data). Test accuracy is measured once per chosen model, after the choice."
        ),
        "grid": {
            "n_configs": len(configs),
            "n_headline": sum(c.headline for c in configs),
            "base": attrs.evolve(BASE, dataset=first.dataset).to_dict()
            if not quick
            else configs[0].to_dict(),
            "blocks": [
                {"name": b.name, "varies": list(b.varies), "hashes": [c.hash for c in b.configs]}
                for b in blocks
            ],
            "init": sorted({c.init for c in configs}),
            "param_range": list(PARAM_RANGE),
            "stage2": None
            if extra is None
            else {
                "name": extra.name,
                "rule": "each plain-SGD block's best value of the dimensions it varies, combined; then "
                "plain SGD, SGD + cosine, and momentum at lr * (1 - beta) + cosine",
                "combined": extra.configs[0].to_dict(),
            },
            "momentum_beta": MOMENTUM_BETA,
            "blas_threads_per_run": RUN_BLAS_THREADS,
            "schedules": dict(SCHEDULE_TEXT),
        },
        "runs": rows,
        "best": chosen,
        "best_sgd": chosen_sgd,
        "meets_97": bool(chosen and chosen["final_val_accuracy"] >= 0.97),
        "above_98_4": bool(chosen and chosen["final_val_accuracy"] > 0.984),
        "n_ok": len(ok),
        "n_failed": len(rows) - len(ok),
        "failed": [
            {"hash": r["hash"], "error": r.get("error")} for r in rows if r["status"] != "ok"
        ],
        "n_computed_now": computed,
        "lost": [outcome.configs[i].hash for i in outcome.lost],
        "wall_seconds": {
            "sweep_this_invocation": timer.seconds,
            "runs_total": float(sum(r.get("wall_seconds", 0.0) for r in rows)),
        },
        "executor": executor_info,
        "invocations": invocations,
        "files": {"table_md": "table.md", "table_csv": "table.csv", "figures": figures},
        "machine": machine_info(),
    }
    ResultStore(out, STUDY).write_summary(to_jsonable(summary))
    return summary


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def log_invocation(folder: Path, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Append ``entry`` to ``folder/invocations.json`` if it computed any run, and return
    the log: the wall time of every invocation that trained something (a resumed search
    spreads its time over several), kept apart from the results, which do not vary."""
    path = folder / "invocations.json"
    try:
        log = read_json(path) if path.exists() else []
    except (ValueError, UnicodeDecodeError):
        log = []
    log = [e for e in log if isinstance(e, dict)] if isinstance(log, list) else []
    if entry.get("computed"):
        log.append(dict(to_jsonable(dict(entry))))
        atomic_write_json(path, log)
    return log


def main(argv: Sequence[str] | None = None) -> int:
    parser = study_parser(__doc__.splitlines()[0] if __doc__ else STUDY)
    parser.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default="local",
        help="local: sequential, in this process (default); process: a process pool; "
        "dask: Dask distributed (needs pip install '.[cluster]')",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="process pool or LocalCluster size (default: the number of cores); each run uses one BLAS thread",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --executor dask: a running scheduler (e.g. tcp://host:8786); default: a LocalCluster",
    )
    args = parser.parse_args(argv)
    dataset = str(args.dataset)
    blocks = quick_grid(dataset) if args.quick else full_grid(dataset)
    try:
        with make_executor(
            args.executor,
            workers=args.workers,
            blas_threads=RUN_BLAS_THREADS,
            scheduler=args.scheduler,
        ) as ex:
            summary = study(blocks, out=args.out, executor=ex, quiet=args.quiet, quick=args.quick)
    except ValueError as exc:
        print(f"hparam_search: {exc}", file=sys.stderr)
        return 2
    folder = ResultStore(args.out, STUDY).folder
    print(markdown_table(summary["runs"]), end="")
    best = summary["best"]
    if best is None:
        print("no configuration trained successfully; see the failures above", file=sys.stderr)
        return 1
    print(
        f"best r(valid) {100 * best['final_val_accuracy']:.2f}% ({best['architecture']}, "
        f"{best['config']['activation']}, lr {best['config']['lr']:g}, batch {best['config']['batch_size']}, "
        f"{best['config']['optimizer']}/{best['config']['schedule']}); test accuracy {100 * best['test_accuracy']:.2f}%"
    )
    sgd = summary["best_sgd"]
    if sgd is not None:
        print(
            f"best plain SGD r(valid) {100 * sgd['final_val_accuracy']:.2f}% ({sgd['architecture']}, "
            f"{sgd['config']['activation']}, lr {sgd['config']['lr']:g}, batch {sgd['config']['batch_size']}); "
            f"test accuracy {100 * sgd['test_accuracy']:.2f}%"
        )
    print(
        f"sweep wall time {summary['wall_seconds']['sweep_this_invocation']:.1f} s "
        f"({summary['n_computed_now']} runs computed now); results in {folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
