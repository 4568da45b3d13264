"""The CNN study: a PyTorch CNN with as many parameters as the MLP (within 10%), trained
10 epochs on the same 50,000 / 10,000 / 10,000 split; CNN versus MLP; dropout versus the
vanilla CNN, each over several seeds.

    python -m analyses.cnn_study [--out results] [--quick] [--quiet] [--dataset mnist]
                                 [--seeds 3] [--epochs 10] [--threads 2] [--device auto]

After every epoch each run records, on the full training and validation sets, the mean
cross-entropy and the error rate (1 - accuracy), and the wall time of the epoch (training
and evaluation apart). The MLP is the best configuration of the hyper-parameter search
(``<out>/hparam_search/summary.json``; 784-512-512-10 ReLU if the search has not run): its
per-epoch curves come from the search when it recorded them on the full sets, otherwise
it is retrained here with ``fmlp.fit`` for the same number of epochs on the same data.

Every run is one JSON file under ``<out>/cnn_study/runs/`` named by a hash of its
configuration, so an interrupted study resumes where it stopped. The summary the report
reads is ``<out>/cnn_study/summary.json``; figures are PNG and PDF in ``<out>/cnn_study/``.

Reproducible: each run draws its initial weights and dropout masks from its own seed
inside ``torch.random.fork_rng`` with deterministic algorithms on, and visits the
training samples in the order ``numpy.random.default_rng((seed, epoch)).permutation``
(no DataLoader), so the same seed gives the same curves bit for bit on one device and
thread count. CUDA is used when available (``--device auto``), else the CPU.

Choices made by measurement on the 2-core CPU (``--time`` re-measures the candidates of
``timing_candidates`` and writes ``<out>/cnn_study/timing.json``, which the summary
then carries): valid (unpadded) 5x5 convolutions with 16 and 32 channels, each followed
by a 2x2 max-pool, so the convolutions work on small images and the parameters sit in
the FC layer (32-32 channels or 'same' padding took clearly longer per epoch);
channels_last (faster in every measurement, most of all for evaluation); 2 threads
with passive OpenMP waits (faster than 1 on an idle machine; with active waits 2
threads collapsed whenever other processes held the cores); batch 128 (batch 256 is
faster per epoch but, with half the steps, ended behind in validation error after 10
epochs). A profile of the training step then showed dropout's ``bernoulli_`` and the
per-tensor Adam kernels each taking a sixth of the time, and evaluation spending half
its time allocating and filling fresh buffers: hence a ``rand_like`` dropout mask, fused
Adam, max-pool before an in-place ReLU, and evaluation in chunks of 500.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
from threadpoolctl import threadpool_limits

from analyses.cnn_models import (
    CNNSpec,
    ConvBlock,
    build_cnn,
    count_params,
    describe,
    layer_table,
    match_params,
    module_param_count,
)
from analyses.common import (
    ResultStore,
    StudyData,
    Timer,
    load_study_data,
    machine_info,
    progress,
    read_json,
    save_figure,
    study_parser,
    use_agg,
)
from analyses.hparam_search import BASE, DTYPES, RUN_BLAS_THREADS, HParamConfig, make_optimizer
from fmlp.atomic import atomic_write_bytes
from fmlp.types import FloatArray, IntArray

# Measured on the shared 2-core machine: with GNU OpenMP's default (active, spinning)
# waits, 2 torch threads ran 3-5x slower than 1 thread whenever other processes held the
# cores; with passive waits 2 threads stayed ahead of 1. libgomp reads this when torch is
# first imported, so it is set here, before any torch import (setdefault: the caller wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_TORCH_PRELOADED: Final = "torch" in sys.modules

STUDY: Final = "cnn_study"
IMPLEMENTATION: Final = 2
"""Part of every run's configuration: bumped whenever a change to the code changes the
numbers a run gives (here: fused Adam, the rand_like dropout mask, pool before ReLU), so
results stored by older code are never mixed with new ones."""
METRICS: Final = ("train_loss", "train_error", "valid_loss", "valid_error")
TARGETS: Final = {"vanilla": 0.990, "regularized": 0.9920, "aim": 0.9940}


# ------------------------------------------------------------------------ configuration


@attrs.frozen
class TrainConfig:
    """How every CNN is trained: Adam at ``lr`` decayed by ``lr_decay`` after each epoch,
    mini-batches of ``batch_size``; evaluation in chunks of ``eval_batch``."""

    batch_size: int = 128
    lr: float = 2e-3
    lr_decay: float = 0.75
    weight_decay: float = 0.0
    eval_batch: int = 500
    channels_last: bool = True

    def __attrs_post_init__(self) -> None:
        for name in ("batch_size", "eval_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")


DEFAULT_BLOCKS: Final = (ConvBlock(16, kernel=5), ConvBlock(32, kernel=5))
QUICK_BLOCKS: Final = (ConvBlock(4, kernel=5), ConvBlock(8, kernel=5))
DEFAULT_DROPOUT: Final = 0.4


def variant_specs(
    mlp_params: int, *, quick: bool = False, dropout: float = DEFAULT_DROPOUT
) -> dict[str, CNNSpec]:
    """The two CNNs compared: ``vanilla`` and ``dropout`` (the same network with dropout
    before both FC layers), both with the FC width that matches ``mlp_params``."""
    blocks = QUICK_BLOCKS if quick else DEFAULT_BLOCKS
    vanilla = match_params(blocks, mlp_params)
    return {"vanilla": vanilla, "dropout": attrs.evolve(vanilla, dropout=dropout)}


# ------------------------------------------------------------------------------- torch


def pick_device(requested: str = "auto") -> str:
    """``cuda`` when asked for or (``auto``) available, else ``cpu``."""
    import torch

    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda was asked for but torch sees no CUDA device; use --device cpu"
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


@contextlib.contextmanager
def torch_session(seed: int, *, device: str, threads: int) -> Iterator[None]:
    """Seed torch, switch deterministic algorithms on and set the thread count for the
    block; restore the global RNG state, flags and threads afterwards."""
    import torch

    if device == "cuda":
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
    )
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
            torch.set_num_threads(prev[2])
            torch.backends.cudnn.benchmark = prev[3]


@attrs.frozen(eq=False)
class TensorData:
    """The study's splits as torch tensors on ``device``: x (N, 1, 28, 28) float32, y int64."""

    x_train: Any
    y_train: Any
    x_valid: Any
    y_valid: Any
    x_test: Any
    y_test: Any
    device: str


