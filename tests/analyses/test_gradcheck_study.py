"""The finite-difference study on tiny synthetic data: the V shape on a smooth activation,
result shapes, kink detection, the error model, model resolution and resuming."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fmlp
from analyses import gradcheck_study as gs
from analyses.common import ResultStore, StudyData, synthetic_data
from analyses.gradcheck_study import DefaultModel, GradcheckOptions
from fmlp import checkpoint

SIZES = (784, 32, 32, 10)
TWELVE = [1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000]


@pytest.fixture(scope="module")
def tiny() -> StudyData:
    return synthetic_data(200, 100, seed=2)


def options(activation: str = "tanh", **changes: Any) -> GradcheckOptions:
    model = DefaultModel(sizes=SIZES, activation=activation, epochs=1, batch_size=32)  # type: ignore[arg-type]  # a literal name
    return attrs.evolve(GradcheckOptions(default_model=model), **changes)


@pytest.fixture(scope="module")
def tanh_study(
    tiny: StudyData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gc_tanh")
    return out, gs.run(tiny, out, options("tanh"))


@pytest.fixture(scope="module")
def relu_study(
    tiny: StudyData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gc_relu")
    return out, gs.run(tiny, out, options("relu"), figures=False)


def _results(summary: dict[str, Any]) -> str:
    """The results as canonical JSON text (so NaN compares equal to NaN)."""
    return json.dumps(
        {k: summary[k] for k in ("settings", "theta", "curves", "error_model")}, sort_keys=True
    )


# ------------------------------------------------------------------------- the V


def test_the_twelve_n() -> None:
    assert list(gs.ALL_N) == TWELVE


def test_error_falls_as_n_grows_on_tanh(tanh_study: tuple[Path, dict[str, Any]]) -> None:
    """Truncation dominates from N = 1 to 1000 in float64: the error falls, by about
    (N ratio)^2 per step once eps is small."""
    _, summary = tanh_study
    curve = summary["curves"]["float64"]
    err = dict(zip(curve["N"], curve["max_abs_diff"]))
    falling = [err[n] for n in (1, 10, 100, 1000)]
    assert all(a > b for a, b in zip(falling, falling[1:])), falling
    assert err[1000] < 1e-4 * err[1]
    assert 50 < err[100] / err[1000] < 200  # second order: a factor 10^2 per decade
    assert not any(curve["any_kink"])  # tanh has no kinks


def test_float32_round_off_floor_gives_a_v(tanh_study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = tanh_study
    e32 = np.asarray(summary["curves"]["float32"]["max_abs_diff"])
    e64 = np.asarray(summary["curves"]["float64"]["max_abs_diff"])
    best = int(np.argmin(e32))
    assert 0 < best < len(TWELVE) - 1  # the bottom of the V is inside the range
    assert e32[-1] > 100 * e32[best]  # round-off takes over at large N
    assert e32[-1] > 1e3 * e64[-1]  # and float32's floor is far above float64's
    em = summary["error_model"]["by_dtype"]
    assert em["float32"]["crossing_N"] < em["float64"]["crossing_N"]  # the floor moves left
    assert em["float32"]["machine_eps"] == float(np.finfo(np.float32).eps)


def test_error_model_predicts_truncation(tanh_study: tuple[Path, dict[str, Any]]) -> None:
    """For small eps, FD_i - g_i = eps^2 L'''_i / 6: the stencil's C_t gives the curve."""
    _, summary = tanh_study
    model = summary["error_model"]
    curve = summary["curves"]["float64"]
    stencil = model["truncation_coef_stencil"]
    assert stencil == pytest.approx(max(abs(v) for v in model["third_derivative"]) / 6)
    for n in (100, 500, 1000):
        measured = curve["max_abs_diff"][curve["N"].index(n)]
        assert 0.5 < measured / (stencil / n**2) < 2, n
    # the fitted coefficient agrees with the a-priori one, and is the one used
    assert 0.5 < model["truncation_coef_fit"] / stencil < 2
    assert model["truncation_coef"] == model["truncation_coef_fit"]
    assert model["truncation_coef_source"] == "fit to the float64 curve"
    for dtype, em in model["by_dtype"].items():
        assert em["loss_noise_source"] == "measured", dtype
        assert em["saturation"] == max(abs(g) for g in summary["curves"][dtype]["gradient"])
        assert max(em["model"]) <= em["saturation"]
    f32 = model["by_dtype"]["float32"]
    assert f32["loss_noise"] > 0 and f32["roundoff_coef"] == pytest.approx(
        math.sqrt(2) * f32["loss_noise"]
    )
    # the round-off model describes float32's right arm within an order of magnitude
    e = summary["curves"]["float32"]["max_abs_diff"][-1]
    assert 0.1 < e / (f32["roundoff_coef"] * TWELVE[-1]) < 10


# --------------------------------------------------------------------- shapes


def test_result_shapes_and_figure(tanh_study: tuple[Path, dict[str, Any]]) -> None:
    out, summary = tanh_study
    s = summary["settings"]
    assert s["p"] == 10 and s["layer"] == 1 and s["ns"] == TWELVE and s["sample_index"] == 0
    assert s["m"] == 32 * 32 and "row-major" in s["theta"] and "layers[1].w" in s["theta"]
    assert summary["theta"]["index"] == [[0, j] for j in range(10)]
    assert len(summary["theta"]["gradient"]) == 10
    assert summary["model"]["source"] == "trained default"
    assert summary["model"]["sizes"] == list(SIZES) and summary["model"]["activation"] == "tanh"
    for dtype in ("float64", "float32"):
        c = summary["curves"][dtype]
        for key in (
            "max_abs_diff",
            "relative_error",
            "max_elementwise_relative_error",
            "any_kink",
            "eps",
        ):
            assert len(c[key]) == 12, (dtype, key)
        for key in ("fd", "abs_diff", "kink", "kink_units"):
            assert len(c[key]) == 12 and all(len(row) == 10 for row in c[key]), (dtype, key)
        assert c["eps"] == [1 / n for n in TWELVE]
        gmax = max(abs(g) for g in c["gradient"])
        assert c["relative_error"] == pytest.approx(
            [e / gmax for e in c["max_abs_diff"]], rel=1e-12
        )
    folder = out / "gradcheck_study"
    assert sorted(summary["figures"]) == ["gradcheck.pdf", "gradcheck.png"]
    assert (folder / "gradcheck.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "gradcheck.pdf").read_bytes().startswith(b"%PDF")
    on_disk = json.loads((folder / "summary.json").read_text())
    assert (
        on_disk["curves"]["float64"]["max_abs_diff"] == summary["curves"]["float64"]["max_abs_diff"]
    )


def test_fd_matches_the_backward_gradient(
    tiny: StudyData, tanh_study: tuple[Path, dict[str, Any]]
) -> None:
    """The recorded gradient is fmlp.grad's, and an independent central difference
    (mutating a private copy) agrees with the recorded one."""
    out, summary = tanh_study
    params = checkpoint.load(summary["model"]["path"])
    x, y = tiny.x_train[:1], tiny.y_train[:1]
    g = fmlp.grad(params, x, y)[1].layers[1].w
    assert summary["theta"]["gradient"] == g.ravel()[:10].tolist()
    eps, i = 1e-3, 3
    w = params.layers[1].w.copy()
    w.flat[i] += eps
    plus = fmlp.MLP(
        layers=(params.layers[0], fmlp.Dense(w=w, b=params.layers[1].b), params.layers[2]),
        activation="tanh",
    )
    w2 = params.layers[1].w.copy()
    w2.flat[i] -= eps
    minus = fmlp.MLP(
        layers=(params.layers[0], fmlp.Dense(w=w2, b=params.layers[1].b), params.layers[2]),
        activation="tanh",
    )
    fd = (fmlp.loss(plus, x, y) - fmlp.loss(minus, x, y)) / (2 * eps)
    assert summary["curves"]["float64"]["fd"][TWELVE.index(1000)][i] == pytest.approx(
        fd, rel=1e-9, abs=1e-15
    )


def test_p_is_min_10_m(tiny: StudyData, tmp_path: Path) -> None:
    params = fmlp.init((784, 2, 3, 10), activation="tanh", seed=0)
    summary = gs.run(tiny, tmp_path, options(ns=(10, 100)), params=params, figures=False)
    assert summary["settings"]["p"] == summary["settings"]["m"] == 6
    assert summary["theta"]["index"] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert summary["model"]["source"] == "given"


def test_perturbation_does_not_mutate(tiny: StudyData, tmp_path: Path) -> None:
    params = fmlp.init(SIZES, activation="relu", seed=0)
    before = fmlp.tree_map(np.copy, params)
    e = gs.unit_direction(params, 1, 4)
    moved = gs.shifted(params, e, 0.5)
    assert fmlp.tree_allclose(params, before, rtol=0)
    diff = moved.layers[1].w - params.layers[1].w
    assert diff.ravel()[4] == 0.5 and np.count_nonzero(diff) == 1
    leaves, original = fmlp.tree_leaves(moved), fmlp.tree_leaves(params)
    assert all(np.array_equal(leaves[k], original[k]) for k in (0, 1, 3, 4, 5))
    gs.run(tiny, tmp_path, options(ns=(1, 1000)), params=params, figures=False)
    assert fmlp.tree_allclose(params, before, rtol=0)


# ------------------------------------------------------------------------ kinks


OFFSETS = (0.3, -0.3, 0.03, -0.03, 3e-3, -3e-3, 3e-5, -3e-5, 3.0, -3.0)  # none at a boundary 1/N


def test_kinks_are_detected(
    tiny: StudyData, relu_study: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """A model whose second-layer pre-activations sit at z_c = t_c a_r for the chosen
    sample (a_r: theta's input activation): perturbing w[r, c] by eps crosses the kink
    exactly when |t_c| < eps. Every recorded (N, i) flag must say so, and the kinks
    explain the outliers: without them the differences are accurate."""
    _, relu = relu_study
    trained = checkpoint.load(relu["model"]["path"])
    k = relu["settings"]["sample_index"]
    x = tiny.x_train[k : k + 1]
    _, cache = fmlp.forward_with_cache(trained, x)
    a = cache.activations[1][0]
    assert a[0] > 0
    z_wanted = cache.pre_activations[1][0].copy()
    z_wanted[:10] = np.asarray(OFFSETS) * a[0]
    b1 = trained.layers[1].b + (z_wanted - cache.pre_activations[1][0])
    params = fmlp.MLP(
        layers=(trained.layers[0], fmlp.Dense(w=trained.layers[1].w, b=b1), trained.layers[2]),
        activation="relu",
    )
    summary = gs.run(tiny, tmp_path, options("relu", sample_index=k), params=params, figures=False)
    assert summary["theta"]["index"] == [[0, c] for c in range(10)]
    c64 = summary["curves"]["float64"]
    for j, n in enumerate(TWELVE):
        expected = [abs(t) < 1 / n for t in OFFSETS]
        assert c64["kink"][j] == expected, n
        assert summary["curves"]["float32"]["kink"][j] == expected, n
    assert c64["n_kinks"] == [sum(abs(t) < 1 / n for t in OFFSETS) for n in TWELVE]
    assert c64["any_kink"][TWELVE.index(5000)] and not c64["any_kink"][TWELVE.index(50000)]
    for j, n in enumerate(TWELVE):
        without = c64["max_abs_diff_without_kinks"][j]
        if 50 <= n <= 10000:
            assert without is not None and without < 1e-6, n
        if c64["any_kink"][j] and n >= 50:
            assert c64["max_abs_diff"][j] > 100 * without, n  # the kink is the outlier


# ------------------------------------------------------------- sample choice


def test_auto_sample_skips_samples_where_theta_is_dead(
    tiny: StudyData, relu_study: tuple[Path, dict[str, Any]]
) -> None:
    _, summary = relu_study
    s = summary["settings"]
    params = checkpoint.load(summary["model"]["path"])
    k = s["sample_index"]
    assert (
        k > 0
        and s["sample_choice"].startswith("auto")
        and f"samples 0..{k - 1}" in s["sample_choice"]
    )
    for index in (0, k - 1):
        assert not np.any(gs.theta_gradient(params, tiny, index, 1, 10))
    assert np.any(np.asarray(summary["theta"]["gradient"]) != 0)
    assert summary["settings"]["sample_label"] == int(tiny.y_train[k])


def test_a_dead_theta_gives_exact_zeros_and_a_figure(
    tiny: StudyData, relu_study: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Sample 0 of the ReLU model: theta's input unit is inactive, so every gradient and
    every difference is exactly 0; the study says so and still draws its figure."""
    _, relu = relu_study
    params = checkpoint.load(relu["model"]["path"])
    summary = gs.run(tiny, tmp_path, options("relu", sample_index=0), params=params)
    assert summary["settings"]["sample_choice"] == "given"
    for curve in summary["curves"].values():
        assert curve["max_abs_diff"] == [0.0] * 12 and curve["gradient"] == [0.0] * 10
    assert (tmp_path / "gradcheck_study" / "gradcheck.png").stat().st_size > 5000


# ----------------------------------------------------------------- model choice


def test_uses_the_search_best_model(
    tiny: StudyData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = fmlp.init((784, 16, 16, 10), activation="tanh", seed=5)
    checkpoint.save(tmp_path / "hparam_search" / "best_params.npz", best)
    calls = _count(monkeypatch, fmlp, "fit")
    summary = gs.run(tiny, tmp_path, options(ns=(10, 100)), figures=False)
    assert calls == []
    assert summary["model"]["source"] == "hparam_search best"
    assert summary["model"]["sizes"] == [784, 16, 16, 10]
    assert summary["model"]["sha256"] == gs.params_digest(best)
    # --train-default ignores it
    summary = gs.run(tiny, tmp_path, options(ns=(10, 100), use_search_best=False), figures=False)
    assert summary["model"]["source"] == "trained default" and len(calls) == 1


def test_missing_model_path_is_a_clear_error(
    tiny: StudyData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        gs.run(tiny, tmp_path, options(model_path=tmp_path / "nope.npz"), figures=False)
    argv = [
        "--out",
        str(tmp_path),
        "--dataset",
        "synthetic",
        "--quiet",
        "--model",
        str(tmp_path / "nope.npz"),
    ]
    assert gs.main(argv) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"p": 0}, "p must be"),
        ({"ns": (10, 0)}, "ns must be"),
        ({"dtypes": ("float16",)}, "dtype"),
        ({"sample_index": -1}, "sample_index"),
    ],
)
def test_options_validate(changes: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        attrs.evolve(GradcheckOptions(), **changes)


def test_bad_sample_and_layer(tiny: StudyData, tmp_path: Path) -> None:
    params = fmlp.init((784, 4, 10), seed=0)
    with pytest.raises(ValueError, match="out of range"):
        gs.run(tiny, tmp_path, options(sample_index=10_000), params=params, figures=False)
    assert gs.main(["--out", str(tmp_path), "--dataset", "synthetic", "--sample", "first"]) == 2
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        gs.run(tiny, tmp_path, options(layer=3), params=params, figures=False)


# ------------------------------------------------------------------------ resume


def _count(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    calls: list[Any] = []
    real = getattr(module, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[4] if name == "fd_curve" else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_resume_redoes_only_the_missing_run(
    tiny: StudyData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = options("relu", ns=(1, 10, 100, 1000))
    first = gs.run(tiny, tmp_path, opts, figures=False)
    fits = _count(monkeypatch, fmlp, "fit")
    curves = _count(monkeypatch, gs, "fd_curve")
    again = gs.run(tiny, tmp_path, opts, figures=False)
    assert fits == [] and curves == []  # the default model comes from its checkpoint
    assert _results(again) == _results(first)
    assert again["model"]["trained_now"] is False and first["model"]["trained_now"] is True
    # lose the float32 curve: only it is computed again
    store = ResultStore(tmp_path, "gradcheck_study")
    runs = sorted((tmp_path / "gradcheck_study" / "runs").glob("*.json"))
    f32 = [
        p
        for p in runs
        if json.loads(p.read_text())["config"].get("dtype") == "float32"
        and json.loads(p.read_text())["config"]["kind"] == "fd"
    ]
    assert len(f32) == 1 and store.folder == f32[0].parent.parent
    f32[0].unlink()
    third = gs.run(tiny, tmp_path, opts, figures=False)
    assert fits == [] and curves == ["float32"]
    assert _results(third) == _results(first)


def test_default_model_trained_once_and_same_seed_same_model(
    tiny: StudyData, tmp_path: Path
) -> None:
    model = options("relu").default_model
    a, info_a = gs.train_default(tiny, tmp_path / "a", model)
    b, info_b = gs.train_default(tiny, tmp_path / "b", model)
    assert info_a["computed_now"] and info_b["computed_now"]
    assert fmlp.tree_allclose(a, b, rtol=0) and info_a["sha256"] == info_b["sha256"]
    c, info_c = gs.train_default(tiny, tmp_path / "a", model)
    assert not info_c["computed_now"] and fmlp.tree_allclose(a, c, rtol=0)


# ------------------------------------------------------------------ command line


def test_cli_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--dataset",
        "synthetic",
        "--quiet",
        "--quick",
        "--default-activation",
        "tanh",
    ]
    assert gs.main(argv) == 0
    summary = json.loads((tmp_path / "gradcheck_study" / "summary.json").read_text())
    assert summary["model"]["source"] == "trained default"
    assert summary["model"]["training"]["epochs"] == 1 and summary["model"]["sizes"] == [
        784,
        512,
        512,
        10,
    ]
    assert summary["model"]["n_params"] == 669_706
    assert len(summary["curves"]["float64"]["max_abs_diff"]) == 12
    assert "N = 500000" in capsys.readouterr().out


@pytest.mark.real_data
def test_quick_on_real_mnist(tmp_path: Path, real_mnist: Any) -> None:
    assert gs.main(["--out", str(tmp_path), "--quick", "--quiet", "--dtypes", "float64"]) == 0
    summary = json.loads((tmp_path / "gradcheck_study" / "summary.json").read_text())
    assert summary["settings"]["dataset"] == "mnist[:600]"
    assert list(summary["curves"]) == ["float64"]
    k = summary["settings"]["sample_index"]
    assert summary["settings"]["sample_label"] == int(real_mnist.train.y[k])
    assert any(g != 0 for g in summary["theta"]["gradient"])


def test_fit_truncation() -> None:
    curve = {
        "N": [1, 10, 100, 1000],
        "max_abs_diff": [5.0, 0.02, 2e-4, 1e-3],
        "any_kink": [True, False, False, False],
    }
    # N = 1 crosses a kink and N = 1000 is round-off: the fit uses N = 10 and 100
    assert gs.fit_truncation(curve, roundoff_coef=1.5e-7) == pytest.approx(2.0)
    assert math.isnan(gs.fit_truncation(curve, roundoff_coef=1.0))
