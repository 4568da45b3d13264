"""The one home of argument checks: of an argument's kind at the entry points, and of
its value (a positive integer, a finite number in range), each with one message shape:
the function, the argument, what it must be and what it got.

Kinds. ``expect(value, MLP, "fit", "params", "an fmlp.MLP (from fmlp.init)")`` raises

    TypeError: fit: params must be an fmlp.MLP (from fmlp.init), got int 1

so a wrong argument is named where it goes in, instead of failing later with an
``AttributeError`` deep inside the maths.

Values. Each check below returns the value when it passes and otherwise raises

    ValueError: [where: ]name must be a positive integer, got 0

(``where:`` only when ``where`` is given). ``show`` renders the value in the message:
``repr`` by default, ``str`` where a message has always printed the plain value.

- ``positive_int(name, value, where=None, *, show=repr)``: an integer (numpy's
  included, not a bool) > 0, "must be a positive integer";
- ``nonnegative_int(...)``: an integer >= 0, "must be a non-negative integer";
- ``positive_finite(...)``: a real number (see ``is_real``), finite and > 0, "must be
  a positive finite number";
- ``nonnegative_finite(...)``: a finite real number >= 0, "must be a non-negative
  finite number";
- ``unit_interval(...)``: a real number in [0, 1) (a decay rate, a momentum beta),
  "must lie in [0, 1)";
- ``invalid(name, value, must=..., where=None, *, show=repr)``: the ValueError itself,
  for a rule the checks above do not cover, e.g.
  ``raise invalid("epsilon", eps, must="be a number in [0, 0.5)")``;
- ``is_real(value)`` and ``fmlp.types.is_int(value)``: the predicates they use.

The studies in ``analyses/`` may call them too: ``from fmlp.checks import positive_int``.
Checks of shapes and dtypes stay where the arrays are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar, cast

from fmlp.types import is_int

T = TypeVar("T")

__all__ = [
    "expect",
    "expect_callable",
    "expect_int",
    "expect_real",
    "got",
    "invalid",
    "is_real",
    "nonnegative_finite",
    "nonnegative_int",
    "positive_finite",
    "positive_int",
    "unit_interval",
]


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


def expect_callable(value: object, where: str, name: str, what: str) -> Callable[..., object]:
    """``value`` if it is callable, else TypeError naming the argument."""
    if not callable(value):
        raise _fail(where, name, what, value)
    return value


def expect_real(value: object, where: str, name: str) -> float:
    """``value`` as a float if it is a real number (int or float, numpy's included, not a
    bool nor a string), else TypeError. Whether it is in range is the caller's check."""
    if not is_real(value):
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


def is_real(value: object) -> bool:
    """True for a Python or numpy int or float that is not a bool."""
    return not isinstance(value, bool) and (isinstance(value, (int, float)) or _is_np_real(value))


# ------------------------------------------------------------------ values


def invalid(
    name: str,
    value: object,
    *,
    must: str,
    where: str | None = None,
    show: Callable[[object], str] = repr,
) -> ValueError:
    """The ValueError ``[where: ]name must <must>, got <show(value)>``, to raise."""
    prefix = f"{where}: " if where is not None else ""
    return ValueError(f"{prefix}{name} must {must}, got {show(value)}")


def positive_int(
    name: str, value: object, where: str | None = None, *, show: Callable[[object], str] = repr
) -> int:
    """``value`` as an int if it is an integer > 0, else ValueError (a wrong kind
    included: "must be a positive integer, got 'a'")."""
    if not is_int(value) or cast("int", value) <= 0:
        raise invalid(name, value, must="be a positive integer", where=where, show=show)
    return int(cast("int", value))  # an int or numpy integer, checked above


def nonnegative_int(
    name: str, value: object, where: str | None = None, *, show: Callable[[object], str] = repr
) -> int:
    """``value`` as an int if it is an integer >= 0, else ValueError."""
    if not is_int(value) or cast("int", value) < 0:
        raise invalid(name, value, must="be a non-negative integer", where=where, show=show)
    return int(cast("int", value))  # an int or numpy integer, checked above


def positive_finite(
    name: str, value: object, where: str | None = None, *, show: Callable[[object], str] = repr
) -> float:
    """``value`` as a float if it is a finite real number > 0, else ValueError."""
    number = cast("float", value)  # compared only once is_real has passed
    if not (is_real(value) and math.isfinite(number) and number > 0):
        raise invalid(name, value, must="be a positive finite number", where=where, show=show)
    return float(number)


def nonnegative_finite(
    name: str, value: object, where: str | None = None, *, show: Callable[[object], str] = repr
) -> float:
    """``value`` as a float if it is a finite real number >= 0, else ValueError."""
    number = cast("float", value)  # compared only once is_real has passed
    if not (is_real(value) and math.isfinite(number) and number >= 0):
        raise invalid(name, value, must="be a non-negative finite number", where=where, show=show)
    return float(number)


def unit_interval(
    name: str, value: object, where: str | None = None, *, show: Callable[[object], str] = repr
) -> float:
    """``value`` as a float if it is a real number in [0, 1), else ValueError."""
    number = cast("float", value)  # compared only once is_real has passed
    if not (is_real(value) and 0.0 <= number < 1.0):
        raise invalid(name, value, must="lie in [0, 1)", where=where, show=show)
    return float(number)


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
