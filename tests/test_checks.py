"""Every entry point refuses an argument of the wrong kind with a message that names the
function, the argument and what it must be (instead of an AttributeError from inside)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fmlp
from fmlp.checks import (
    expect_int,
    expect_real,
    got,
    invalid,
    is_real,
    nonnegative_finite,
    nonnegative_int,
    positive_finite,
    positive_int,
    unit_interval,
)

P = fmlp.init((4, 3, 2), scheme="glorot", activation="relu", seed=0)
X = np.zeros((5, 4))
Y = np.zeros(5, dtype=np.int64)
OPT = fmlp.sgd(0.1)
STATE = fmlp.init_state(P, OPT)
F: Any = fmlp  # the wrong kinds below are the point: called untyped


def _fit(**kw: Any) -> Any:
    args: dict[str, Any] = {"epochs": 1, "batch_size": 2, "lr": 0.1} | kw
    return F.fit(args.pop("params", P), X, Y, **args)


def _resume(**kw: Any) -> Any:
    args: dict[str, Any] = {"optimizer": OPT, "start_epoch": 0, "epochs": 1, "batch_size": 2}
    return F.resume(kw.pop("state", STATE), X, Y, **(args | kw))


CASES: list[tuple[Callable[[], Any], str]] = [
    (lambda: F.chain(1, 2), "chain: argument 1 must be an fmlp.Optimizer"),
    (lambda: F.chain(OPT, "x"), "chain: argument 2 must be an fmlp.Optimizer"),
    (lambda: _fit(params=1), "fit: params must be an fmlp.MLP"),
    (lambda: _fit(lr=None, optimizer=1), "fit: optimizer must be an fmlp.Optimizer"),
    (lambda: _fit(callback=1), "fit: callback must be a function or None"),
    (lambda: _fit(params_callback="f"), "fit: params_callback must be a function or None"),
    (lambda: _fit(validation=1), "fit: validation must be a pair (x_valid, y_valid)"),
    (lambda: _fit(seed="a"), "fit: seed must be an integer"),
    (lambda: _resume(state=P), "resume: state must be an fmlp.TrainState"),
    (lambda: _resume(optimizer=1), "resume: optimizer must be an fmlp.Optimizer"),
    (lambda: F.init_state(1, OPT), "init_state: params must be an fmlp.MLP"),
    (lambda: F.init_state(P, 1), "init_state: optimizer must be an fmlp.Optimizer"),
    (lambda: F.make_step(1), "make_step: optimizer must be an fmlp.Optimizer"),
    (lambda: F.sgd_step(P, (X, Y), lr=0.1), "sgd_step: state must be an fmlp.TrainState"),
    (
        lambda: F.train_epoch(P, X, Y, optimizer=OPT, batch_size=2, seed=0, epoch=0),
        "train_epoch: state must be an fmlp.TrainState",
    ),
    (lambda: F.evaluate(1, X, Y), "evaluate: params must be an fmlp.MLP"),
    (lambda: F.evaluate(P, X, Y, chunk="a"), "evaluate: chunk must be an integer"),
    (lambda: F.forward(1, X), "params must be an fmlp.MLP"),
    (lambda: F.grad(1, X, Y), "params must be an fmlp.MLP"),
    (lambda: F.scan(1, 0, [1]), "scan: f must be a function"),
    (lambda: F.sgd("a"), "lr (the learning rate) must be a positive number or a schedule"),
    (lambda: F.sgd(None), "lr (the learning rate) must be a positive number or a schedule"),
    (lambda: F.adam(0.1, b1="a"), "scale_by_adam: b1 must be a real number"),
    (lambda: F.adam(0.1, eps="a"), "scale_by_adam: eps must be a real number"),
    (lambda: F.momentum(0.1, beta="a"), "trace: decay (momentum beta) must be a real number"),
    (lambda: F.add_decayed_weights("a"), "add_decayed_weights: weight_decay must be a real"),
    (lambda: F.cosine_decay("a", total_steps=3), "cosine_decay: lr must be a real number"),
    (lambda: F.cosine_decay(0.1, total_steps=2.5), "cosine_decay: total_steps must be an int"),
    (lambda: F.step_decay(0.1, every="2"), "step_decay: every must be an integer"),
    (lambda: F.n_params(1), "n_params: params must be an fmlp.MLP"),
    (lambda: F.init(1, seed=0), "sizes must be a sequence of layer widths"),
]


@pytest.mark.parametrize(("call", "message"), CASES, ids=[m for _, m in CASES])
def test_a_wrong_kind_of_argument_is_named(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        call()
    assert message in str(info.value)
    assert "got " in str(info.value)  # and what it got


def test_the_right_kinds_pass_through() -> None:
    assert expect_int(np.int32(3), "f", "n") == 3
    assert expect_real(np.float32(0.5), "f", "x") == 0.5
    assert expect_real(2, "f", "x") == 2.0
    with pytest.raises(TypeError, match="f: x must be a real number, got bool True"):
        expect_real(True, "f", "x")
    with pytest.raises(ValueError, match="f: x must be a number, got NaN"):
        expect_real(float("nan"), "f", "x")
    assert got("a" * 100).endswith("...")
    assert isinstance(fmlp.chain(fmlp.trace(0.9), OPT), fmlp.Optimizer)


def test_the_value_checks_name_the_argument_and_what_it_got() -> None:
    assert positive_int("n", np.int64(3)) == 3
    assert nonnegative_int("n", 0) == 0
    assert positive_finite("lr", np.float32(0.5)) == 0.5
    assert nonnegative_finite("wd", 0) == 0.0
    assert unit_interval("beta", 0.9) == 0.9
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: positive_int("n", 0), "n must be a positive integer, got 0"),
        (lambda: positive_int("n", "a", "f"), "f: n must be a positive integer, got 'a'"),
        (lambda: positive_int("n", "a", show=str), "n must be a positive integer, got a"),
        (lambda: positive_int("n", True), "n must be a positive integer, got True"),
        (lambda: nonnegative_int("n", -1), "n must be a non-negative integer, got -1"),
        (lambda: positive_finite("lr", math.inf), "lr must be a positive finite number, got inf"),
        (lambda: positive_finite("lr", 0), "lr must be a positive finite number, got 0"),
        (lambda: nonnegative_finite("wd", -0.5), "wd must be a non-negative finite number"),
        (lambda: unit_interval("beta", 1.0), "beta must lie in [0, 1), got 1.0"),
        (lambda: unit_interval("beta", None), "beta must lie in [0, 1), got None"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(message)
    error = invalid("eps", 0.7, must="be a number in [0, 0.5)", where="NN")
    assert str(error) == "NN: eps must be a number in [0, 0.5), got 0.7"
    assert is_real(np.int8(1)) and is_real(2.5) and not is_real(True) and not is_real("1")
