"""The finite-difference study on tiny models and synthetic data: run through the
pipeline with a stand-in for the search, its records, its report section, and the
numerical checks (the V shape, kink detection, the error model)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fmlp
from analyses.datasets import DataSpec, SplitSizes, load_data
from analyses.mlp import MlpConfig, params_digest
from analyses.pipeline.driver import run_pipeline
from analyses.pipeline.executors import make_executor
from analyses.pipeline.records import canonical_json, from_json, to_json
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import MissingArtifact, Study, check_order
from analyses.pipeline.tasks import RunContext
from analyses.pipeline.timings import PipelineReport
from analyses.report.markup import Document
from analyses.studies.gradcheck import ALL_N, GradcheckOptions, GradcheckStudy, GradcheckSummary
from analyses.studies.gradcheck import finite as fd
from analyses.studies.gradcheck import section as report
from analyses.studies.gradcheck.errormodel import fit_truncation
from analyses.studies.gradcheck.figures import plot_sample
from analyses.studies.gradcheck.runs import FdCurveRun, ModelRef
from analyses.studies.gradcheck.summary import sample_result
from fmlp import checkpoint
from fmlp.data import DataNotFoundError
from fmlp.types import ActivationName
from tests.analyses.local import run_local
from tests.analyses.search_doubles import ChosenSummary, FakeSearch

HIDDEN = (32, 32)
TWELVE = [1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000]
DATA = DataSpec("synthetic", 600, 100)
RUNS = 11  # the choice; per sample (two) L''' and per dtype (two) the curve and the noise


# ------------------------------------------------------- a stand-in for the search


def config(activation: ActivationName) -> MlpConfig:
    return MlpConfig(hidden=HIDDEN, activation=activation, epochs=1, batch_size=32, lr=0.1)


def run_study(
    out: Path, activation: ActivationName, options: GradcheckOptions | None = None
) -> PipelineReport:
    studies: list[Study[Any]] = [
        FakeSearch(DATA, config(activation)),
        GradcheckStudy(DATA, options or GradcheckOptions.quick()),
    ]
    report = run_local(out, studies)
    assert report.errors == {}
    return report


def summary_of(report: PipelineReport) -> GradcheckSummary:
    s = report.summaries["gradcheck"]
    assert isinstance(s, GradcheckSummary)
    return s


@attrs.frozen
class Ran:
    out: Path
    report: PipelineReport
    summary: GradcheckSummary

    def params(self) -> fmlp.MLP:
        return checkpoint.load(self.out / self.summary.model.params_file)

    def sample(self) -> tuple[fmlp.types.FloatArray, fmlp.types.IntArray]:
        d = load_data(DATA, "float32")
        k = self.summary.first.sample.index
        return d.x_train[k : k + 1].astype(np.float64), d.y_train[k : k + 1]


@pytest.fixture(scope="module")
def tanh_run(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    out = tmp_path_factory.mktemp("gc_tanh")
    report = run_study(out, "tanh")
    return Ran(out, report, summary_of(report))


@pytest.fixture(scope="module")
def relu_run(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    out = tmp_path_factory.mktemp("gc_relu")
    report = run_study(out, "relu")
    return Ran(out, report, summary_of(report))


def curve(s: GradcheckSummary, dtype: str) -> fd.FdCurve:
    c = s.first.curve(dtype)
    assert c is not None
    return c


# ------------------------------------------------------------------ the pipeline


def test_the_twelve_n() -> None:
    assert list(ALL_N) == TWELVE
    assert GradcheckOptions.full().ns == GradcheckOptions.quick().ns == ALL_N


def test_results_and_figures_are_written(tanh_run: Ran) -> None:
    folder = tanh_run.out / "gradcheck"
    s = tanh_run.summary
    assert sorted(s.figures) == ["gradcheck.svg", "gradcheck_worst.svg"]
    for name in s.figures:
        assert b"<svg" in (folder / name).read_bytes()[:1000]
    assert s.first.sample.index != s.second.sample.index
    runs = sorted((folder / "runs").glob("*.json"))
    # the choice, then per sample L''' and per dtype the curve and the noise
    assert len(runs) == RUNS
    kinds = sorted(json.loads(p.read_text())["task"]["kind"] for p in runs)
    assert kinds == ["fd"] * 4 + ["loss_noise"] * 4 + ["samples"] + ["third_derivative"] * 2
    for p in runs:
        task = json.loads(p.read_text())["task"]
        assert task["model"]["params_sha256"] == s.model.params_sha256
        assert task["data"] == to_json(DATA)
    on_disk = GradcheckSummary.from_json(json.loads((folder / "summary.json").read_text()))
    assert canonical_json(on_disk.to_json()) == canonical_json(s.to_json())
    timing = tanh_run.report.timings["gradcheck"]
    assert (timing.computed, timing.reused) == (RUNS, 0)


def test_a_second_run_reuses_everything(tanh_run: Ran) -> None:
    again = run_study(tanh_run.out, "tanh")
    timing = again.timings["gradcheck"]
    assert (timing.computed, timing.reused) == (0, RUNS)
    assert canonical_json(summary_of(again).to_json()) == canonical_json(tanh_run.summary.to_json())


def test_a_lost_run_is_the_only_one_computed_again(tmp_path: Path) -> None:
    options = attrs.evolve(GradcheckOptions.quick(), ns=(1, 10, 100, 1000))
    first = summary_of(run_study(tmp_path, "relu", options))
    model = ModelRef(first.model.params_file, first.model.params_sha256)
    task = FdCurveRun(DATA, model, 1, 10, first.first.sample.index, "float32", options.ns)
    path = ResultStore(tmp_path).run_path(task)
    assert path.exists()
    path.unlink()
    runs = len(list((tmp_path / "gradcheck" / "runs").glob("*.json")))
    again = run_study(tmp_path, "relu", options)
    assert (again.timings["gradcheck"].computed, again.timings["gradcheck"].reused) == (1, runs)
    assert canonical_json(summary_of(again).to_json()) == canonical_json(first.to_json())


def test_summary_round_trips_through_json(tanh_run: Ran) -> None:
    s = tanh_run.summary
    text = json.dumps(s.to_json(), allow_nan=True)
    back = GradcheckSummary.from_json(json.loads(text))
    assert canonical_json(back.to_json()) == canonical_json(s.to_json())
    assert back.first.curve("float32") == s.first.curve("float32")


def test_no_absolute_path_and_no_wall_time(tanh_run: Ran) -> None:
    text = (tanh_run.out / "gradcheck" / "summary.json").read_text()
    assert str(tanh_run.out) not in text and "/tmp" not in text
    assert "wall" not in text and "seconds" not in text
    assert tanh_run.summary.model.params_file == "fake_search/chosen_params.npz"


def test_the_report_section_renders(tanh_run: Ran) -> None:
    doc = Document(tanh_run.out)
    report.section(doc, tanh_run.summary, tanh_run.out / "gradcheck")
    text = doc.source()
    assert "The assignment's sample" in text and "#heading(level: 4" in text
    assert "The sample of largest loss" in text and "<eq-fd>" in text
    assert str(tanh_run.out) not in text
    assert 'image("gradcheck/gradcheck.svg"' in text
    rows = report.headline(tanh_run.summary)
    assert len(rows) == 3 and rows[0][0] == "finite differences, smallest max error"
    assert "(float64)" in rows[0][2]
    assert [r[0] for r in rows[1:]] == [
        "finite differences, largest-loss sample, float64",
        "finite differences, largest-loss sample, float32",
    ]
    # the same results give the same source
    doc2 = Document(tanh_run.out)
    report.section(doc2, tanh_run.summary, tanh_run.out / "gradcheck")
    assert doc2.source() == text


def test_without_the_search_the_pipeline_is_refused(tmp_path: Path) -> None:
    from analyses.studies.search import SearchStudy

    study = GradcheckStudy(DATA)
    with pytest.raises(MissingArtifact, match=r"search\.chosen_mlp"):
        check_order([study], [study, SearchStudy(DATA)], ResultStore(tmp_path))
    with make_executor("local") as ex, pytest.raises(MissingArtifact, match=r"search\.chosen_mlp"):
        run_pipeline(
            [study], store=ResultStore(tmp_path), executor=ex, ctx=RunContext(str(tmp_path))
        )
    assert not (tmp_path / "gradcheck").exists()


def test_a_model_file_with_other_parameters_is_refused(tmp_path: Path) -> None:
    params = fmlp.init((784, 4, 10), seed=0)
    checkpoint.save(tmp_path / "m.npz", params)
    with pytest.raises(ValueError, match="sha256"):
        ModelRef("m.npz", "0" * 16).load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.npz"):
        ModelRef("nope.npz", params_digest(params)).load(tmp_path)
    loaded = ModelRef("m.npz", params_digest(params)).load(tmp_path)
    assert loaded.dtype == np.float64


# ------------------------------------------------------------------------- the V


def test_error_falls_as_n_grows_on_tanh(tanh_run: Ran) -> None:
    """Truncation dominates from N = 1 to 1000 in float64: the error falls, by about
    (N ratio)^2 per step once eps is small."""
    c = curve(tanh_run.summary, "float64")
    err = dict(zip(c.ns, c.max_abs_diff, strict=True))
    falling = [err[n] for n in (1, 10, 100, 1000)]
    assert all(a > b for a, b in itertools.pairwise(falling)), falling
    assert err[1000] < 1e-4 * err[1]
    assert 50 < err[100] / err[1000] < 200  # second order: a factor 10^2 per decade
    assert not any(c.any_kink)  # tanh has no kinks


def test_float32_round_off_floor_gives_a_v(tanh_run: Ran) -> None:
    s = tanh_run.summary
    e32 = np.asarray(curve(s, "float32").max_abs_diff)
    e64 = np.asarray(curve(s, "float64").max_abs_diff)
    best = int(np.argmin(e32))
    assert 0 < best < len(TWELVE) - 1  # the bottom of the V is inside the range
    assert e32[-1] > 100 * e32[best]  # round-off takes over at large N
    assert e32[-1] > 1e3 * e64[-1]  # and float32's floor is far above float64's
    m32, m64 = s.first.error_model("float32"), s.first.error_model("float64")
    assert m32 is not None and m64 is not None
    assert m32.crossing_N is not None and m64.crossing_N is not None
    assert m32.crossing_N < m64.crossing_N  # the floor moves left
    assert m32.machine_eps == float(np.finfo(np.float32).eps)


def test_error_model_predicts_truncation(tanh_run: Ran) -> None:
    """For small eps, FD_i - g_i = eps^2 L'''_i / 6: the stencil's C_t gives the curve."""
    first = tanh_run.summary.first
    c = curve(tanh_run.summary, "float64")
    stencil = first.truncation.stencil
    assert stencil == pytest.approx(max(abs(v) for v in first.third.values) / 6)
    for n in (100, 500, 1000):
        measured = c.max_abs_diff[c.ns.index(n)]
        assert 0.5 < measured / (stencil / n**2) < 2, n
    assert first.truncation.fit is not None and 0.5 < first.truncation.fit / stencil < 2
    assert first.truncation.coef == first.truncation.fit and first.truncation.source == "fit"
    for m in first.error_models:
        assert m.loss_noise_source == "measured", m.dtype
        assert m.saturation == max(abs(g) for g in c.gradient)
        assert max(m.model) <= m.saturation
    m32 = first.error_model("float32")
    assert m32 is not None
    assert m32.loss_noise > 0 and m32.roundoff_coef == pytest.approx(math.sqrt(2) * m32.loss_noise)
    # the round-off model describes float32's right arm within an order of magnitude
    e = curve(tanh_run.summary, "float32").max_abs_diff[-1]
    assert 0.1 < e / (m32.roundoff_coef * TWELVE[-1]) < 10


def test_fit_truncation(tanh_run: Ran) -> None:
    c = attrs.evolve(
        curve(tanh_run.summary, "float64"),
        ns=(1, 10, 100, 1000),
        max_abs_diff=(5.0, 0.02, 2e-4, 1e-3),
        any_kink=(True, False, False, False),
    )
    # N = 1 crosses a kink and N = 1000 is round-off: the fit uses N = 10 and 100
    assert fit_truncation(c, roundoff_coef=1.5e-7) == pytest.approx(2.0)
    assert fit_truncation(c, roundoff_coef=1.0) is None


# --------------------------------------------------------------------- shapes


def test_result_shapes(tanh_run: Ran) -> None:
    s = tanh_run.summary
    st = s.settings
    assert st.p == 10 and st.layer == 1 and list(st.ns) == TWELVE
    assert st.m == 32 * 32 and "row-major" in st.theta and "layers[1].w" in st.theta
    assert st.theta_index == tuple((0, j) for j in range(10))
    assert st.dataset == DATA.label and st.dataset_sizes == SplitSizes(600, 100, 100)
    assert s.model.config.activation == "tanh" and s.model.n_params == config("tanh").n_params
    assert s.first.sample.index == 0  # tanh: no dead units, sample 0 qualifies
    assert len(s.first.sample.gradient) == 10
    for dtype in ("float64", "float32"):
        c = curve(s, dtype)
        for field in ("max_abs_diff", "relative_error", "max_elementwise_relative_error", "eps"):
            assert len(getattr(c, field)) == 12, (dtype, field)
        for field in ("fd", "abs_diff", "kink", "kink_units"):
            rows = getattr(c, field)
            assert len(rows) == 12 and all(len(r) == 10 for r in rows), (dtype, field)
        assert c.eps == tuple(1 / n for n in TWELVE)
        gmax = max(abs(g) for g in c.gradient)
        assert c.relative_error == pytest.approx([e / gmax for e in c.max_abs_diff], rel=1e-12)


def test_fd_matches_the_backward_gradient(tanh_run: Ran) -> None:
    """The recorded gradient is fmlp.grad's, and an independent central difference
    (mutating a private copy) agrees with the recorded one."""
    params = fd.as_dtype(tanh_run.params(), "float64")
    x, y = tanh_run.sample()
    g = fmlp.grad(params, x, y)[1].layers[1].w
    assert tanh_run.summary.first.sample.gradient == tuple(g.ravel()[:10].tolist())
    eps, i = 1e-3, 3

    def moved(step: float) -> fmlp.MLP:
        w = params.layers[1].w.copy()
        w.flat[i] += step
        layers = (params.layers[0], fmlp.Dense(w=w, b=params.layers[1].b), params.layers[2])
        return fmlp.MLP(layers=layers, activation="tanh")

    value = (fmlp.loss(moved(eps), x, y) - fmlp.loss(moved(-eps), x, y)) / (2 * eps)
    c = curve(tanh_run.summary, "float64")
    assert c.fd[TWELVE.index(1000)][i] == pytest.approx(value, rel=1e-9, abs=1e-15)


def test_p_is_min_10_m() -> None:
    params = fmlp.init((784, 2, 3, 10), activation="tanh", seed=0, dtype=np.float64)
    p, cells = fd.theta_layout(params, 1, 10)
    assert p == 6 and cells == ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2))
    x = load_data(DATA, "float32").x_train[:1].astype(np.float64)
    y = load_data(DATA, "float32").y_train[:1]
    c = fd.fd_curve(params, x, y, layer=1, p=10, ns=(10, 100), dtype="float64")
    assert len(c.gradient) == 6 and all(len(r) == 6 for r in c.fd)


def test_perturbation_does_not_mutate() -> None:
    params = fmlp.init((784, 32, 32, 10), activation="relu", seed=0, dtype=np.float64)
    before = fmlp.tree_map(np.copy, params)
    e = fd.unit_direction(params, 1, 4)
    moved = fd.shifted(params, e, 0.5)
    assert fmlp.tree_allclose(params, before, rtol=0)
    diff = moved.layers[1].w - params.layers[1].w
    assert diff.ravel()[4] == 0.5 and np.count_nonzero(diff) == 1
    leaves, original = fmlp.tree_leaves(moved), fmlp.tree_leaves(params)
    assert all(np.array_equal(leaves[k], original[k]) for k in (0, 1, 3, 4, 5))
    d = load_data(DATA, "float32")
    x, y = d.x_train[:1].astype(np.float64), d.y_train[:1]
    fd.fd_curve(params, x, y, layer=1, p=10, ns=(1, 1000), dtype="float32")
    assert fmlp.tree_allclose(params, before, rtol=0)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"p": 0}, "p must be"),
        ({"ns": (10, 0)}, "ns must be"),
        ({"ns": (100, 10)}, "increasing"),
        ({"dtypes": ("float16",)}, "dtype"),
        ({"dtypes": ()}, "dtypes"),
        ({"layer": -1}, "layer"),
        ({"noise_points": 3}, "noise_points"),
    ],
)
def test_options_validate(changes: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        attrs.evolve(GradcheckOptions(), **changes)


def test_bad_sample_and_layer() -> None:
    params = fmlp.init((784, 4, 10), seed=0, dtype=np.float64)
    d = load_data(DATA, "float32")
    with pytest.raises(ValueError, match="out of range"):
        fd.row(d.x_train, d.y_train, 10_000)
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        fd.theta_layout(params, 3, 10)


# ------------------------------------------------------------------------ kinks


OFFSETS = (0.3, -0.3, 0.03, -0.03, 3e-3, -3e-3, 3e-5, -3e-5, 3.0, -3.0)  # none at a boundary 1/N


def test_kinks_are_detected(relu_run: Ran) -> None:
    """A model whose second-layer pre-activations sit at z_c = t_c a_r for the chosen
    sample (a_r: theta's input activation): perturbing w[r, c] by eps crosses the kink
    exactly when |t_c| < eps. Every recorded (N, i) flag must say so, and the kinks
    explain the outliers: without them the differences are accurate."""
    trained = fd.as_dtype(relu_run.params(), "float64")
    x, y = relu_run.sample()
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
    curves = {
        dt: fd.fd_curve(params, x, y, layer=1, p=10, ns=TWELVE, dtype=dt)
        for dt in ("float64", "float32")
    }
    c64 = curves["float64"]
    for j, n in enumerate(TWELVE):
        expected = tuple(abs(t) < 1 / n for t in OFFSETS)
        assert c64.kink[j] == expected, n
        # float32 rounds z = t a_r by about 1e-7 of the layer's sums: where |t| and eps
        # differ by less than 1e-3 the flag is float32's rounding, not the model's
        clear = [abs(abs(t) - 1 / n) > 1e-3 for t in OFFSETS]
        got32 = curves["float32"].kink[j]
        assert [g for g, c in zip(got32, clear, strict=True) if c] == [
            e for e, c in zip(expected, clear, strict=True) if c
        ], n
    assert c64.n_kinks == tuple(sum(abs(t) < 1 / n for t in OFFSETS) for n in TWELVE)
    assert c64.any_kink[TWELVE.index(5000)] and not c64.any_kink[TWELVE.index(50000)]
    for j, n in enumerate(TWELVE):
        without = c64.max_abs_diff_without_kinks[j]
        if 50 <= n <= 10000:
            assert without is not None and without < 1e-6, n
            if c64.any_kink[j]:
                assert c64.max_abs_diff[j] > 100 * without, n  # the kink is the outlier


# ------------------------------------------------------------- sample choice


def test_the_first_sample_skips_samples_where_theta_is_dead(relu_run: Ran) -> None:
    s = relu_run.summary.first.sample
    params = fd.as_dtype(relu_run.params(), "float64")
    d = load_data(DATA, "float32")
    k = s.index
    assert k > 0 and s.skipped == k and s.rule == fd.FIRST_RULE
    for index in (0, k - 1):
        assert not fd.live(params, d.x_train, d.y_train, index, 1, 10)
    assert fd.live(params, d.x_train, d.y_train, k, 1, 10)
    assert any(g != 0 for g in s.gradient) and s.label == int(d.y_train[k])
    assert s.input_activation[0] > 0


def test_a_dead_theta_gives_exact_zeros_and_a_figure(relu_run: Ran, tmp_path: Path) -> None:
    """Sample 0 of the ReLU model: theta's input unit is inactive, so every gradient and
    every difference is exactly 0; the error model and the figure still work."""
    params = fd.as_dtype(relu_run.params(), "float64")
    d = load_data(DATA, "float32")
    x, y = fd.row(d.x_train, d.y_train, 0)
    options = GradcheckOptions.quick()
    curves = {
        dt: fd.fd_curve(params, x, y, layer=1, p=10, ns=TWELVE, dtype=dt) for dt in options.dtypes
    }
    noises = {
        dt: fd.loss_noise(
            params, x, y, layer=1, p=10, dtype=dt, width=1e-3, width_max=0.25, points=33
        )
        for dt in options.dtypes
    }
    third = fd.third_derivatives(params, x, y, layer=1, p=10, h=1e-2)
    for c in curves.values():
        assert c.max_abs_diff == (0.0,) * 12 and c.gradient == (0.0,) * 10 and c.all_zero
        assert c.relative_error == (None,) * 12
    assert all(n.source == "resolution" for n in noises.values())
    sample = fd.describe_sample(params, d.x_train, d.y_train, 0, 1, 10, rule="given", skipped=0)
    theta = relu_run.summary.settings.theta_value
    result = sample_result(sample, options, third, curves, noises, theta)
    settings = relu_run.summary.settings
    written = plot_sample(settings, result, tmp_path, "dead")
    assert written == ["dead.svg"]
    assert (tmp_path / "dead.svg").stat().st_size > 5000
    back = from_json(type(result), json.loads(json.dumps(to_json(result))))
    assert canonical_json(back) == canonical_json(result)


# ------------------------------------------------------- the sample of largest loss


def test_loss_order_breaks_ties_by_the_lowest_index() -> None:
    losses = np.asarray([1.0, 3.0, 2.0, 3.0, math.nan, 3.0])
    assert fd.loss_order(losses).tolist() == [1, 3, 5, 2, 0, 4]


def test_the_worst_rule_picks_the_largest_loss_on_a_constructed_case() -> None:
    """Every sample gets the label its model finds most likely, except sample 7, which
    gets the least likely: the largest loss. The rule finds it whatever the chunk size,
    and the same way every time."""
    params = fmlp.init(
        (784, 8, 12, 10), scheme="normal", activation="tanh", seed=3, dtype=np.float64
    )
    x = np.random.default_rng(0).random((50, 784)).astype(np.float32)
    z = fmlp.logits(params, x.astype(np.float64))
    y = np.argmax(z, axis=1).astype(np.int64)
    y[7] = int(np.argmin(z[7]))
    brute = [fmlp.loss(params, x[k : k + 1].astype(np.float64), y[k : k + 1]) for k in range(50)]
    assert int(np.argmax(brute)) == 7
    for chunk in (1, 7, 1000):
        losses = fd.sample_losses(params, x, y, chunk=chunk)
        np.testing.assert_allclose(losses, brute, rtol=1e-12)
        index, skipped, top, top_loss = fd.worst_live_sample(params, x, y, 1, 10, 50, chunk=chunk)
        assert (index, skipped, top) == (7, 0, 7)
        assert top_loss == pytest.approx(brute[7], rel=1e-12)
    assert fd.worst_live_sample(params, x, y, 1, 10, 50) == fd.worst_live_sample(
        params, x, y, 1, 10, 50
    )


def test_the_worst_rule_passes_over_dead_samples(relu_run: Ran) -> None:
    """On the ReLU model: the second sample is the first live one in loss order, every
    sample of larger loss gives dL/dtheta = 0 exactly, and the summary says so."""
    s = relu_run.summary
    params = fd.as_dtype(relu_run.params(), "float64")
    d = load_data(DATA, "float32")
    order = fd.loss_order(fd.sample_losses(params, d.x_train, d.y_train)).tolist()
    second = s.second.sample
    assert second.rule == fd.WORST_RULE
    rank = order.index(second.index)
    assert second.skipped == rank and s.max_loss_index == order[0]
    for k in order[:rank]:
        assert not fd.live(params, d.x_train, d.y_train, k, 1, 10)
    assert fd.live(params, d.x_train, d.y_train, second.index, 1, 10)
    assert second.loss == pytest.approx(
        fd.sample_losses(params, d.x_train, d.y_train)[second.index], rel=1e-12
    )
    assert s.max_loss >= second.loss


def test_the_second_sample_resolves_in_float32(tanh_run: Ran, relu_run: Ran) -> None:
    for ran in (tanh_run, relu_run):
        s = ran.summary
        c32 = s.second.curve("float32")
        o32 = s.second.optimum("float32")
        assert c32 is not None and o32 is not None
        assert not c32.all_zero and o32.nonzero_N >= len(TWELVE) // 2
        assert s.second.sample.loss >= s.first.sample.loss


def textbook(h: float, third: float, u: float, loss: float) -> float:
    """The textbook's error bound of a central difference: truncation plus round-off."""
    return third * h**2 / 6 + u * loss / h


def test_the_optimum_against_the_textbook(tanh_run: Ran) -> None:
    second = tanh_run.summary.second
    theta = tanh_run.summary.settings.theta_value
    for dtype in ("float64", "float32"):
        o = second.optimum(dtype)
        c = second.curve(dtype)
        assert o is not None and c is not None
        u = float(np.finfo(np.dtype(dtype)).eps)
        assert o.machine_eps == u and o.loss == abs(c.loss)
        assert o.theta_scale == max(1.0, *(abs(t) for t in theta))
        assert o.rule_h == pytest.approx(u ** (1 / 3) * o.theta_scale)
        assert o.rule_N == pytest.approx(1 / o.rule_h)
        l3 = max(
            abs(v) for v, k in zip(second.third.values, second.third.kink, strict=True) if not k
        )
        assert o.third == l3
        assert o.rule_floor == pytest.approx(u ** (2 / 3) * o.loss ** (2 / 3) * l3 ** (1 / 3))
        assert o.tuned_h == pytest.approx((3 * u * o.loss / l3) ** (1 / 3))
        assert o.tuned_floor == pytest.approx((9 / 8) ** (1 / 3) * o.rule_floor)

        # the tuned step minimizes the textbook's error |L'''| h^2 / 6 + u |L| / h
        assert o.tuned_h is not None and o.tuned_floor is not None
        at = [textbook(h, l3, u, o.loss) for h in (o.tuned_h, 1.1 * o.tuned_h, o.tuned_h / 1.1)]
        assert at[0] == pytest.approx(o.tuned_floor) and at[0] < min(at[1:])
        best = c.minimum()
        assert best is not None and (o.measured_error, o.measured_N) == best
        assert o.measured_error == min(c.max_abs_diff)
    o32, o64 = second.optimum("float32"), second.optimum("float64")
    assert o32 is not None and o64 is not None
    assert o32.measured_N is not None and o64.measured_N is not None
    assert o32.measured_N < o64.measured_N  # round-off sets in earlier in float32


