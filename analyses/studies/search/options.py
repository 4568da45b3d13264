"""The hyper-parameter search's configuration: the configurations it tries and its rungs.

Glorot initialization throughout, 10 epochs at most, every model with two hidden
layers and 0.5M-1.0M parameters. Two sources of configurations:

- the assignment's own setting around the base configuration (784-512-512-10, ReLU,
  plain SGD at a constant learning rate 0.1, batch 64): nonlinearity x learning rate,
  the architecture, the mini-batch size; the plain-SGD headline is chosen among these;
- a sample drawn (from a stated seed) from a wider space: every architecture below,
  ReLU or tanh, plain SGD, heavy-ball or Nesterov momentum, Adam or AdamW, each with
  its own log-uniform learning-rate range decayed to 0 by a cosine, weight decay, and
  mini-batches of 32 to 128.

Successive halving trains every configuration for the first rung's epochs, then
resumes the best third from their checkpoints to the next rung, and so on.
"""

from __future__ import annotations

import math
from typing import Final

import attrs
import numpy as np

from analyses.datasets import PARAM_RANGE, EvalSubset
from analyses.mlp import BASE_MLP, MlpConfig, OptimizerName, ScheduleName
from analyses.studies.search.halving import Rungs
from fmlp.types import ActivationName

ARCHITECTURES: Final[tuple[tuple[int, int], ...]] = (
    (512, 512),
    (600, 400),
    (640, 640),
    (700, 500),
    (800, 300),
    (800, 400),
    (1000, 200),
    (1024, 128),
)
LR_RANGES: Final[dict[str, tuple[float, float]]] = {
    "sgd": (0.05, 0.5),
    "momentum": (0.01, 0.1),
    "nesterov": (0.01, 0.1),
    "adam": (3e-4, 3e-3),
    "adamw": (3e-4, 3e-3),
}
"""Learning rates are drawn log-uniformly from these ranges, by optimizer."""
WEIGHT_DECAY_RANGES: Final[dict[str, tuple[float, float]]] = {
    "sgd": (1e-5, 5e-4),
    "momentum": (1e-5, 5e-4),
    "nesterov": (1e-5, 5e-4),
    "adam": (1e-5, 5e-4),
    "adamw": (5e-3, 1e-1),
}
"""Weight decay, log-uniform by optimizer; L2 (added to the gradient) is drawn for half
of the configurations of every optimizer but AdamW, whose decoupled decay always is."""
OPTIMIZERS: Final[tuple[OptimizerName, ...]] = ("sgd", "momentum", "nesterov", "adam", "adamw")
SCHEDULES: Final[tuple[ScheduleName, ...]] = ("cosine",)
"""A constant learning rate is the assignment's own setting, tried in the grid; the
sample decays it to 0 by a cosine over the 10 epochs. (A step schedule, halving every 2
epochs, looks best at the 3-epoch rung, where it has already halved twice, and then
loses to cosine by the 10th: successive halving would keep the wrong runs.)"""
BATCH_SIZES: Final = (32, 64, 128)
ACTIVATIONS: Final[tuple[tuple[ActivationName, float], ...]] = (("relu", 0.75), ("tanh", 0.25))
"""Nonlinearities and their probabilities (sigmoid is tried in the grid: it learns far
slower in 10 epochs)."""


def _round(value: float, digits: int = 2) -> float:
    """``value`` to ``digits`` significant digits (a readable configuration)."""
    return float(f"{value:.{digits}g}")


def plain_sgd_grid(base: MlpConfig = BASE_MLP) -> tuple[MlpConfig, ...]:
    """The assignment's setting, around ``base``: nonlinearity x learning rate
    (9 configurations; the sample varies the architecture and the mini-batch)."""
    return tuple(
        attrs.evolve(base, activation=a, lr=lr)
        for a in ("relu", "tanh", "sigmoid")
        for lr in (0.03, 0.1, 0.3)
    )


