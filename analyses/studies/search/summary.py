"""The search's summary, what the report reads: every trial ranked (see ``plan`` for the
ranking), the chosen model, the plain-SGD finalist, and the tables written beside it."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Literal

import attrs

from analyses.datasets import SplitSizes
from analyses.machine import MachineInfo
from analyses.mlp import MlpConfig
from analyses.pipeline.records import JsonRecord
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.search.options import (
    ACTIVATIONS,
    ARCHITECTURES,
    BATCH_SIZES,
    LR_RANGES,
    WEIGHT_DECAY_RANGES,
)
from analyses.studies.search.runs import STUDY

CHOSEN_PARAMS: Final = f"{STUDY}/chosen_params.npz"
SELECTION: Final = (
    "successive halving: every configuration trains to the first rung; at each rung the "
    "best third by r(valid) at the rung's last epoch (ties: lower validation loss, then "
    "name) resume from their checkpoints to the next rung. The chosen model is the best "
    "configuration of the last rung; its test accuracy is measured once, after the choice."
)


@attrs.frozen
class Trial:
    """One configuration and everything it did.

    rungs: how many rungs it ran; epochs: epochs trained; curves per epoch 1..epochs
    (its rungs' segments joined). r_valid: at its last epoch. promoted[k]: whether it
    left rung k for the next. rank: 1 for the best (finalists first)."""

    name: str
    config: MlpConfig
    source: Literal["grid", "sampled"]
    n_params: int
    rungs: int
    epochs: int
    val_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_loss: tuple[float, ...]
    train_error: tuple[float, ...]
    running_loss: tuple[float, ...]
    status: Literal["ok", "diverged", "failed"]
    error: str | None
    r_valid: float
    promoted: tuple[bool, ...]
    rank: int


@attrs.frozen
class PlainSgdFinalist:
    """The assignment's own setting answered in its own terms: the best configuration of
    the plain-SGD grid (constant learning rate) trained to the last rung.

    Successive halving may stop every grid configuration early, since the sampled
    optimizers learn faster; the grid's best (by the rung it reached, then by its rank
    there) then continues from its checkpoint to the last epoch, as the grid's finalist.

    stopped_at: the epoch where successive halving stopped it (None: halving itself took
    it to the last rung). val_accuracy / val_loss: per epoch 1..E, its rungs and its
    continuation joined. r_valid: at the last epoch. test_accuracy / test_loss: measured
    once, on its final parameters (NaN when it did not finish).
    """

    name: str
    config: MlpConfig
    stopped_at: int | None
    val_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    status: Literal["ok", "diverged", "failed"]
    error: str | None
    r_valid: float
    test_accuracy: float
    test_loss: float


@attrs.frozen
class SearchSummary(JsonRecord):
    """The whole search: settings, every trial (ranked), the choice, the compute spent."""

    SCHEMA: ClassVar[int] = 3

    dataset: str
    dataset_sizes: SplitSizes
    base: MlpConfig
    rung_epochs: tuple[int, ...]
    eta: int
    rung_sizes: tuple[int, ...]
    seed: int
    n_grid: int
    n_sampled: int
    space: tuple[str, ...]
    selection: str
    trials: tuple[Trial, ...]
    chosen: ChosenMlp | None
    best_plain_sgd: str | None
    plain_sgd_finalist: PlainSgdFinalist | None
    epochs_trained: int
    epochs_without_halving: int
    runs_resumed: int
    figures: tuple[str, ...]
    machine: MachineInfo

    def trial(self, name: str) -> Trial:
        return next(t for t in self.trials if t.name == name)


def space_text(seed: int) -> tuple[str, ...]:
    """The wide space, in words, from the constants that define it."""
    archs = ", ".join("-".join(map(str, (784, *h, 10))) for h in ARCHITECTURES)
    lrs = "; ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in LR_RANGES.items())
    wds = "; ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in WEIGHT_DECAY_RANGES.items())
    return (
        f"drawn with np.random.default_rng({seed}), each setting independently:",
        f"architectures: {archs}",
        "nonlinearity: " + " or ".join(f"{name} (p = {weight:g})" for name, weight in ACTIVATIONS),
        "optimizer: sgd, momentum, nesterov (beta 0.9), adam, adamw (0.9, 0.999, 1e-8)",
        f"learning rate, log-uniform by optimizer: {lrs}",
        "schedule: cosine decay to 0 over the 10 epochs (the grid tries the constant rate)",
        f"weight decay, log-uniform (half of the non-AdamW configurations, all AdamW): {wds}",
        "mini-batch: " + ", ".join(map(str, BATCH_SIZES)),
    )


# --------------------------------------------------------------------- tables

TABLE_COLUMNS: Final = (
    "rank",
    "r_valid",
    "epochs",
    "architecture",
    "n_params",
    "activation",
    "optimizer",
    "lr",
    "schedule",
    "weight_decay",
    "batch_size",
    "source",
    "status",
    "name",
)


def table_rows(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    return [
        {
            "rank": t.rank,
            "r_valid": t.r_valid,
            "epochs": t.epochs,
            "architecture": t.config.architecture,
            "n_params": t.n_params,
            "activation": t.config.activation,
            "optimizer": t.config.optimizer,
            "lr": t.config.lr,
            "schedule": t.config.schedule,
            "weight_decay": t.config.weight_decay,
            "batch_size": t.config.batch_size,
            "source": t.source,
            "status": t.status if t.error is None else f"{t.status}: {t.error}",
            "name": t.name,
        }
        for t in trials
    ]


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.2f}"


def markdown_table(trials: Sequence[Trial]) -> str:
    """Every configuration, ranked (accuracies in %)."""
    head = (
        "rank",
        "r(valid) %",
        "epochs",
        "architecture",
        "params",
        "act.",
        "optimizer",
        "lr",
        "schedule",
        "wd",
        "batch",
        "source",
        "status",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table_rows(trials):
        cells = (
            str(r["rank"]),
            _pct(r["r_valid"]),
            str(r["epochs"]),
            r["architecture"],
            f"{r['n_params']:,}",
            r["activation"],
            r["optimizer"],
            f"{r['lr']:g}",
            r["schedule"],
            f"{r['weight_decay']:g}",
            str(r["batch_size"]),
            r["source"],
            str(r["status"]).replace("|", "/"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(trials: Sequence[Trial]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in table_rows(trials):
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
