"""The finite-difference study's options: what it computes, besides the model and the
data."""

from __future__ import annotations

from typing import Final

import attrs

from analyses.datasets import DTypeName
from fmlp.checks import nonnegative_int, positive_finite, positive_int
from fmlp.types import is_int

STUDY: Final = "gradcheck"
ALL_N: Final[tuple[int, ...]] = tuple(sorted(k * 10**i for i in range(6) for k in (1, 5)))
"""The assignment's twelve N: {k 10^i : i = 0..5, k in {1, 5}}."""


@attrs.frozen
class GradcheckOptions:
    """What the study computes, besides the model and the data.

    layer / p: theta is the first p = min(p, m) elements of ``params.layers[layer].w``
    (1: the second layer). ns: eps = 1/N. dtypes: the precisions of the differences
    (the reference gradient is always the float64 backward pass). third_h: the stencil
    step of L'''. noise_*: the windows and points of the loss-noise measurement.
    scan_limit: how many samples each sample rule looks at at most (from index 0; from
    the largest loss down).
    """

    layer: int = 1
    p: int = 10
    ns: tuple[int, ...] = ALL_N
    dtypes: tuple[DTypeName, ...] = ("float64", "float32")
    third_h: float = 1e-2
    noise_width: float = 1e-3
    noise_width_max: float = 0.25
    noise_points: int = 33
    scan_limit: int = 10_000

    def __attrs_post_init__(self) -> None:
        nonnegative_int("layer", self.layer)
        for name in ("p", "scan_limit"):
            positive_int(name, getattr(self, name))
        if not self.ns or any(not is_int(n) or n <= 0 for n in self.ns):
            raise ValueError(f"ns must be positive integers (eps = 1/N), got {self.ns}")
        if len(set(self.ns)) != len(self.ns) or list(self.ns) != sorted(self.ns):
            raise ValueError(f"ns must be increasing without repeats, got {self.ns}")
        if not self.dtypes or len(set(self.dtypes)) != len(self.dtypes):
            raise ValueError(
                f"dtypes must name float64 and/or float32 once each, got {self.dtypes}"
            )
        for dt in self.dtypes:
            if dt not in ("float32", "float64"):
                raise ValueError(f"unknown dtype {dt!r}: expected float32 or float64")
        for name in ("third_h", "noise_width", "noise_width_max"):
            positive_finite(name, getattr(self, name), show=str)
        if not is_int(self.noise_points) or self.noise_points < 9:
            raise ValueError(f"noise_points must be an integer >= 9, got {self.noise_points!r}")

    @classmethod
    def full(cls) -> GradcheckOptions:
        """The study as the report shows it: the twelve N, float64 and float32."""
        return cls()

    @classmethod
    def quick(cls) -> GradcheckOptions:
        """The smoke run: the same measurements (they take seconds); the quick suite
        differs only in its data and in the model it checks."""
        return cls()

    @property
    def headline_dtype(self) -> DTypeName:
        return "float64" if "float64" in self.dtypes else self.dtypes[0]
