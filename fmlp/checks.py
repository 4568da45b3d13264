"""Checks of an argument's kind at the entry points, with one message shape: the
function, the argument, what it must be and what it got.

``expect(value, MLP, "fit", "params", "an fmlp.MLP (from fmlp.init)")`` raises

    TypeError: fit: params must be an fmlp.MLP (from fmlp.init), got int 1

so a wrong argument is named where it goes in, instead of failing later with an
``AttributeError`` deep inside the maths. Only the kind is checked here; the values
(shapes, ranges) are checked where they are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

from fmlp.types import is_int

T = TypeVar("T")

__all__ = ["expect", "expect_callable", "expect_int", "expect_real", "got"]


def got(value: object) -> str:
    """``int 1``, ``str 'a'``, ``NoneType None``: the kind and a short repr of ``value``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _fail(where: str, name: str, what: str, value: object) -> TypeError:
    return TypeError(f"{where}: {name} must be {what}, got {got(value)}")


def expect(value: object, kind: type[T], where: str, name: str, what: str) -> T:
    """``value`` if it is a ``kind``, else TypeError naming ``where``, ``name`` and ``what``."""
    if not isinstance(value, kind):
        raise _fail(where, name, what, value)
    return value


def expect_callable(value: object, where: str, name: str, what: str) -> Callable[..., Any]:
    """``value`` if it is callable, else TypeError naming the argument."""
    if not callable(value):
        raise _fail(where, name, what, value)
    return value


def expect_real(value: object, where: str, name: str) -> float:
    """``value`` as a float if it is a real number (int or float, numpy's included, not a
    bool nor a string), else TypeError. Whether it is in range is the caller's check."""
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not _is_np_real(value)):
        raise _fail(where, name, "a real number", value)
    result = float(cast("float", value))  # an int, float or numpy real, checked above
    if math.isnan(result):
        raise ValueError(f"{where}: {name} must be a number, got NaN")
    return result


def expect_int(value: object, where: str, name: str) -> int:
    """``value`` as an int if it is an integer (numpy's included, not a bool), else
    TypeError. Whether it is in range is the caller's check."""
    if not is_int(value):
        raise _fail(where, name, "an integer", value)
    return int(cast("int", value))  # an int or numpy integer, checked above


def _is_np_real(value: object) -> bool:
    import numpy as np

    return isinstance(value, (np.integer, np.floating))


# The records below are imported when a check runs: the modules that define them call
# these checks themselves, so importing them at the top would be a cycle.


def expect_params(value: object, where: str, name: str = "params") -> None:
    """TypeError unless ``value`` is an ``fmlp.MLP``."""
    from fmlp.params import MLP

    expect(value, MLP, where, name, "an fmlp.MLP (made by fmlp.init)")


def expect_optimizer(value: object, where: str, name: str = "optimizer") -> None:
    """TypeError unless ``value`` is an ``fmlp.Optimizer``."""
    from fmlp.optim import Optimizer

    expect(value, Optimizer, where, name, "an fmlp.Optimizer (e.g. fmlp.sgd(0.1))")


def expect_state(value: object, where: str, name: str = "state") -> None:
    """TypeError unless ``value`` is an ``fmlp.TrainState``."""
    from fmlp.train import TrainState

    expect(value, TrainState, where, name, "an fmlp.TrainState (from fmlp.init_state or fit)")


def expect_training(
    where: str,
    *,
    seed: object = 0,
    validation: object = None,
    callback: object = None,
    params_callback: object = None,
) -> None:
    """The optional arguments of ``fit`` / ``resume``: an integer seed, a validation pair
    ``(x, y)`` or None, and callables or None."""
    expect_int(seed, where, "seed")
    if validation is not None and not (isinstance(validation, tuple) and len(validation) == 2):
        raise _fail(where, "validation", "a pair (x_valid, y_valid) or None", validation)
    for name, value in (("callback", callback), ("params_callback", params_callback)):
        if value is not None:
            expect_callable(value, where, name, "a function or None")