def to_tensors(data: StudyData, device: str = "cpu") -> TensorData:
    """StudyData (N, 784) -> tensors (N, 1, 28, 28) float32 on ``device``."""
    import torch

    def images(x: FloatArray, split: str) -> Any:
        if x.ndim != 2 or x.shape[1] != 784:
            raise ValueError(
                f"{split} images must be (N, 784) (28x28 flattened), got {x.shape}; the CNN "
                "study needs MNIST-shaped data"
            )
        arr = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
        return torch.from_numpy(arr).to(device)

    def labels(y: IntArray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)

    return TensorData(
        x_train=images(data.x_train, "train"),
        y_train=labels(data.y_train),
        x_valid=images(data.x_valid, "valid"),
        y_valid=labels(data.y_valid),
        x_test=images(data.x_test, "test"),
        y_test=labels(data.y_test),
        device=device,
    )


def mean_cross_entropy(z: Any, y: Any) -> Any:
    """Mean cross-entropy of logits ``z`` (N, C) for labels ``y``, written with a one-hot
    product rather than ``F.cross_entropy``: torch's NLLLoss kernel has no deterministic
    CUDA implementation, this form is deterministic everywhere, and on the CPU its
    gradient is the same bit for bit."""
    import torch.nn.functional as F

    return -(F.log_softmax(z, dim=1) * F.one_hot(y, z.shape[1]).to(z.dtype)).sum(dim=1).mean()


def evaluate(model: Any, x: Any, y: Any, *, batch: int, channels_last: bool) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of ``model`` on the whole of (x, y), in eval mode
    (dropout off) under ``torch.inference_mode``, in chunks of ``batch``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total = 0.0
    wrong = 0
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            z = model(xb)
            # gather is deterministic without gradients; the sum is taken in float64.
            total -= float(F.log_softmax(z.double(), dim=1).gather(1, yb[:, None]).sum())
            wrong += int((z.argmax(dim=1) != yb).sum())
    n = int(x.shape[0])
    return total / n, wrong / n


EpochHook = Callable[[int, Mapping[str, float]], None]


