"""The per-optimizer benchmark: every loop trains like fmlp, the options are checked, and a
reduced run from the command line writes a record that reads back and prints its table."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp
from analyses.benchmark import cli, opt_loops, optimizers
from analyses.benchmark.jax_loop import import_jax
from analyses.benchmark.training import max_abs_diff
from analyses.pipeline.records import from_json
from analyses.pipeline.store import read_json
from fmlp.train import epoch_order

SMALL = (20, 16, 12, 10)
ROOT = Path(__file__).resolve().parents[2]


def small_data(n: int, dtype: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(0)
    return rng.random((n, SMALL[0])).astype(dtype), rng.integers(0, SMALL[-1], n)


def train(loop: Any, n: int, epochs: int = 2) -> fmlp.MLP:
    for epoch in range(epochs):
        loop.epoch(epoch_order(n, 0, epoch))
    params: fmlp.MLP = loop.params()
    return params


@pytest.mark.parametrize("name", opt_loops.OPTIMIZER_NAMES)
def test_every_loop_trains_like_fmlp(name: opt_loops.OptimizerName) -> None:
    """The in-place numpy loop and torch (float64), and JAX+optax (float32), end where
    fmlp ends after two epochs; fmlp's two paths end on the same bits."""
    s = opt_loops.OPTIMIZERS[name]
    x, y = small_data(150, np.float64)
    p0 = fmlp.init(SMALL, seed=3, dtype=np.float64)
    ref = train(opt_loops.FmlpLoop(p0, x, y, 32, s, fused=True), 150)
    numpy_path = train(opt_loops.FmlpLoop(p0, x, y, 32, s, fused=False), 150)
    assert all(
        a.tobytes() == b.tobytes()
        for a, b in zip(fmlp.tree_leaves(ref), fmlp.tree_leaves(numpy_path))
    )
    assert max_abs_diff(ref, p0) > 1e-4  # it trained
    assert max_abs_diff(train(opt_loops.InPlaceLoop(p0, x, y, 32, s), 150), ref) < 1e-12
    if name != "sgd":
        with pytest.raises(ValueError, match="only plain SGD"):
            opt_loops.InPlaceLoop(p0, x, y, 32, s, gemm_update=True)
        with pytest.raises(ValueError, match="only plain SGD"):
            opt_loops.FmlpLoop(p0, x, y, 32, s, fused=True, sgd_in_gemm=True)
    elif fmlp.blas.available():
        gemm_loop = opt_loops.InPlaceLoop(p0, x, y, 32, s, gemm_update=True)
        assert max_abs_diff(train(gemm_loop, 150), ref) < 1e-12
        in_gemm = opt_loops.FmlpLoop(p0, x, y, 32, s, fused=True, sgd_in_gemm=True)
        assert max_abs_diff(train(in_gemm, 150), ref) < 1e-12
    if optimizers._importable("torch"):
        for fused in (False, True):
            loop = opt_loops.TorchOptLoop(p0, x, y, 32, s, fused=fused)
            assert max_abs_diff(train(loop, 150), ref) < 1e-10
    jax, optax = import_jax(), opt_loops.import_optax()
    if jax is not None and optax is not None:
        x32 = x.astype(np.float32)
        p32 = fmlp.init(SMALL, seed=3, dtype=np.float32)
        ref32 = train(opt_loops.FmlpLoop(p32, x32, y, 32, s, fused=True), 150)
        got = train(opt_loops.OptaxLoop(jax, optax, p32, x32, y, 32, s), 150)
        assert max_abs_diff(got, ref32) < 1e-4


def test_the_gemm_only_loop_runs_the_epochs_products_and_nothing_else() -> None:
    x, _ = small_data(70, np.float32)
    p0 = fmlp.init(SMALL, seed=1, dtype=np.float32)
    loop = opt_loops.GemmOnlyLoop(p0, x, 32)
    loop.epoch(epoch_order(70, 0, 0))
    assert loop.params() is p0 and np.isfinite(loop.dw[0]).all()


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_optimizer_parser().parse_args(["--per-optimizer", *argv])


def test_bad_options_are_refused_with_the_option_named() -> None:
    for argv, message in (
        (("--archs", "784-x-10"), "--archs takes sizes"),
        (("--archs", "100-10"), "starts at 784 inputs"),
        (("--batch-sizes", "0"), "--batch-sizes must be positive"),
        (("--threads", str(len(os.sched_getaffinity(0)) + 1)), "may use"),
        (("--epochs", "0"), "--epochs must be a positive"),
        (("--warmup", "-1"), "--warmup must be 0 or more"),
    ):
        with pytest.raises(SystemExit, match=message):
            optimizers.make_options(parse(*argv))
    opts = optimizers.make_options(parse("--quick", "--optimizers", "adam", "adam"))
    assert opts.optimizers == ("adam",) and opts.n_train == optimizers.QUICK_TRAIN
    assert opts.dataset == "synthetic" and opts.epochs == 1


def test_a_reduced_run_writes_its_record_and_prints_its_table(tmp_path: Path) -> None:
    """The whole command, children included, on a tiny architecture."""
    cmd = [
        sys.executable,
        "-m",
        "analyses.benchmark",
        "--per-optimizer",
        "--quick",
        "--quiet",
        "--out",
        str(tmp_path),
        "--archs",
        "784-16-10",
        "--optimizers",
        "adamw",
        "--batch-sizes",
        "32",
        "--threads",
        "1",
        "--n-train",
        "70",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = from_json(
        optimizers.OptimizerBenchmark, read_json(tmp_path / "benchmark" / "optimizers.json")
    )
    assert rec.schema == optimizers.SCHEMA
    (run,) = rec.runs
    assert run.threads == 1 and len(run.cpus) == 1
    (cell,) = run.cells
    assert (cell.arch, cell.optimizer, cell.batch, cell.n_train) == ("784-16-10", "adamw", 32, 70)
    assert cell.fused_equals_numpy is True
    measured = {t.framework for t in cell.timings if t.note is None}
    assert {"fmlp", "fmlp-numpy", "in-place", "gemm"} <= measured
    for t in cell.timings:
        assert (t.median is None) == (t.note is not None)
    assert rec.compile.note is None and rec.compile.cold_seconds is not None
    assert "784-16-10" in proc.stdout and "fmlp/gemm" in proc.stdout
    assert "first call in a fresh process" in proc.stdout
    assert "bit for bit in 1 of 1 cells" in proc.stdout