@pytest.fixture(scope="module")
def quick_mnist() -> DataSpec:
    from analyses.datasets import quick_data

    spec = quick_data("mnist")
    try:
        load_data(spec, "float32")
    except DataNotFoundError as exc:
        pytest.skip(f"real MNIST not cached: {exc}")
    return spec


@pytest.mark.real_data
def test_the_second_sample_resolves_in_float32_on_quick_mnist(
    quick_mnist: DataSpec, tmp_path: Path
) -> None:
    """The assignment's MLP, 784-512-512-10, one epoch on the quick MNIST: the float32
    curve of the sample of largest loss is not all zeros, and the study writes its
    results and figures."""
    studies: list[Study[Any]] = [
        FakeSearch(quick_mnist, MlpConfig(hidden=(512, 512), epochs=1)),
        GradcheckStudy(quick_mnist, GradcheckOptions.quick()),
    ]
    out = run_local(tmp_path, studies)
    assert out.errors == {}
    s = summary_of(out)
    c32 = s.second.curve("float32")
    assert c32 is not None and not c32.all_zero
    assert any(d < abs(max(c32.gradient, key=abs)) for d in c32.max_abs_diff)
    assert s.second.sample.loss > 1.0
    for name in ("gradcheck.svg", "gradcheck_worst.svg", "summary.json"):
        assert (tmp_path / "gradcheck" / name).stat().st_size > 0


