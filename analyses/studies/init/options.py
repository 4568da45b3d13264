"""The initialization study's options: everything that fixes its results besides the
data."""

from __future__ import annotations

from typing import Final

import attrs

from analyses.datasets import DTypeName
from fmlp.checks import nonnegative_int, positive_finite, positive_int
from fmlp.params import check_sizes
from fmlp.types import SCHEME_NAMES, ActivationName, SchemeName, check_activation

STUDY: Final = "init"
SCHEMES: Final[tuple[SchemeName, ...]] = ("zero", "normal", "glorot")


@attrs.frozen
class InitOptions:
    """Everything that fixes the study's results besides the data."""

    sizes: tuple[int, ...] = (784, 512, 512, 10)
    activation: ActivationName = "relu"
    schemes: tuple[SchemeName, ...] = SCHEMES
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    dtype: DTypeName = "float32"
    n_diag: int = 1000

    def __attrs_post_init__(self) -> None:
        check_sizes(self.sizes)
        check_activation(self.activation)
        if not self.schemes:
            raise ValueError("schemes is empty: name at least one of " + ", ".join(SCHEME_NAMES))
        for s in self.schemes:
            if s not in SCHEME_NAMES:
                raise ValueError(
                    f"unknown init scheme {s!r}: expected one of {', '.join(SCHEME_NAMES)}"
                )
        if len(set(self.schemes)) != len(self.schemes):
            raise ValueError(f"schemes repeat a name: {self.schemes}")
        positive_finite("lr", self.lr, show=str)
        for name in ("batch_size", "epochs", "n_diag"):
            positive_int(name, getattr(self, name))
        nonnegative_int("seed", self.seed)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @classmethod
    def quick(cls) -> InitOptions:
        """The smoke-run setting: the same study, 2 epochs, 200 diagnostic images."""
        return cls(epochs=2, n_diag=200)

    @classmethod
    def full(cls) -> InitOptions:
        """The study's setting: the defaults."""
        return cls()
