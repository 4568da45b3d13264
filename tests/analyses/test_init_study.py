"""The initialization study on tiny models and synthetic data: its options' checks, the
per-layer diagnostics against values worked out by hand, a run end to end (shapes of
its records, the zero init's symmetry, the same bits from the same seed) and the study
through the pipeline, its summary read back from JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp
from analyses.datasets import DataSpec, SplitSizes
from analyses.pipeline.records import canonical_json, from_json, to_json
from analyses.pipeline.store import ResultStore
from analyses.pipeline.tasks import RunContext, run_environment
from analyses.pipeline.timings import PipelineReport
from analyses.studies.init import InitOptions, InitRun, InitRunResult, InitStudy, InitSummary
from analyses.studies.init.runs import Diagnostics, diagnostics, symmetry_report
from analyses.studies.init.summary import settings_of
from fmlp.types import SchemeName
from tests.analyses.local import run_local

DATA: Final = DataSpec("synthetic", 120, 40)
OPTIONS: Final = InitOptions(sizes=(784, 16, 16, 10), lr=0.1, batch_size=32, epochs=2, n_diag=30)
DIVERGING: Final = attrs.evolve(OPTIONS, lr=1e3, epochs=3)
"""Standard normal weights with this step size overflow within the first epochs."""


def _run(scheme: SchemeName, options: InitOptions = OPTIONS) -> InitRunResult:
    """One run here, in the environment a worker gives it (one BLAS thread: the sums, and
    so the bits, depend on the thread count)."""
    with run_environment():
        return InitRun(DATA, options, scheme).run(RunContext("unused"))


@pytest.fixture(scope="module")
def runs() -> dict[SchemeName, InitRunResult]:
    return {s: _run(s) for s in OPTIONS.schemes}


# ------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("sizes", (784,), ValueError, r"at least the input and output widths"),
        ("sizes", (784, 0, 10), ValueError, r"every width must be a positive integer"),
        ("sizes", "784", TypeError, r"sizes must be a sequence of layer widths"),
        ("activation", "gelu", ValueError, r"unknown activation 'gelu': expected one of relu"),
        ("schemes", (), ValueError, r"schemes is empty: name at least one of zero, normal"),
        ("schemes", ("zero", "xavier"), ValueError, r"unknown init scheme 'xavier'"),
        ("schemes", ("zero", "glorot", "zero"), ValueError, r"schemes repeat a name"),
        ("lr", 0.0, ValueError, r"lr must be a positive finite number, got 0\.0"),
        ("lr", -0.1, ValueError, r"lr must be a positive finite number, got -0\.1"),
        ("lr", math.nan, ValueError, r"lr must be a positive finite number, got nan"),
        ("lr", math.inf, ValueError, r"lr must be a positive finite number, got inf"),
        ("batch_size", 0, ValueError, r"batch_size must be a positive integer, got 0"),
        ("batch_size", 32.0, ValueError, r"batch_size must be a positive integer, got 32\.0"),
        ("epochs", -1, ValueError, r"epochs must be a positive integer, got -1"),
        ("epochs", True, ValueError, r"epochs must be a positive integer, got True"),
        ("n_diag", 0, ValueError, r"n_diag must be a positive integer, got 0"),
        ("seed", -1, ValueError, r"seed must be a non-negative integer, got -1"),
        ("seed", 1.0, ValueError, r"seed must be a non-negative integer, got 1\.0"),
        ("dtype", "float16", ValueError, r"dtype must be float32 or float64, got 'float16'"),
    ],
)
def test_each_bad_option_is_refused_with_a_message_that_names_it(
    field: str, value: Any, error: type[Exception], message: str
) -> None:
    fields: dict[str, Any] = {field: value}
    with pytest.raises(error, match=message):
        InitOptions(**fields)


def test_the_default_and_quick_options_are_valid_and_differ_only_in_length() -> None:
    default, quick = InitOptions(), InitOptions.quick()
    assert default.schemes == ("zero", "normal", "glorot")
    assert default.sizes == (784, 512, 512, 10) and default.epochs == 10
    assert attrs.evolve(quick, epochs=default.epochs, n_diag=default.n_diag) == default
    assert (quick.epochs, quick.n_diag) == (2, 200)
    assert InitOptions(seed=0, schemes=("he",)).schemes == ("he",)


# ------------------------------------------------------------------ diagnostics by hand


def _mlp(layers: list[tuple[list[list[float]], list[float]]], activation: Any = "relu") -> fmlp.MLP:
    return fmlp.MLP(
        tuple(
            fmlp.Dense(np.array(w, dtype=np.float64), np.array(b, dtype=np.float64))
            for w, b in layers
        ),
        activation,
    )


# inputs 2, hidden 3, classes 2; on X the hidden units' pre-activations are
# [[1, -1, 0], [3, -2, 0]]: the first unit fires, the second is negative and the third
# is exactly 0, so two of three are dead (never > 0)
W0: Final = [[1.0, -1.0, 0.0], [0.5, 0.0, 0.0]]
W1: Final = [[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]
B1: Final = [0.5, -0.5]
X: Final = np.array([[1.0, 0.0], [2.0, 2.0]])
Y: Final = np.array([0, 1])


def _hand_params() -> fmlp.MLP:
    return _mlp([(W0, [0.0, 0.0, 0.0]), (W1, B1)])


def _oracle_grads() -> tuple[float, list[NDArray[np.float64]]]:
    """The loss and the gradients (w0, b0, w1, b1) of the hand model, written out."""
    z0 = X @ np.array(W0)
    a1 = np.maximum(z0, 0.0)
    z1 = a1 @ np.array(W1) + np.array(B1)
    p = np.exp(z1 - z1.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(p[np.arange(2), Y])))
    d1 = (p - np.eye(2)[Y]) / 2
    d0 = (d1 @ np.array(W1).T) * (z0 > 0)
    return loss, [X.T @ d0, d0.sum(axis=0), a1.T @ d1, d1.sum(axis=0)]


def test_diagnostics_of_a_hand_made_model() -> None:
    params = _hand_params()
    row = diagnostics(params, params, X, Y)
    assert row.dead_fraction == (2 / 3,)
    assert row.pre_activation_max_abs == (3.0, 3.5)  # logits [[1.5, -0.5], [3.5, -0.5]]
    assert row.pre_activation_std[0] == pytest.approx(np.std([1, -1, 0, 3, -2, 0]))
    assert row.pre_activation_std[1] == pytest.approx(np.std([1.5, -0.5, 3.5, -0.5]))
    # across units (columns of w): input 0's weights span 2, input 1's 0.5; in the
    # output layer the third hidden unit's weights span 3
    assert row.unit_spread_w == (2.0, 3.0)
    assert row.unit_spread_b == (0.0, 1.0)
    assert row.change_w == (0.0, 0.0) and row.change_b == (0.0, 0.0)
    loss, (gw0, gb0, gw1, gb1) = _oracle_grads()
    assert row.subsample_loss == pytest.approx(loss, rel=1e-12)
    assert row.grad_w_norm == pytest.approx((np.linalg.norm(gw0), np.linalg.norm(gw1)), rel=1e-12)
    assert row.grad_b_norm == pytest.approx((np.linalg.norm(gb0), np.linalg.norm(gb1)), rel=1e-12)
    assert row.grad_w_norm[0] > 0, "the live unit passes a gradient back"


def test_movement_is_the_largest_change_from_the_initial_parameters() -> None:
    params0 = _hand_params()
    moved_w1 = [row.copy() for row in W1]
    moved_w1[2][1] -= 0.25
    params = _mlp([(W0, [0.0, 0.125, 0.0]), (moved_w1, [0.5, -1.5])])
    row = diagnostics(params, params0, X, Y)
    assert row.change_w == (0.0, 0.25)
    assert row.change_b == (0.125, 1.0)


def test_the_zero_init_has_no_spread_all_units_dead_and_only_an_output_bias_gradient() -> None:
    params = fmlp.init((2, 3, 3, 2), scheme="zero", seed=0, dtype=np.float64)
    row = diagnostics(params, params, X, np.array([0, 0]))
    assert row.unit_spread_w == (0.0, 0.0, 0.0) and row.unit_spread_b == (0.0, 0.0, 0.0)
    assert row.pre_activation_std == (0.0, 0.0, 0.0)
    assert row.dead_fraction == (1.0, 1.0), "z = 0 is never > 0"
    assert row.subsample_loss == pytest.approx(math.log(2), rel=1e-12)
    assert row.grad_w_norm == (0.0, 0.0, 0.0)
    # p = (1/2, 1/2) for every sample of class 0: the bias gradient is (-1/2, 1/2)
    assert row.grad_b_norm[:2] == (0.0, 0.0)
    assert row.grad_b_norm[2] == pytest.approx(math.sqrt(0.5), rel=1e-12)


def test_the_dead_fraction_is_none_for_an_activation_other_than_relu() -> None:
    params = _mlp([(W0, [0.0, 0.0, 0.0]), (W1, B1)], activation="tanh")
    row = diagnostics(params, params, X, Y)
    assert row.dead_fraction == (None,)
    assert row.pre_activation_max_abs[0] == 3.0


# ------------------------------------------------------------------ symmetry report


def _diagnostics(
    spread_w: list[tuple[float, ...]],
    spread_b: list[tuple[float, ...]],
    change_w: list[tuple[float, ...]],
    change_b: list[tuple[float, ...]],
) -> Diagnostics:
    """Diagnostics of two layers over len(spread_w) epochs; the rest zero."""
    n = len(spread_w)
    zeros = tuple((0.0, 0.0) for _ in range(n))
    return Diagnostics(
        epoch=tuple(range(n)),
        subsample_loss=(0.0,) * n,
        pre_activation_std=zeros,
        pre_activation_max_abs=zeros,
        dead_fraction=tuple((0.0,) for _ in range(n)),
        grad_w_norm=zeros,
        grad_b_norm=zeros,
        unit_spread_w=tuple(spread_w),
        unit_spread_b=tuple(spread_b),
        change_w=tuple(change_w),
        change_b=tuple(change_b),
    )


def test_the_symmetry_report_reads_hidden_spread_and_which_tensors_moved() -> None:
    # hidden units identical (output units may differ); only the output bias moves
    symmetric = symmetry_report(
        _diagnostics(
            spread_w=[(0.0, 0.7), (0.0, 0.9)],
            spread_b=[(0.0, 0.0), (0.0, 0.2)],
            change_w=[(0.0, 0.0), (0.0, 0.0)],
            change_b=[(0.0, 0.0), (0.0, 0.3)],
        )
    )
    assert symmetric.hidden_units_identical and symmetric.max_hidden_unit_spread == 0.0
    assert symmetric.moved == {"w0": False, "b0": False, "w1": False, "b1": True}
    assert symmetric.only_output_bias_moves
    # a hidden bias that spreads at the last epoch breaks the symmetry; a weight that
    # moved at any epoch counts as moved
    broken = symmetry_report(
        _diagnostics(
            spread_w=[(0.0, 0.7), (0.0, 0.9), (0.25, 0.9)],
            spread_b=[(0.0, 0.0), (0.0, 0.2), (0.5, 0.2)],
            change_w=[(0.0, 0.0), (0.0, 0.1), (0.0, 0.0)],
            change_b=[(0.0, 0.0), (0.0, 0.3), (0.0, 0.3)],
        )
    )
    assert not broken.hidden_units_identical and broken.max_hidden_unit_spread == 0.5
    assert broken.moved == {"w0": False, "b0": False, "w1": True, "b1": True}
    assert not broken.only_output_bias_moves
    nothing = symmetry_report(_diagnostics([(0.0, 0.0)], [(0.0, 0.0)], [(0.0, 0.0)], [(0.0, 0.0)]))
    assert not any(nothing.moved.values()) and not nothing.only_output_bias_moves


# ------------------------------------------------------------------ a run end to end


def test_a_run_records_curves_per_epoch_and_diagnostics_per_layer(
    runs: dict[SchemeName, InitRunResult],
) -> None:
    layers, hidden, epochs = 3, 2, OPTIONS.epochs
    for scheme, r in runs.items():
        assert r.scheme == scheme
        c = r.curves
        assert c.epoch == (1, 2)
        for curve in (c.train_loss, c.train_accuracy, c.running_loss, c.val_loss, c.diverged):
            assert len(curve) == epochs
        assert all(0.0 <= a <= 1.0 for a in (*c.train_accuracy, *c.val_accuracy))
        d = r.diagnostics
        assert d.epoch == (0, 1, 2) and len(d.subsample_loss) == epochs + 1
        per_layer = (d.pre_activation_std, d.grad_w_norm, d.unit_spread_w, d.change_b)
        for table in per_layer:
            assert [len(row) for row in table] == [layers] * (epochs + 1)
        assert [len(row) for row in d.dead_fraction] == [hidden] * (epochs + 1)
        assert d.change_w[0] == (0.0,) * layers and d.change_b[0] == (0.0,) * layers
        assert d.subsample_loss[0] == r.initial.subsample_loss
        assert r.nonfinite.first_diverged_epoch is None and r.nonfinite.train_loss == 0


def test_the_zero_init_stays_symmetric_and_only_its_output_bias_moves(
    runs: dict[SchemeName, InitRunResult],
) -> None:
    zero = runs["zero"]
    assert zero.symmetry.hidden_units_identical
    assert zero.symmetry.max_hidden_unit_spread == 0.0
    assert zero.symmetry.only_output_bias_moves
    assert zero.initial.train_loss == pytest.approx(math.log(10), rel=1e-6)
    assert (zero.initial.logit_std, zero.initial.logit_max_abs) == (0.0, 0.0)
    assert all(row[:2] == (1.0, 1.0) for row in zero.diagnostics.dead_fraction)
    assert zero.diagnostics.change_b[-1][2] > 0
    glorot = runs["glorot"]
    assert not glorot.symmetry.hidden_units_identical
    assert all(glorot.symmetry.moved.values())
    assert glorot.curves.train_loss[-1] < glorot.initial.train_loss, "it learns"


def test_the_same_seed_gives_the_same_bits_and_another_seed_other_ones(
    runs: dict[SchemeName, InitRunResult],
) -> None:
    again = _run("glorot")
    assert canonical_json(again) == canonical_json(runs["glorot"])
    other = _run("glorot", attrs.evolve(OPTIONS, seed=1))
    assert other.curves.train_loss != again.curves.train_loss


def test_a_run_result_round_trips_through_json(runs: dict[SchemeName, InitRunResult]) -> None:
    for r in runs.values():
        assert from_json(InitRunResult, to_json(r)) == r


def test_a_diverging_run_keeps_its_non_finite_values_and_says_when(tmp_path: Path) -> None:
    r = _run("normal", DIVERGING)
    c = r.curves
    assert any(c.diverged), "the setup meant to diverge did not"
    assert r.nonfinite.train_loss == sum(1 for v in c.train_loss if not math.isfinite(v)) > 0
    assert r.nonfinite.val_loss == sum(1 for v in c.val_loss if not math.isfinite(v))
    first = c.diverged.index(True) + 1
    assert r.nonfinite.first_diverged_epoch == first
    assert all(c.diverged[first - 1 :]), "once diverged, diverged"
    back = from_json(InitRunResult, to_json(r))
    assert canonical_json(back) == canonical_json(r)  # NaN != NaN: compare the text
    assert not back.symmetry.hidden_units_identical


def test_a_run_is_named_by_everything_it_depends_on() -> None:
    run = InitRun(DATA, OPTIONS, "zero")
    key = run.key()
    assert key["kind"] == "init" and key["version"] == InitRun.VERSION
    options = key["options"]
    assert isinstance(options, dict)
    assert key["scheme"] == "zero" and options["lr"] == 0.1
    assert key["data"] == {"name": "synthetic", "n_train": 120, "n_eval": 40}
    others = [
        InitRun(DATA, OPTIONS, "glorot"),
        InitRun(DATA, attrs.evolve(OPTIONS, seed=1), "zero"),
        InitRun(DataSpec("synthetic", 121, 40), OPTIONS, "zero"),
    ]
    assert all(o.key() != key for o in others)
    assert run.label() == "init zero"
    assert (InitRun.study, InitRun.torch, InitRun.result_type) == ("init", False, InitRunResult)


# ------------------------------------------------------------------ the study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PipelineReport]:
    out = tmp_path_factory.mktemp("init-study")
    return out, run_local(out, [InitStudy(DATA, OPTIONS)])


def test_the_study_runs_every_scheme_in_order_and_writes_its_figures(
    study: tuple[Path, PipelineReport], runs: dict[SchemeName, InitRunResult]
) -> None:
    out, report = study
    assert report.errors == {} and report.computed == len(OPTIONS.schemes)
    summary = report.summaries["init"]
    assert isinstance(summary, InitSummary)
    assert tuple(r.scheme for r in summary.runs) == OPTIONS.schemes
    for scheme, r in runs.items():
        assert summary.run(scheme) == r, "the pipeline's run is the direct run"
    assert summary.run("he") is None
    assert summary.figures == ("init_loss.svg", "init_diagnostics.svg")
    for name in summary.figures:
        assert (out / "init" / name).read_bytes().startswith(b"<?xml")
    assert summary.settings == settings_of(DATA, OPTIONS)


def test_the_summary_round_trips_through_json(study: tuple[Path, PipelineReport]) -> None:
    out, report = study
    summary = report.summaries["init"]
    assert isinstance(summary, InitSummary)
    assert InitSummary.from_json(summary.to_json()) == summary
    assert ResultStore(out).read_summary("init", InitSummary) == summary


def test_the_settings_say_what_every_setup_shares() -> None:
    s = settings_of(DATA, attrs.evolve(OPTIONS, n_diag=500))
    assert s.dataset == "synthetic" and s.dataset_sizes == SplitSizes(120, 40, 40)
    assert s.n_diag == 120, "no more diagnostic images than training images"
    assert s.n_params == 785 * 16 + 17 * 16 + 17 * 10
    assert s.layer_names == ("layer 1", "layer 2", "layer 3 (logits)")
    assert s.schemes == OPTIONS.schemes and s.lr == OPTIONS.lr
    assert "default_rng((0, e))" in s.data_order