# ------------------------------------------------------------ a dead theta


def _with_dead_units(params: fmlp.MLP, units: slice) -> fmlp.MLP:
    """``params`` with hidden units ``units`` of the first layer switched off for every
    input (zero weights, bias -1: ReLU gives 0), so the rows of the second layer's
    weight matrix they feed never reach the loss."""
    w, b = params.layers[0].w.copy(), params.layers[0].b.copy()
    w[:, units], b[units] = 0.0, -1.0
    first = fmlp.Dense(w=w, b=b)
    return fmlp.MLP(layers=(first, *params.layers[1:]), activation=params.activation)


def _study_on(relu_run: Ran, out: Path, params: fmlp.MLP) -> PipelineReport:
    """The finite-difference study of ``params``, handed over as the chosen model by a
    stored stand-in summary."""
    params_file = "fake_search/chosen_params.npz"
    checkpoint.save(out / params_file, params)
    chosen = relu_run.report.summaries["fake_search"]
    assert isinstance(chosen, ChosenSummary)
    mine = attrs.evolve(chosen.chosen, params_file=params_file, params_sha256=params_digest(params))
    store = ResultStore(out)
    store.write_summary("fake_search", ChosenSummary(mine))
    study = GradcheckStudy(DATA, GradcheckOptions.quick())
    with make_executor("local") as ex:
        return run_pipeline(
            [study],
            store=store,
            executor=ex,
            ctx=RunContext(str(out)),
            available=[FakeSearch(DATA, config("relu")), study],
        )