def _weighted(
    rng: np.random.Generator, choices: tuple[tuple[ActivationName, float], ...]
) -> ActivationName:
    names = [c for c, _ in choices]
    p = np.asarray([w for _, w in choices], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_space(n: int, seed: int, *, epochs: int = 10) -> tuple[MlpConfig, ...]:
    """``n`` configurations drawn from the wide space with ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        optimizer = OPTIMIZERS[int(rng.integers(len(OPTIMIZERS)))]
        lo, hi = LR_RANGES[optimizer]
        lr = _round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        wlo, whi = WEIGHT_DECAY_RANGES[optimizer]
        decay = _round(math.exp(rng.uniform(math.log(wlo), math.log(whi))))
        use_decay = optimizer == "adamw" or bool(rng.random() < 0.5)
        out.append(
            MlpConfig(
                hidden=ARCHITECTURES[int(rng.integers(len(ARCHITECTURES)))],
                activation=_weighted(rng, ACTIVATIONS),
                optimizer=optimizer,
                lr=lr,
                schedule=SCHEDULES[int(rng.integers(len(SCHEDULES)))],
                weight_decay=decay if use_decay else 0.0,
                batch_size=BATCH_SIZES[int(rng.integers(len(BATCH_SIZES)))],
                epochs=epochs,
            )
        )
    return tuple(out)


def _distinct(configs: tuple[MlpConfig, ...]) -> tuple[MlpConfig, ...]:
    return tuple(dict.fromkeys(configs))


@attrs.frozen
class SearchOptions:
    """The configurations tried and the rungs. ``grid``: the assignment's plain-SGD
    setting around its first configuration, the base; ``sampled``: drawn from the wide
    space with ``seed`` (or, for a smoke run, picked by hand: ``sampled_note`` says how)."""

    grid: tuple[MlpConfig, ...]
    sampled: tuple[MlpConfig, ...]
    rungs: Rungs = attrs.field(factory=Rungs)
    seed: int = 0
    check_range: bool = True
    sampled_from_space: bool = True
    sampled_note: tuple[str, ...] = ()
    eval_subset: EvalSubset = attrs.field(factory=EvalSubset)

    def __attrs_post_init__(self) -> None:
        if not self.configs:
            raise ValueError("the search has no configurations")
        for c in self.configs:
            if c.epochs != self.rungs.epochs[-1]:
                raise ValueError(
                    f"every configuration's schedule spans the last rung's {self.rungs.epochs[-1]} "
                    f"epochs, but {c.describe()} has epochs={c.epochs}"
                )
            if self.check_range and not c.in_range:
                raise ValueError(
                    f"architecture {c.architecture} has {c.n_params:,} parameters in "
                    f"{len(c.hidden)} hidden layers; the search needs two hidden layers and "
                    f"{PARAM_RANGE[0]:,}-{PARAM_RANGE[1]:,} parameters: change the widths"
                )

    @property
    def configs(self) -> tuple[MlpConfig, ...]:
        """Every distinct configuration, the grid first."""
        return _distinct(self.grid + self.sampled)

    @classmethod
    def full(cls, *, sampled: int = 39, seed: int = 0) -> SearchOptions:
        return cls(grid=plain_sgd_grid(), sampled=sample_space(sampled, seed), seed=seed)

    @classmethod
    def quick(cls) -> SearchOptions:
        """A smoke run: 6 small models (out of the assignment's range) for 1 then 2 epochs."""
        base = MlpConfig(hidden=(64, 32), lr=0.1, batch_size=32, epochs=2)
        grid = (base, attrs.evolve(base, activation="tanh"), attrs.evolve(base, lr=0.3))
        sampled = (
            attrs.evolve(base, optimizer="momentum", lr=0.05, schedule="cosine"),
            attrs.evolve(base, optimizer="adam", lr=0.003, schedule="step"),
            attrs.evolve(base, optimizer="adamw", lr=0.002, weight_decay=0.01, schedule="cosine"),
        )
        return cls(
            grid=grid,
            sampled=sampled,
            rungs=Rungs((1, 2), 3),
            check_range=False,
            sampled_from_space=False,
            sampled_note=("hand-picked variants of the base: momentum, Adam and AdamW",),
        )
