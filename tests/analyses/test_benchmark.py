"""The benchmark (analyses/benchmark/): its FLOP count, its reference loops against
fmlp, its OpenBLAS child settings, and a ``--quick`` smoke run of the whole command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp
from analyses.benchmark import (
    cli,
    environment,
    flops,
    jax_loop,
    memory,
    numpy_loops,
    spec,
    torch_loop,
    training,
)
from analyses.benchmark.setting import BenchmarkSummary
from analyses.datasets import synthetic_data
from analyses.pipeline.records import canonical_json, from_json
from fmlp.train import epoch_order
from fmlp.tree import tree_leaves

SMALL = (20, 16, 12, 10)


def small_data(
    n: int, dtype: Any, seed: int = 0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, SMALL[0])).astype(dtype)
    y = rng.integers(0, SMALL[-1], n)
    return x, y


def leaves_equal(a: fmlp.MLP, b: fmlp.MLP) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(tree_leaves(a), tree_leaves(b), strict=True))


# ------------------------------------------------------------------------ FLOPs


def test_step_has_the_eight_products_of_a_three_layer_step() -> None:
    gemms = flops.step_gemms(spec.SIZES, 128)
    assert len(gemms) == 8
    assert [g.name for g in gemms] == [
        "a0@W1",
        "a1@W2",
        "a2@W3",
        "a0^T@dz1",
        "a1^T@dz2",
        "a2^T@dz3",
        "dz2@W2^T",
        "dz3@W3^T",
    ]
    per_layer = 784 * 512 + 512 * 512 + 512 * 10
    assert flops.step_flops(spec.SIZES, 128) == 2 * 128 * (2 * per_layer + 512 * 512 + 512 * 10)


def test_epoch_flops_count_the_last_partial_batch() -> None:
    assert flops.batch_sizes_of_epoch(300, 128) == [128, 128, 44]
    step = flops.step_flops
    assert flops.epoch_flops(SMALL, 300, 128) == 2 * step(SMALL, 128) + step(SMALL, 44)
    assert flops.epoch_flops(SMALL, 256, 128) == 2 * flops.step_flops(SMALL, 128)


def test_describe_and_ratios() -> None:
    d = training.describe([1.0, 2.0, 4.0])
    assert d["median"] == 2.0 and d["min"] == 1.0 and d["max"] == 4.0
    assert d["spread"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="at least one"):
        training.describe([])

    def run(seconds: tuple[float, ...], median: float, cpu_median: float) -> training.FrameworkRun:
        e = training.Epochs(
            seconds=seconds,
            warmup_seconds=(),
            median=median,
            min=min(seconds),
            max=max(seconds),
            iqr=0.0,
            spread=0.0,
            cpu_seconds=(cpu_median,),
            cpu_median=cpu_median,
            gflops=1.0,
            compile_seconds=None,
            param_max_abs_diff=None,
        )
        return training.FrameworkRun(e)

    fw = {
        "fmlp": run((1.0, 2.0), 1.5, 1.0),
        "torch": run((2.0, 2.0), 2.0, 4.0),
        "jax": training.FrameworkRun(None, note="jax is not installed"),
    }
    r = training.ratios(fw)
    assert r["fmlp/torch"] == training.Ratio(
        of_medians=0.75, paired_median=0.75, of_mins=0.5, cpu_of_medians=0.25
    )
    assert r["fmlp/jax"] is None and r["fmlp/reference"] is None
    assert fw["jax"].skipped and not fw["fmlp"].skipped


# ------------------------------------------------------------ reference loops


@pytest.mark.parametrize(("dtype", "atol"), [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_reference_loop_matches_fmlp_fit(dtype: Any, atol: float) -> None:
    """Two independent implementations, two epochs with a partial last batch."""
    x, y = small_data(300, dtype)
    p0 = fmlp.init(SMALL, seed=5, dtype=dtype)
    state, _ = fmlp.fit(
        p0, x, y, epochs=2, batch_size=128, lr=spec.LR, seed=spec.SEED, eval_train=False
    )
    ref = numpy_loops.ReferenceLoop(p0, x, y, 128)
    for epoch in range(2):
        ref.epoch(epoch_order(300, spec.SEED, epoch))
    assert training.max_abs_diff(ref.params(), state.params) < atol
    assert training.max_abs_diff(ref.params(), p0) > 100 * atol  # it did train
    assert leaves_equal(p0, fmlp.init(SMALL, seed=5, dtype=dtype))  # and copied the weights


def test_reference_loop_refuses_other_activations() -> None:
    with pytest.raises(ValueError, match="ReLU"):
        numpy_loops.ReferenceLoop(
            fmlp.init(SMALL, seed=0, activation="tanh"), *small_data(16, np.float64), 16
        )


def test_torch_loop_matches_fmlp_in_float64() -> None:
    pytest.importorskip("torch")
    x, y = small_data(300, np.float64)
    p0 = fmlp.init(SMALL, seed=6, dtype=np.float64)
    state, _ = fmlp.fit(
        p0, x, y, epochs=1, batch_size=128, lr=spec.LR, seed=spec.SEED, eval_train=False
    )
    with environment.torch_threads_as(1):
        loop = torch_loop.TorchLoop(p0, x, y, 128)
        loop.epoch(epoch_order(300, spec.SEED, 0))
    assert training.max_abs_diff(loop.params(), state.params) < 1e-12


def test_jax_loop_matches_fmlp_in_float64() -> None:
    jax = jax_loop.import_jax()
    if jax is None:
        pytest.skip("jax is not installed (the optional bench extra)")
    x, y = small_data(300, np.float64)
    p0 = fmlp.init(SMALL, seed=7, dtype=np.float64)
    state, _ = fmlp.fit(
        p0, x, y, epochs=1, batch_size=128, lr=spec.LR, seed=spec.SEED, eval_train=False
    )
    x64 = jax.config.read("jax_enable_x64")
    try:
        loop = jax_loop.JaxLoop(jax, p0, x, y, 128)
        assert loop.compile_seconds > 0
        loop.epoch(epoch_order(300, spec.SEED, 0))
    finally:
        jax.config.update("jax_enable_x64", x64)
    assert training.max_abs_diff(loop.params(), state.params) < 1e-12


def test_train_cell_interleaves_and_agrees() -> None:
    d = synthetic_data(200, 10, dtype=np.float64)
    out = training.train_cell(
        d.x_train,
        d.y_train,
        64,
        frameworks=("fmlp", "reference"),
        epochs=2,
        warmup=1,
        jax=None,
    )
    epochs = {name: out[name].epochs for name in ("fmlp", "reference")}
    for rec in epochs.values():
        assert rec is not None
        assert len(rec.seconds) == 2 and len(rec.warmup_seconds) == 1
        assert 0 < rec.min <= rec.median <= rec.max
        assert len(rec.cpu_seconds) == 2 and rec.cpu_median > 0
        assert rec.gflops > 0
    ref, own = epochs["reference"], epochs["fmlp"]
    assert ref is not None and ref.param_max_abs_diff is not None
    assert ref.param_max_abs_diff < 1e-12
    assert own is not None and own.param_max_abs_diff == 0.0


# ------------------------------------------------------------------- settings


def test_limited_threads_restores_what_it_changed() -> None:
    blas_before = environment.threads_of_blas()
    xla_before = os.environ.get("XLA_FLAGS")
    torch_before = environment.torch_threads()
    with environment.limited_threads(1) as notes:
        assert environment.threads_of_blas() == 1
        assert isinstance(notes, list)
        if torch_before is not None:
            assert environment.torch_threads() == 1
    assert environment.threads_of_blas() == blas_before
    assert os.environ.get("XLA_FLAGS") == xla_before
    assert environment.torch_threads() == torch_before
    with environment.limited_threads(None) as notes:
        assert notes == [] and environment.threads_of_blas() == blas_before


def test_child_env_unsets_or_sets_only_the_openblas_variables() -> None:
    env = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin"}
    before = dict(os.environ)
    native = environment.child_env("native", env)
    assert native == {"PATH": "/bin"}
    assert environment.child_env("coretype-SkylakeX", env) == {
        "PATH": "/bin",
        "OPENBLAS_CORETYPE": "SkylakeX",
    }
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and dict(os.environ) == before
    with pytest.raises(ValueError, match="kernel name"):
        environment.child_env("coretype-", env)
    with pytest.raises(ValueError, match="unknown child setting"):
        environment.child_env("fast", env)


def test_child_argv_drops_the_setting_options() -> None:
    argv = [
        "--quick",
        "--both",
        "--coretype",
        "Haswell",
        "--out",
        "x",
        "--native-blas",
        "--coretype=Zen",
    ]
    assert cli.child_argv(argv, "native") == ["--quick", "--out", "x", "--as-setting", "native"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-sizes", "0"], "--batch-sizes must be positive"),
        (["--epochs", "0"], "--epochs must be a positive"),
        (["--n-train", "-3"], "--n-train must be a positive"),
        (["--native-blas", "--both"], "exclude each other"),
        (["--threads", "0", "--no-rss"], "--threads must be a positive"),
    ],
)
def test_bad_options_say_what_is_wrong(argv: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=message):
        cli.main(["--quick", "--quiet", "--out", str(tmp_path), "--frameworks", "fmlp", *argv])


def test_real_data_yes_without_a_cache_names_the_fetch_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMLP_DATA", str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match=r"fmlp\.data fetch mnist"):
        cli.main(["--quick", "--out", str(tmp_path), "--real-data", "yes"])


def test_rss_child_reports_its_own_peak(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        memory.rss_child_main(
            ["--rss-child", "reference", "--epochs", "1", "--n-train", "100", "--threads", "1"]
        )
        == 0
    )
    report = from_json(
        memory.RssReport, json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    )
    rec = report.peak
    assert rec is not None and report.note is None
    assert rec.framework == "reference" and rec.n_train == 100
    assert 0 < rec.baseline_rss_mb <= rec.peak_rss_mb


# ------------------------------------------------------------------ smoke run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BenchmarkSummary]:
    out = tmp_path_factory.mktemp("bench")
    assert cli.main(["--quick", "--quiet", "--out", str(out), "--threads", "1"]) == 0
    summary = BenchmarkSummary.from_json(
        json.loads((out / "benchmark" / "summary.json").read_text())
    )
    return out, summary


def test_quick_run_writes_the_summary(quick_run: tuple[Path, BenchmarkSummary]) -> None:
    out, summary = quick_run
    rec = summary.settings["default"]
    assert cli.read_setting(out / "benchmark" / "default.json") == rec
    assert rec.config.quick and rec.threads.numpy_blas == 1
    assert set(rec.gemm.peak) == {"float32", "float64"}
    assert all(p.gflops_best > 0 for p in rec.gemm.peak.values())
    assert len(rec.gemm.shapes["float32"]["128"].products) == 8
    cells = {(t.dataset, t.dtype, t.batch) for t in rec.training}
    assert cells == {("synthetic", dt, b) for dt in spec.DTYPES for b in spec.BATCH_SIZES}
    assert len(list((out / "benchmark" / "runs").glob("*.json"))) == len(cells)
    jax_installed = jax_loop.import_jax() is not None
    for t in rec.training:
        assert t.epoch_flops == flops.epoch_flops(spec.SIZES, t.n_train, t.batch)
        tol = 1e-9 if t.dtype == "float64" else 1e-3
        for name in ("fmlp", "reference", "torch"):
            e = t.epochs(name)
            assert e is not None and e.median > 0 and t.peak_fraction[name] > 0
            assert e.param_max_abs_diff is not None and e.param_max_abs_diff < tol
        jax = t.frameworks["jax"]
        assert jax.skipped is (not jax_installed)
        if jax.epochs is not None:
            assert jax.epochs.compile_seconds is not None and jax.epochs.compile_seconds > 0
            assert jax.epochs.param_max_abs_diff is not None
            assert jax.epochs.param_max_abs_diff < tol
            ratio = t.ratios["fmlp/jax"]
            assert ratio is not None and ratio.of_medians > 0
        else:
            assert jax.note is not None and "not installed" in jax.note
        ref = t.ratios["fmlp/reference"]
        assert ref is not None and ref.of_medians > 0
    assert set(rec.evaluation.dtypes) >= {"float32", "float64"}
    assert rec.evaluation.dtypes["float32"].samples_per_second > 0
    child = rec.memory.children["fmlp"].peak
    assert child is not None and child.peak_rss_mb >= child.baseline_rss_mb > 0
    assert child.peak_rss_mb >= child.data_peak_rss_mb
    assert child.training_peak_rss_mb is None or child.training_peak_rss_mb <= child.peak_rss_mb
    assert len(rec.targets) == 6 and all(t.met in (True, False, None) for t in rec.targets)
    assert len(summary.table) == len(rec.training)


def test_the_summary_reads_back_as_written(quick_run: tuple[Path, BenchmarkSummary]) -> None:
    out, summary = quick_run
    text = (out / "benchmark" / "summary.json").read_text()
    assert json.loads(text)["schema"] == BenchmarkSummary.SCHEMA
    again = BenchmarkSummary.from_json(json.loads(json.dumps(summary.to_json())))
    assert canonical_json(again.to_json()) == canonical_json(json.loads(text))


def test_quick_run_resumes_without_measuring_again(
    quick_run: tuple[Path, BenchmarkSummary],
) -> None:
    out, first = quick_run
    args = ["--quick", "--quiet", "--out", str(out), "--threads", "1", "--no-rss"]
    assert cli.main(args) == 0
    again = BenchmarkSummary.from_json(json.loads((out / "benchmark" / "summary.json").read_text()))
    rec = again.settings["default"]
    assert not any(t.computed_now for t in rec.training)
    old = {(t.dtype, t.batch): t.frameworks["fmlp"] for t in first.settings["default"].training}
    assert all(t.frameworks["fmlp"] == old[(t.dtype, t.batch)] for t in rec.training)


def test_native_blas_runs_in_a_child_without_the_openblas_variables(tmp_path: Path) -> None:
    args = [
        "--quick",
        "--quiet",
        "--native-blas",
        "--out",
        str(tmp_path),
        "--frameworks",
        "fmlp",
        "reference",
        "--batch-sizes",
        "64",
        "--dtypes",
        "float32",
        "--no-rss",
        "--threads",
        "1",
    ]
    assert cli.main(args) == 0
    rec = cli.read_setting(tmp_path / "benchmark" / "native.json")
    assert rec.setting == "native" and rec.openblas_env == dict.fromkeys(environment.OPENBLAS_VARS)
    assert not (tmp_path / "benchmark" / "default.json").exists()
    summary = BenchmarkSummary.from_json(
        json.loads((tmp_path / "benchmark" / "summary.json").read_text())
    )
    assert list(summary.settings) == ["native"]