def test_a_dead_theta_is_said_and_the_layers_first_live_elements_are_checked(
    relu_run: Ran, tmp_path: Path
) -> None:
    params = _with_dead_units(relu_run.params(), slice(0, 1))  # row 0: theta's 10 elements
    report = _study_on(relu_run, tmp_path, params)
    assert report.errors == {}
    s = summary_of(report)
    settings = s.settings
    assert settings.dead is not None and "exactly 0" in settings.dead
    cols = HIDDEN[1]
    assert settings.elements is not None and len(settings.elements) == 10
    assert all(i >= cols for i in settings.elements), "row 0 is dead: none of its elements"
    assert list(settings.elements) == sorted(settings.elements)
    assert "whose gradient is not zero" in settings.theta
    assert settings.theta_index == tuple((i // cols, i % cols) for i in settings.elements)
    flat = params.layers[1].w.ravel()
    assert settings.theta_value == tuple(float(flat[i]) for i in settings.elements)
    # the chosen elements are the first live ones: every skipped element has a zero
    # gradient on every sample looked at
    d = load_data(DATA, "float32")
    p64 = fd.as_dtype(params, "float64")
    assert settings.elements == fd.live_elements(p64, d.x_train, d.y_train, 1, 10, 10_000)
    g = fmlp.grad(p64, d.x_train.astype(np.float64), d.y_train)[1].layers[1].w.ravel()
    assert np.all(g[: settings.elements[0]] == 0) and g[settings.elements[0]] != 0
    # and the check itself works on them: differences converge to the gradient
    head = s.first.curve("float64")
    assert head is not None and not head.all_zero
    assert any(v != 0 for v in s.first.sample.gradient)
    assert min(head.max_abs_diff) < 1e-6


def test_a_layer_dead_on_every_sample_fails_with_the_reason(relu_run: Ran, tmp_path: Path) -> None:
    params = _with_dead_units(relu_run.params(), slice(None))
    report = _study_on(relu_run, tmp_path, params)
    assert "the whole layer is dead" in report.errors["gradcheck"]


def test_theta_elements_are_checked() -> None:
    params = fmlp.init((4, 3, 2), scheme="glorot", activation="relu", seed=0)
    assert fd.theta_elements(params, 1, 10) == tuple(range(6))
    assert fd.theta_elements(params, 1, 2, (5, 1)) == (5, 1)
    assert fd.theta_layout(params, 1, 2, (5, 1)) == (2, ((2, 1), (0, 1)))
    with pytest.raises(ValueError, match=r"must lie in 0\.\.5"):
        fd.theta_elements(params, 1, 2, (6,))
    with pytest.raises(ValueError, match="distinct"):
        fd.theta_elements(params, 1, 2, (1, 1))