def train_cnn(
    spec: CNNSpec,
    data: TensorData,
    train: TrainConfig,
    *,
    seed: int,
    epochs: int,
    threads: int = 2,
    quiet: bool = True,
    on_epoch: EpochHook | None = None,
) -> dict[str, Any]:
    """Train one CNN ``epochs`` epochs and return its per-epoch curves (lists of length
    ``epochs``: train/valid loss and error on the full sets, seconds spent training,
    evaluating and in all), the final test error, its parameter count and the device."""
    import torch

    if epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    curves: dict[str, list[float]] = {
        k: [] for k in (*METRICS, "lr", "train_seconds", "eval_seconds", "epoch_seconds")
    }
    fmt = torch.channels_last if train.channels_last else torch.contiguous_format
    n = int(data.x_train.shape[0])
    with torch_session(seed, device=data.device, threads=threads):
        model = build_cnn(spec).to(data.device, memory_format=fmt)
        n_params = module_param_count(model)
        # fused: one kernel per step instead of a dozen per tensor (a seventh of a step's time).
        opt = torch.optim.Adam(
            model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=True
        )
        for epoch in progress(range(epochs), total=epochs, desc=f"seed {seed} epochs", quiet=quiet):
            lr = train.lr * train.lr_decay**epoch
            for group in opt.param_groups:
                group["lr"] = lr
            order = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(n)).to(
                data.device
            )
            with Timer() as t_train:
                model.train()
                for start in range(0, n, train.batch_size):
                    idx = order[start : start + train.batch_size]
                    xb = data.x_train[idx].contiguous(memory_format=fmt)
                    loss = mean_cross_entropy(model(xb), data.y_train[idx])
                    opt.zero_grad(set_to_none=True)
                    torch.autograd.backward(loss)
                    opt.step()
                if data.device == "cuda":
                    torch.cuda.synchronize()
            with Timer() as t_eval:
                tl, te = evaluate(
                    model,
                    data.x_train,
                    data.y_train,
                    batch=train.eval_batch,
                    channels_last=train.channels_last,
                )
                vl, ve = evaluate(
                    model,
                    data.x_valid,
                    data.y_valid,
                    batch=train.eval_batch,
                    channels_last=train.channels_last,
                )
            row = {
                "train_loss": tl,
                "train_error": te,
                "valid_loss": vl,
                "valid_error": ve,
                "lr": lr,
                "train_seconds": t_train.seconds,
                "eval_seconds": t_eval.seconds,
                "epoch_seconds": t_train.seconds + t_eval.seconds,
            }
            for k, v in row.items():
                curves[k].append(v)
            if on_epoch is not None:
                on_epoch(epoch, row)
        _, test_error = evaluate(
            model,
            data.x_test,
            data.y_test,
            batch=train.eval_batch,
            channels_last=train.channels_last,
        )
    best = int(np.argmin(curves["valid_loss"]))
    return {
        "curves": curves,
        "params": n_params,
        "final_test_error": test_error,
        "early_stop_epoch": best + 1,
        "early_stop_valid_error": curves["valid_error"][best],
        "device": data.device,
        "threads": threads,
        "seconds": float(sum(curves["epoch_seconds"])),
    }


# --------------------------------------------------------------------------------- MLP


@attrs.frozen
class MlpReference:
    """The MLP the CNN is compared with: its search configuration (``HParamConfig`` as a
    dict), exact parameter count, where both came from, its per-epoch curves when the
    search recorded all four on the full sets, and the search's r(valid) per epoch."""

    config: dict[str, Any]
    params: int
    source: str
    curves: dict[str, list[float]] | None = None
    search_val_accuracy: list[float] | None = None
    test_error: float | None = None


def _mlp_curves(best: Mapping[str, Any], epochs: int) -> dict[str, list[float]] | None:
    """Per-epoch full-set train and valid loss and error from the search's best record,
    when all four are there with ``epochs`` finite entries; else None. (The search
    measures the validation set only, so today the MLP is retrained here.)"""

    def get(*keys: str) -> list[float] | None:
        for key in keys:
            v = best.get(key)
            if (
                isinstance(v, list)
                and len(v) == epochs
                and all(isinstance(a, (int, float)) and math.isfinite(a) for a in v)
            ):
                return [float(a) for a in v]
        return None

    out: dict[str, list[float]] = {}
    for split, keys in (("train", ("train",)), ("valid", ("val", "valid"))):
        loss = get(*(f"{k}_loss" for k in keys))
        err = get(*(f"{k}_error" for k in keys))
        acc = get(*(f"{k}_accuracy" for k in keys))
        if err is None and acc is not None:
            err = [1.0 - a for a in acc]
        if loss is None or err is None:
            return None
        out[f"{split}_loss"], out[f"{split}_error"] = loss, err
    return out


