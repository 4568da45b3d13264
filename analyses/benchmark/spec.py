"""What the benchmark measures: the model, its training protocol and the grid of cells.

Every framework trains the same 784-512-512-10 ReLU MLP by SGD with the same learning
rate, from the same initial weights (``fmlp.init(SIZES, seed=SEED)``) and visiting the
samples in the same order. The per-optimizer benchmark trains it with each rule of
``OPTIMIZERS`` instead. Only constants live here; every other module reads them.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import attrs

SIZES: Final = (784, 512, 512, 10)
LR: Final = 0.01
SEED: Final = 0
BATCH_SIZES: Final = (64, 128, 256)
DTYPES: Final = ("float32", "float64")
FRAMEWORKS: Final = ("fmlp", "reference", "torch", "jax")
MNIST_TRAIN: Final = 50_000
EVAL_SAMPLES: Final = 10_000

OptimizerName: TypeAlias = Literal["sgd", "momentum", "adam", "adamw"]
OPTIMIZER_NAMES: Final[tuple[OptimizerName, ...]] = ("sgd", "momentum", "adam", "adamw")


@attrs.frozen
class OptimizerSetting:
    """The hyper-parameters every framework trains with (torch's and optax's defaults for
    the rest: heavy-ball momentum without dampening, b1 0.9, b2 0.999, eps 1e-8)."""

    name: OptimizerName
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0


SGD: Final = OptimizerSetting("sgd", lr=LR)
"""The main benchmark's training rule: plain SGD at its learning rate."""

OPTIMIZERS: Final[dict[OptimizerName, OptimizerSetting]] = {
    "sgd": OptimizerSetting("sgd", lr=0.01),
    "momentum": OptimizerSetting("momentum", lr=0.01, momentum=0.9),
    "adam": OptimizerSetting("adam", lr=1e-3),
    "adamw": OptimizerSetting("adamw", lr=1e-3, weight_decay=0.05),
}
