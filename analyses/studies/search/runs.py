"""One rung of one configuration: train from the checkpoint of the rung before to the
end of this one, and leave a checkpoint for the next.

The checkpoint is the whole training state (parameters, optimizer state, step count),
and every learning-rate schedule is defined over the configuration's full epochs, so
a run paused at the end of a rung and resumed is bit for bit the run that never
stopped. A missing or unreadable checkpoint (a cluster worker without the shared
results folder, a file cut short by a crash) is not an error: the run retrains the
earlier epochs from the seed, which gives the same state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import attrs
import numpy as np

import fmlp
from analyses.datasets import N_CLASSES, DataSpec, EvalSubset, floats, load_data
from analyses.mlp import MlpConfig, init_params, make_optimizer, params_digest
from analyses.pipeline.records import key_hash, to_json
from analyses.pipeline.tasks import NOT_IDENTITY, KeyedTask, RunContext
from fmlp import checkpoint

STUDY: Final = "search"
DIVERGED_LOSS: Final = 10 * math.log(N_CLASSES)
"""A run whose epoch ends with a running training loss above ten times that of a
uniform guess (10 ln 10 = 23.0: the true class gets probability 1e-10 on average) has
diverged, even where the loss stayed finite. A slow learner hovers near ln 10."""


@attrs.frozen
class SegmentResult:
    """Epochs ``start + 1 .. stop`` of one configuration: validation accuracy and loss,
    training loss and error on the fixed training subset (the CNN study compares its
    runs with the chosen MLP's on the same samples), and the running mean of the
    mini-batch losses.

    status: ``ok`` or ``diverged`` (then ``error`` says where). checkpoint: the state
    after epoch ``stop``, relative to the results folder. resumed: whether the run
    started from the previous rung's checkpoint (False: it retrained those epochs).
    """

    epochs: tuple[int, ...]
    val_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_loss: tuple[float, ...]
    train_error: tuple[float, ...]
    running_loss: tuple[float, ...]
    running_accuracy: tuple[float, ...]
    status: Literal["ok", "diverged"]
    error: str | None
    checkpoint: str
    params_sha256: str
    resumed: bool


def trial_name(data: DataSpec, config: MlpConfig) -> str:
    """A short name of one configuration on one dataset (its checkpoints' folder)."""
    return key_hash({"data": to_json(data), "config": to_json(config)})


def checkpoint_file(data: DataSpec, config: MlpConfig, epoch: int) -> str:
    """Where the state after ``epoch`` epochs lives, relative to the results folder."""
    return f"{STUDY}/checkpoints/{trial_name(data, config)}/epoch-{epoch}.npz"


@attrs.frozen
class SearchRun(KeyedTask):
    """Train ``config`` from epoch ``start`` to epoch ``stop`` (one rung)."""

    study: ClassVar[str] = STUDY
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[SegmentResult]] = SegmentResult
    KIND: ClassVar[str] = "search"
    VERSION: ClassVar[int] = 2

    data: DataSpec
    config: MlpConfig
    start: int
    stop: int
    eval_subset: EvalSubset = attrs.field(factory=EvalSubset)
    rung: int = attrs.field(default=0, eq=False, metadata=NOT_IDENTITY)
    """For scheduling only: the same segment is the same run whatever its rung."""

    def label(self) -> str:
        span = (
            f"epoch {self.stop}"
            if self.stop == self.start + 1
            else f"epochs {self.start + 1}-{self.stop}"
        )
        return f"search {trial_name(self.data, self.config)[:6]} {span}"

    def priority(self) -> int:
        # later rungs first: they hold the search's best and decide its end
        return -self.rung

    def run(self, ctx: RunContext) -> SegmentResult:
        return train_segment(
            self.data, self.config, self.start, self.stop, Path(ctx.out), self.eval_subset
        )


def _start_state(
    data: DataSpec, config: MlpConfig, start: int, out: Path, optimizer: fmlp.Optimizer[Any]
) -> tuple[fmlp.TrainState[Any], bool]:
    """The state after ``start`` epochs: read from its checkpoint, or retrained."""
    template = fmlp.init_state(init_params(config), optimizer)
    if start == 0:
        return template, True
    path = out / checkpoint_file(data, config, start)
    try:
        return checkpoint.load_state(path, like=template), True
    except (FileNotFoundError, ValueError):
        pass
    d = load_data(data, config.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        state, _ = fmlp.resume(
            template,
            d.x_train,
            d.y_train,
            optimizer=optimizer,
            start_epoch=0,
            epochs=start,
            batch_size=config.batch_size,
            seed=config.seed,
            eval_train=False,
        )
    return state, False


def train_segment(
    data: DataSpec,
    config: MlpConfig,
    start: int,
    stop: int,
    out: Path,
    eval_subset: EvalSubset | None = None,
) -> SegmentResult:
    """Train ``config`` on ``data`` from epoch ``start`` to ``stop``; write the state after
    ``stop`` as a checkpoint under ``out`` and return the per-epoch figures."""
    if not 0 <= start < stop <= config.epochs:
        raise ValueError(f"epochs {start}..{stop} do not fit a {config.epochs}-epoch run")
    d = load_data(data, config.dtype)
    optimizer = make_optimizer(config, len(d.y_train))
    state, resumed = _start_state(data, config, start, out, optimizer)
    index = (eval_subset or EvalSubset()).indices(len(d.y_train))
    x_sub, y_sub = d.x_train[index], d.y_train[index]
    on_train: list[fmlp.Evaluation] = []

    def measure(epoch: int, params: fmlp.MLP) -> None:
        on_train.append(fmlp.evaluate(params, x_sub, y_sub))

    with np.errstate(over="ignore", invalid="ignore"):
        state, m = fmlp.resume(
            state,
            d.x_train,
            d.y_train,
            optimizer=optimizer,
            start_epoch=start,
            epochs=stop,
            batch_size=config.batch_size,
            seed=config.seed,
            validation=(d.x_valid, d.y_valid),
            eval_train=False,
            params_callback=measure,
        )
    ckpt = checkpoint_file(data, config, stop)
    checkpoint.save_state(out / ckpt, state)
    diverged = np.asarray(m.diverged, dtype=bool)
    running = floats(m.running_loss)
    status: Literal["ok", "diverged"] = "ok"
    error = None
    if diverged.any():
        epoch = start + 1 + int(np.argmax(diverged))
        status, error = "diverged", f"the training loss became non-finite in epoch {epoch}"
    elif not running[-1] <= DIVERGED_LOSS:
        status = "diverged"
        error = (
            f"epoch {stop} ends with a running training loss of {running[-1]:.4g}, more than "
            f"10 ln {N_CLASSES} = {DIVERGED_LOSS:.4g}, ten times a uniform guess's"
        )
    return SegmentResult(
        epochs=tuple(range(start + 1, stop + 1)),
        val_accuracy=floats(m.val_accuracy),
        val_loss=floats(m.val_loss),
        train_loss=tuple(e.loss for e in on_train),
        train_error=tuple(1.0 - e.accuracy for e in on_train),
        running_loss=running,
        running_accuracy=floats(m.running_accuracy),
        status=status,
        error=error,
        checkpoint=ckpt,
        params_sha256=params_digest(state.params),
        resumed=resumed,
    )