def mlp_reference(out: Path, *, epochs: int) -> MlpReference:
    """The best MLP of the hyper-parameter search under ``out`` (``best`` in its
    summary.json; the exact parameter count from best_params.npz when present), or the
    search's base, 784-512-512-10 ReLU SGD lr 0.1 batch 64, when the search has not run.
    The configuration's epochs are set to the study's."""
    folder = out / "hparam_search"
    summary_path = folder / "summary.json"
    fallback = attrs.evolve(BASE, dataset="mnist", epochs=epochs)
    best: Any = None
    if summary_path.exists():
        summary = read_json(summary_path)
        best = summary.get("best") if isinstance(summary, Mapping) else None
    if not (isinstance(best, Mapping) and isinstance(best.get("config"), Mapping)):
        why = "has no best configuration" if summary_path.exists() else "does not exist"
        return MlpReference(
            config=fallback.to_dict(),
            params=fallback.n_params,
            source=f"fallback (the search's base configuration): {summary_path} {why}",
        )
    try:
        config = HParamConfig(**best["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{summary_path}: its best configuration is not one this version of the search can "
            f"read ({exc}); rerun `python -m analyses.hparam_search`"
        ) from exc
    n = config.n_params
    npz = folder / "best_params.npz"
    if npz.exists():
        from fmlp import checkpoint
        from fmlp.params import n_params

        saved = checkpoint.load(npz)
        if saved.sizes != config.sizes:
            raise ValueError(
                f"{npz} holds a {saved.sizes} model but the search's best is {config.sizes}; "
                "rerun the search"
            )
        n = n_params(saved)
    val_acc = best.get("val_accuracy")
    return MlpReference(
        config=attrs.evolve(config, epochs=epochs).to_dict(),
        params=n,
        source=f"hparam_search best configuration ({summary_path})",
        curves=_mlp_curves(best, epochs),
        search_val_accuracy=[float(a) for a in val_acc] if isinstance(val_acc, list) else None,
        test_error=1.0 - float(best["test_accuracy"])
        if isinstance(best.get("test_accuracy"), float)
        else None,
    )


def train_mlp(ref: MlpReference, data: StudyData, *, quiet: bool) -> dict[str, Any]:
    """Retrain the reference MLP on ``data`` with fmlp.fit, exactly as the search trains
    it (its optimizer and schedule, seed, dtype and BLAS threads) but measuring the full
    training set too after each epoch; curves in the CNN runs' format."""
    import fmlp
    from fmlp.train import EpochMetrics

    cfg = HParamConfig(**ref.config)
    d = data.astype(DTYPES[cfg.dtype])
    params = fmlp.init(
        cfg.sizes,
        scheme=cfg.init,
        activation=cfg.activation,
        seed=cfg.seed,
        dtype=DTYPES[cfg.dtype],
    )
    bar = iter(progress(range(cfg.epochs), total=cfg.epochs, desc="MLP epochs", quiet=quiet))

    def on_epoch(epoch: int, m: EpochMetrics) -> None:
        next(bar, None)

    with threadpool_limits(limits=RUN_BLAS_THREADS):
        state, hist = fmlp.fit(
            params,
            d.x_train,
            d.y_train,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=make_optimizer(cfg, len(d.y_train)),
            seed=cfg.seed,
            validation=(d.x_valid, d.y_valid),
            eval_train=True,
            callback=on_epoch,
        )
    next(bar, None)
    with threadpool_limits(limits=RUN_BLAS_THREADS):
        test = fmlp.evaluate(state.params, d.x_test, d.y_test)
    curves = {
        "train_loss": hist.train_loss.tolist(),
        "train_error": (1 - hist.train_accuracy).tolist(),
        "valid_loss": hist.val_loss.tolist(),
        "valid_error": (1 - hist.val_accuracy).tolist(),
        "epoch_seconds": hist.seconds.tolist(),
    }
    return {
        "curves": curves,
        "val_accuracy": hist.val_accuracy.tolist(),
        "params": ref.params,
        "final_test_error": 1.0 - test.accuracy,
        "seconds": float(hist.seconds.sum()),
        "blas_threads": RUN_BLAS_THREADS,
    }


# ----------------------------------------------------------------------------- summary


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-epoch mean, standard deviation (ddof 1; 0 for one seed), min and max over
    seeds of each metric, plus final values and the early-stopping epochs."""
    out: dict[str, Any] = {}
    for m in (*METRICS, "epoch_seconds"):
        a = np.array([r["curves"][m] for r in runs], dtype=np.float64)
        out[m] = {
            "mean": a.mean(axis=0).tolist(),
            "std": (a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])).tolist(),
            "min": a.min(axis=0).tolist(),
            "max": a.max(axis=0).tolist(),
        }
    final_valid = np.array([r["curves"]["valid_error"][-1] for r in runs])
    out["final_valid_error"] = {
        "mean": float(final_valid.mean()),
        "std": float(final_valid.std(ddof=1)) if len(runs) > 1 else 0.0,
        "min": float(final_valid.min()),
        "max": float(final_valid.max()),
    }
    out["final_valid_accuracy_mean"] = 1.0 - float(final_valid.mean())
    out["final_test_error"] = [r["final_test_error"] for r in runs]
    out["early_stop_epochs"] = [r["early_stop_epoch"] for r in runs]
    out["early_stop_valid_errors"] = [r["early_stop_valid_error"] for r in runs]
    mean_curve = np.array(out["valid_loss"]["mean"])
    out["early_stop_epoch_of_mean"] = int(np.argmin(mean_curve)) + 1
    out["seconds_per_epoch_mean"] = float(
        np.mean([np.mean(r["curves"]["epoch_seconds"]) for r in runs])
    )
    return out


def make_figures(summary: Mapping[str, Any], folder: Path) -> list[str]:
    """cnn_errors: train and valid error per epoch (mean line, min-max band over seeds,
    early-stopping epochs marked), MLP dashed; cnn_vs_mlp_loss: train and valid loss of
    both CNNs and the MLP on shared axes."""
    use_agg()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colors = {"vanilla": "tab:blue", "dropout": "tab:orange", "mlp": "tab:gray"}
    mlp = summary["mlp"]["curves"]
    paths: list[Path] = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, split in zip(axes, ("train", "valid")):
        key = f"{split}_error"
        for name, agg in summary["aggregate"].items():
            e = np.arange(1, len(agg[key]["mean"]) + 1)
            mean = 100 * np.array(agg[key]["mean"])
            ax.plot(
                e,
                mean,
                "o-",
                ms=3,
                color=colors.get(name),
                label=f"CNN {name} (mean of {len(summary['seeds'])})",
            )
            ax.fill_between(
                e,
                100 * np.array(agg[key]["min"]),
                100 * np.array(agg[key]["max"]),
                color=colors.get(name),
                alpha=0.2,
                lw=0,
            )
            if split == "valid":
                for es in agg["early_stop_epochs"]:
                    ax.plot(es, mean[es - 1], "v", ms=9, mfc="none", color=colors.get(name))
        e = np.arange(1, len(mlp[key]) + 1)
        ax.plot(e, 100 * np.array(mlp[key]), "s--", ms=3, color=colors["mlp"], label="MLP")
        # Training errors span decades; validation errors differ by tenths of a point.
        ax.set_yscale("log" if split == "train" else "linear")
        ax.set_ylabel("error rate (%)" + (", log scale" if split == "train" else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(
            f"{split} error" + (" (v: lowest valid loss = early stop)" if split == "valid" else "")
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    paths += save_figure(fig, folder, "cnn_errors")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, agg in summary["aggregate"].items():
        e = np.arange(1, len(agg["train_loss"]["mean"]) + 1)
        ax.plot(
            e,
            agg["train_loss"]["mean"],
            "o-",
            ms=3,
            color=colors.get(name),
            label=f"CNN {name} train",
        )
        ax.plot(
            e,
            agg["valid_loss"]["mean"],
            "o--",
            ms=3,
            color=colors.get(name),
            label=f"CNN {name} valid",
        )
        best = agg["early_stop_epoch_of_mean"]
        ax.plot(
            best,
            agg["valid_loss"]["mean"][best - 1],
            "v",
            ms=10,
            mfc="none",
            color=colors.get(name),
        )
    e = np.arange(1, len(mlp["train_loss"]) + 1)
    ax.plot(e, mlp["train_loss"], "s-", ms=3, color=colors["mlp"], label="MLP train")
    ax.plot(e, mlp["valid_loss"], "s--", ms=3, color=colors["mlp"], label="MLP valid")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (full set)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        "CNN vs MLP: training and validation loss\n(CNN: mean over seeds; v: lowest mean valid loss)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    paths += save_figure(fig, folder, "cnn_vs_mlp_loss")
    plt.close(fig)
    return [p.name for p in paths]


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The final-epoch table: parameters and train / valid / test error (%) per model,
    CNN errors as the mean over seeds (valid: +- standard deviation)."""

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.3f}"

    lines = [
        "| model | params | seeds | train error % | valid error % | test error % |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        std = r["final_valid_error_std"]
        valid = pct(r["final_valid_error"]) + ("" if std is None else f" +- {100 * std:.3f}")
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['seeds']} | {pct(r['final_train_error'])} | {valid} "
            f"| {pct(r['final_test_error'])} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- study


