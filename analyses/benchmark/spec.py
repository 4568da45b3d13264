"""What the benchmark measures: the model, its training protocol and the grid of cells.

Every framework trains the same 784-512-512-10 ReLU MLP by SGD with the same learning
rate, from the same initial weights (``fmlp.init(SIZES, seed=SEED)``) and visiting the
samples in the same order. Only constants live here; every other module reads them.
"""

from __future__ import annotations

from typing import Final

SIZES: Final = (784, 512, 512, 10)
LR: Final = 0.01
SEED: Final = 0
BATCH_SIZES: Final = (64, 128, 256)
DTYPES: Final = ("float32", "float64")
FRAMEWORKS: Final = ("fmlp", "reference", "torch", "jax")
MNIST_TRAIN: Final = 50_000
EVAL_SAMPLES: Final = 10_000
