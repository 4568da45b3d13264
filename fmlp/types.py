"""Array aliases, the names fmlp accepts, and Protocols for its function slots."""

from __future__ import annotations

from typing import Any, Final, Literal, Protocol, TypeAlias, cast, get_args

import numpy as np
from numpy.typing import DTypeLike, NDArray

Floating: TypeAlias = np.floating[Any]
"""A numpy float scalar of either precision (np.float32 or np.float64)."""

FloatArray: TypeAlias = NDArray[Floating]
"""A float32 or float64 array: parameters, activations, gradients."""

IntArray: TypeAlias = NDArray[np.integer[Any]]
"""Integer class labels, shape (N,)."""

Array: TypeAlias = NDArray[Any]
"""An array of any dtype: a leaf of a tree, an entry of an archive."""

ActivationName: TypeAlias = Literal["relu", "tanh", "sigmoid"]
SchemeName: TypeAlias = Literal["zero", "normal", "glorot", "he"]

ACTIVATION_NAMES: Final[tuple[str, ...]] = get_args(ActivationName)
SCHEME_NAMES: Final[tuple[str, ...]] = get_args(SchemeName)
FLOAT_DTYPES: Final[tuple[type[Floating], ...]] = (np.float32, np.float64)

Seed: TypeAlias = int | np.random.Generator


class ArrayFn(Protocol):
    """An elementwise function of a float array (an activation or its derivative)."""

    def __call__(self, z: FloatArray, /) -> FloatArray: ...


def check_activation(name: str) -> ActivationName:
    """Return ``name`` as an ActivationName, or raise ValueError listing the known names."""
    if name not in ACTIVATION_NAMES:
        raise ValueError(
            f"unknown activation {name!r}: expected one of {', '.join(ACTIVATION_NAMES)}"
        )
    return cast(ActivationName, name)


def is_int(value: object) -> bool:
    """True for a Python or numpy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_dtype(dtype: DTypeLike) -> np.dtype[Floating]:
    """Return ``dtype`` as float32 or float64, or raise TypeError."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"unsupported dtype {dt}: fmlp works in float32 or float64")
    return cast("np.dtype[Floating]", dt)  # float32 or float64, checked above