def run_study(
    out: Path,
    data: StudyData,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    quick: bool = False,
    quiet: bool = False,
    threads: int = 2,
    device: str = "auto",
    train: TrainConfig = TrainConfig(),
    figures: bool = True,
) -> dict[str, Any]:
    """Every CNN run (variant x seed), the MLP reference, the summary and the figures.
    Finished runs are read back from ``<out>/cnn_study/runs``; returns the summary, whose
    ``computed`` lists the runs trained by this call."""
    if not seeds:
        raise ValueError("give at least one seed")
    if threads <= 0:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    with Timer() as wall:
        dev = pick_device(device)
        if dev == "cuda":
            # cuBLAS reads this when it creates its handle: set it before any CUDA work.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        store = ResultStore(out, STUDY)
        ref = mlp_reference(out, epochs=epochs)
        specs = variant_specs(ref.params, quick=quick)
        tensors = to_tensors(data, dev)
        data_id = {"name": data.name, "sizes": data.sizes}
        computed: list[str] = []
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
        jobs = list(itertools.product(specs.items(), seeds))
        for (name, spec), seed in progress(jobs, total=len(jobs), desc="CNN runs", quiet=quiet):
            config = {
                "kind": "cnn",
                "implementation": IMPLEMENTATION,
                "variant": name,
                "spec": spec.as_dict(),
                "seed": int(seed),
                "epochs": epochs,
                "train": attrs.asdict(train),
                "data": data_id,
                "device": dev,
                # The CPU kernels' reductions depend on the thread count: same bits need the same threads.
                "threads": threads if dev == "cpu" else None,
            }

            def compute(spec: CNNSpec = spec, seed: int = int(seed)) -> dict[str, Any]:
                return train_cnn(
                    spec, tensors, train, seed=seed, epochs=epochs, threads=threads, quiet=quiet
                )

            result, fresh = store.run(config, compute)
            if fresh:
                computed.append(f"{name}/seed{seed}")
            runs[name].append({"seed": int(seed), **result})

        mlp_matches_search: bool | None = None
        mlp_test_error: float | None = None
        if ref.curves is not None:
            mlp_curves = ref.curves
            curve_source = "hparam_search"
            mlp_test_error = ref.test_error
        else:
            mlp_config = {"kind": "mlp", "config": ref.config, "data": data_id}

            def compute_mlp() -> dict[str, Any]:
                return train_mlp(ref, data, quiet=quiet)

            mlp_result, fresh = store.run(mlp_config, compute_mlp)
            if fresh:
                computed.append("mlp")
            mlp_curves = mlp_result["curves"]
            mlp_test_error = mlp_result.get("final_test_error")
            curve_source = "retrained here with fmlp.fit as the search trains it, measuring the full training set too"
            if ref.search_val_accuracy is not None and len(ref.search_val_accuracy) == epochs:
                mlp_matches_search = mlp_result["val_accuracy"] == ref.search_val_accuracy

    agg = {name: aggregate(rs) for name, rs in runs.items()}
    table = [
        {
            "model": f"MLP {HParamConfig(**ref.config).architecture} {ref.config['activation']}",
            "params": ref.params,
            "seeds": 1,
            "final_train_error": mlp_curves["train_error"][-1],
            "final_valid_error": mlp_curves["valid_error"][-1],
            "final_valid_error_std": None,
            "final_test_error": mlp_test_error,
        }
    ]
    for name, spec in specs.items():
        a = agg[name]
        table.append(
            {
                "model": f"CNN {name}",
                "params": count_params(spec),
                "seeds": len(seeds),
                "final_train_error": a["train_error"]["mean"][-1],
                "final_valid_error": a["final_valid_error"]["mean"],
                "final_valid_error_std": a["final_valid_error"]["std"],
                "final_test_error": float(np.mean(a["final_test_error"])),
            }
        )
    cnn_params = count_params(specs["vanilla"])
    cnn_seconds = float(sum(r["seconds"] for rs in runs.values() for r in rs))
    mlp_seconds = float(sum(mlp_curves.get("epoch_seconds", [])))
    summary: dict[str, Any] = {
        "study": STUDY,
        "dataset": data.name,
        "data_sizes": data.sizes,
        "quick": quick,
        "epochs": epochs,
        "seeds": [int(s) for s in seeds],
        "device": dev,
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_wait_policy_effective": not _TORCH_PRELOADED,
        "train": attrs.asdict(train),
        "optimizer": f"Adam(lr={train.lr} * {train.lr_decay}**epoch, weight_decay={train.weight_decay})",
        "architecture": {
            name: {
                "spec": spec.as_dict(),
                "description": describe(spec),
                "layers": layer_table(spec),
                "params": count_params(spec),
            }
            for name, spec in specs.items()
        },
        "regularization": {
            "technique": "dropout",
            "p": specs["dropout"].dropout,
            "where": "before the hidden FC layer and before the output layer",
        },
        "cnn_params": cnn_params,
        "mlp": {
            "config": ref.config,
            "sizes": HParamConfig(**ref.config).sizes,
            "params": ref.params,
            "source": ref.source,
            "curve_source": curve_source,
            "curves": mlp_curves,
            "retrain_matches_search": mlp_matches_search,
        },
        "param_ratio": cnn_params / ref.params,
        "runs": runs,
        "aggregate": agg,
        "table": table,
        "targets": {
            **TARGETS,
            "vanilla_met": agg["vanilla"]["final_valid_accuracy_mean"] >= TARGETS["vanilla"],
            "regularized_met": agg["dropout"]["final_valid_accuracy_mean"] > TARGETS["regularized"],
            "aim_met": agg["dropout"]["final_valid_accuracy_mean"] >= TARGETS["aim"],
        },
        "computed": computed,
        "wall_seconds": {
            # A resumed invocation reads finished runs back: its own wall time is small.
            "this_invocation": wall.seconds,
            "cnn_runs": cnn_seconds,
            "mlp_run": mlp_seconds,
            "runs_total": cnn_seconds + mlp_seconds,
        },
        "machine": machine_info(),
    }
    atomic_write_bytes(store.folder / "table.md", markdown_table(table).encode())
    summary["files"] = {"table_md": "table.md"}
    timing = store.folder / "timing.json"
    if timing.exists():
        summary["timing_measurements"] = read_json(timing)
    if figures:
        summary["figures"] = make_figures(summary, store.folder)
    store.write_summary(summary)
    return summary


