"""The MLP the studies train: its configuration (architecture, activation, initialization,
optimizer, schedule, batch size, epochs, dtype), its optimizer, its initial parameters
and the digest that names them."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, get_args

import attrs
import numpy as np

import fmlp
from analyses.datasets import DTYPES, N_CLASSES, N_INPUT, PARAM_RANGE, DTypeName
from fmlp.checks import invalid, is_real, nonnegative_int, positive_finite, positive_int
from fmlp.types import (
    ACTIVATION_NAMES,
    SCHEME_NAMES,
    ActivationName,
    SchemeName,
    is_int,
)

OptimizerName = Literal["sgd", "momentum", "nesterov", "adam", "adamw"]
ScheduleName = Literal["constant", "cosine", "step"]
OPTIMIZER_NAMES: Final[tuple[str, ...]] = get_args(OptimizerName)
SCHEDULE_NAMES: Final[tuple[str, ...]] = get_args(ScheduleName)
MOMENTUM_BETA: Final = 0.9
STEP_EVERY_EPOCHS: Final = 2
STEP_FACTOR: Final = 0.5


def _widths(value: Iterable[int]) -> tuple[int, ...]:
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
        positive_finite("lr", self.lr, show=str)
        if not (is_real(self.weight_decay) and 0 <= self.weight_decay < math.inf):
            raise invalid(
                "weight_decay", self.weight_decay, must="be a finite number >= 0", show=str
            )
        for name in ("batch_size", "epochs"):
            positive_int(name, getattr(self, name))
        nonnegative_int("seed", self.seed)

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