# --------------------------------------------------------------------------- timing


def time_candidates(
    candidates: Mapping[str, tuple[CNNSpec, int, int, bool]],
    *,
    steps: int = 40,
    rounds: int = 2,
    eval_batch: int = TrainConfig().eval_batch,
) -> dict[str, dict[str, Any]]:
    """Seconds per 50,000-sample training epoch and per 60,000-sample evaluation of each
    candidate (spec, batch size, threads, channels_last) on random inputs, measured in
    ``rounds`` interleaved rounds (the machine may be shared: compare within a round)."""
    import torch

    res: dict[str, dict[str, Any]] = {
        k: {"train_epoch_s": [], "eval_60k_s": []} for k in candidates
    }
    for _ in range(rounds):
        for key, (spec, bs, threads, cl) in candidates.items():
            fmt = torch.channels_last if cl else torch.contiguous_format
            with torch_session(0, device="cpu", threads=threads):
                model = build_cnn(spec).to(memory_format=fmt)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
                x = torch.rand(bs, 1, 28, 28).contiguous(memory_format=fmt)
                y = torch.randint(0, 10, (bs,))
                model.train()

                def step() -> None:
                    loss = mean_cross_entropy(model(x), y)
                    opt.zero_grad(set_to_none=True)
                    torch.autograd.backward(loss)
                    opt.step()

                for _ in range(3):
                    step()
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                res[key]["train_epoch_s"].append(
                    (time.perf_counter() - start) / steps / bs * 50_000
                )
                xe = torch.rand(eval_batch, 1, 28, 28).contiguous(memory_format=fmt)
                model.eval()
                with torch.inference_mode():
                    model(xe)
                    start = time.perf_counter()
                    for _ in range(3):
                        model(xe)
                res[key]["eval_60k_s"].append(
                    (time.perf_counter() - start) / 3 / eval_batch * 60_000
                )
            res[key]["params"] = count_params(spec)
            res[key]["description"] = describe(spec)
    return res


def timing_candidates(target: int = 669_706) -> dict[str, tuple[CNNSpec, int, int, bool]]:
    """The candidates ``--time`` measures: architectures matched to ``target`` x batch
    size x threads x memory format."""
    archs = {
        "16-32 k5 valid": (ConvBlock(16), ConvBlock(32)),
        "32-32 k5 valid": (ConvBlock(32), ConvBlock(32)),
        "16-32 k5 same": (ConvBlock(16, padding=2), ConvBlock(32, padding=2)),
        "32-64 k5 valid": (ConvBlock(32), ConvBlock(64)),
    }
    out = {}
    for (name, blocks), bs, threads, cl in itertools.product(
        archs.items(), (128, 256), (1, 2), (False, True)
    ):
        out[f"{name} bs{bs} t{threads} {'cl' if cl else 'nchw'}"] = (
            match_params(blocks, target),
            bs,
            threads,
            cl,
        )
    return out


# ---------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = study_parser(__doc__.splitlines()[0] if __doc__ else "CNN study")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per CNN variant (default 3)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="epochs per run (default 10; 1 with --quick)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default 2, measured best)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto (default): CUDA when available, else CPU",
    )
    parser.add_argument(
        "--time",
        action="store_true",
        help="only measure the speed of the candidate architectures/batch/threads/layout",
    )
    args = parser.parse_args(argv)
    if args.seeds <= 0:
        parser.error(f"--seeds must be a positive integer, got {args.seeds}")
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 10)
    if epochs <= 0:
        parser.error(f"--epochs must be a positive integer, got {epochs}")
    if args.threads <= 0:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    if args.time:
        from analyses.common import atomic_write_json

        target = mlp_reference(args.out, epochs=epochs).params
        load_before = os.getloadavg()
        res = time_candidates(timing_candidates(target), steps=10 if args.quick else 40)
        path = args.out / STUDY / "timing.json"
        atomic_write_json(
            path,
            {
                "candidates": res,
                "target_params": target,
                "steps": 10 if args.quick else 40,
                "eval_batch": TrainConfig().eval_batch,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                "omp_wait_policy_effective": not _TORCH_PRELOADED,
                "load_avg_before": load_before,
                "load_avg_after": os.getloadavg(),
                "machine": machine_info(),
                "note": "seconds per 50,000-sample training epoch (forward, backward, Adam step on one fixed "
                "batch) and per 60,000-sample evaluation, extrapolated from the steps timed; "
                "interleaved rounds, so compare candidates within a round",
            },
        )
        for key, r in res.items():
            print(
                f"{key:32s} train epoch s: {' '.join(f'{s:6.1f}' for s in r['train_epoch_s'])}   "
                f"eval 60k s: {' '.join(f'{s:5.1f}' for s in r['eval_60k_s'])}"
            )
        print(f"wrote {path}")
        return 0
    data = load_study_data(args.dataset, quick=args.quick, dtype=np.float32)
    summary = run_study(
        args.out,
        data,
        seeds=range(args.seeds),
        epochs=epochs,
        quick=args.quick,
        quiet=args.quiet,
        threads=args.threads,
        device=args.device,
    )
    for name, agg in summary["aggregate"].items():
        v = agg["valid_error"]
        print(
            f"CNN {name:8s} ({summary['architecture'][name]['params']:,} params) valid error per epoch, "
            f"mean +- std over {len(summary['seeds'])} seeds:"
        )
        print(
            "  " + "  ".join(f"{100 * m:.2f}+-{100 * s:.2f}" for m, s in zip(v["mean"], v["std"]))
        )
    mlp = summary["mlp"]
    print(
        f"MLP ({mlp['params']:,} params) valid error per epoch: "
        + " ".join(f"{100 * e:.2f}" for e in mlp["curves"]["valid_error"])
    )
    wall = summary["wall_seconds"]
    print(
        f"wall time {wall['this_invocation']:.1f} s now, {wall['runs_total']:.1f} s of training and evaluation "
        f"in all runs, on {summary['device']}; "
        f"summary: {args.out / STUDY / 'summary.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
