"""Smoke and behaviour tests of the hyper-parameter search on tiny synthetic data."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fmlp
from analyses import hparam_search as hs
from analyses.common import ResultStore, config_hash
from analyses.sweep import InlineExecutor, SweepExecutor, make_executor, run_sweep
from fmlp.checkpoint import load as load_params


def tiny(**changes: Any) -> hs.HParamConfig:
    """A config that trains in a fraction of a second."""
    base = hs.HParamConfig(
        hidden=(16, 8),
        lr=0.1,
        batch_size=32,
        epochs=2,
        dataset="synthetic",
        n_train=200,
        n_eval=100,
    )
    return attrs.evolve(base, **changes)


def store_of(out: Path) -> ResultStore:
    return ResultStore(out, hs.STUDY)


class Counter:
    """Wraps run_config and records the configs it is called with."""

    def __init__(self) -> None:
        self.calls: list[hs.HParamConfig] = []
        self.real = hs.run_config

    def __call__(self, config: hs.HParamConfig, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(config)
        return self.real(config, **kwargs)


# ------------------------------------------------------------------ configuration


def test_grid_meets_the_assignment() -> None:
    blocks = hs.full_grid()
    configs = hs.grid_configs(blocks)
    assert len(configs) >= 24
    assert len(set(c.hash for c in configs)) == len(configs)
    for c in configs:
        assert len(c.hidden) == 2 and 500_000 <= fmlp.count_params(c.sizes) <= 1_000_000
        assert c.epochs == 10 and c.init == "glorot" and c.dataset == "mnist" and c.n_train is None
    assert {c.activation for c in configs} == {"relu", "tanh", "sigmoid"}
    assert len({c.lr for c in configs if c.headline}) >= 3
    assert len({c.batch_size for c in configs if c.headline}) >= 3
    assert len({c.hidden for c in configs if c.headline}) >= 4
    assert {c.optimizer for c in configs} == {"sgd", "momentum"}
    assert hs.BASE.n_params == 669_706


def test_config_rejects_bad_values_clearly() -> None:
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        tiny(lr=-1.0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        tiny(activation="gelu")
    with pytest.raises(ValueError, match="unknown optimizer"):
        tiny(optimizer="adam")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tiny(batch_size=0)
    with pytest.raises(ValueError, match="hidden must list positive integer widths"):
        tiny(hidden=())
    with pytest.raises(ValueError, match="784-100-100-10 has 89,610 parameters"):
        hs.check_param_range(hs.HParamConfig(hidden=(100, 100)))


def test_config_hash_is_stable_and_names_every_field() -> None:
    a, b = tiny(lr=0.1), tiny(lr=0.1)
    assert a.hash == b.hash == config_hash(a.to_dict())
    assert tiny(lr=0.2).hash != a.hash and tiny(seed=1).hash != a.hash
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()  # survives the store's JSON
    assert hs.HParamConfig(**a.to_dict()) == a


# ------------------------------------------------------------------ the quick study


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quick")
    code = hs.main(["--out", str(out), "--quick", "--quiet", "--dataset", "synthetic"])
    assert code == 0
    folder = out / hs.STUDY
    return folder, json.loads((folder / "summary.json").read_text())


def test_quick_study_writes_results_of_the_right_shape(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, summary = quick_run
    configs = hs.grid_configs(hs.quick_grid("synthetic"))
    assert summary["grid"]["n_configs"] == len(configs) == 3
    assert len(list((folder / "runs").glob("*.json"))) == 3
    runs = summary["runs"]
    assert [r["rank"] for r in runs] == [1, 2, 3]
    for run in runs:
        assert run["status"] == "ok"
        assert len(run["val_accuracy"]) == len(run["val_loss"]) == len(run["running_loss"]) == 2
        assert run["final_val_accuracy"] == run["val_accuracy"][-1]
        assert run["n_params"] == fmlp.count_params(run["sizes"])
        assert not run["headline"]  # small widths, few samples: not the assignment's setting
    keys = [hs.rank_key(r) for r in runs]
    assert keys == sorted(keys)
    assert summary["n_ok"] == 3 and summary["n_failed"] == 0
    assert summary["best"]["hash"] == runs[0]["hash"]
    assert summary["best_sgd"] is None
    assert summary["machine"]["cores"] >= 1
    assert summary["wall_seconds"]["sweep_this_invocation"] > 0
    [log] = summary["invocations"]
    assert log["computed"] == 3 and log["executor"]["name"] == "local"


def test_quick_study_writes_sorted_tables_and_figures(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, summary = quick_run
    md = (folder / "table.md").read_text().splitlines()
    assert len(md) == 2 + 3 and md[0].startswith("| rank | r(valid) %")
    rows = list(csv.DictReader(io.StringIO((folder / "table.csv").read_text())))
    assert [r["hash"] for r in rows] == [r["hash"] for r in summary["runs"]]
    accs = [float(r["r_valid"]) for r in rows]
    assert accs == sorted(accs, reverse=True)
    for name in ("val_curves", "by_dimension"):
        for ext in ("png", "pdf"):
            path = folder / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
    assert sorted(summary["files"]["figures"]) == sorted(
        f"{n}.{e}" for n in ("val_curves", "by_dimension") for e in ("png", "pdf")
    )


def test_best_params_are_the_chosen_runs_and_give_its_accuracies(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, summary = quick_run
    best = summary["best"]
    params = load_params(folder / "best_params.npz")
    config = hs.HParamConfig(**best["config"])
    assert params.sizes == config.sizes
    saved = load_params(folder / "params" / f"{best['hash']}.npz")
    assert fmlp.tree_allclose(params, saved, rtol=0, atol=0)
    data = hs.config_data(config)
    with threadpool_limits(limits=hs.RUN_BLAS_THREADS):
        valid = fmlp.evaluate(params, data.x_valid, data.y_valid)
        test = fmlp.evaluate(params, data.x_test, data.y_test)
    assert valid.accuracy == best["final_val_accuracy"]  # retrain-free: the run's own params
    assert test.accuracy == best["test_accuracy"]
    assert best["retrained"] is False


@pytest.mark.real_data
def test_quick_study_on_real_mnist(tmp_path: Path, real_mnist: Any) -> None:
    assert hs.main(["--out", str(tmp_path), "--quick", "--quiet", "--dataset", "mnist"]) == 0
    summary = json.loads((tmp_path / hs.STUDY / "summary.json").read_text())
    assert summary["data_sizes"] == {"train": 600, "valid": 200, "test": 200}
    assert (
        summary["n_ok"] == 3 and summary["best"]["final_val_accuracy"] > 0.5
    )  # 10 classes: chance is 0.1


# ------------------------------------------------------------------ stage 2


def fake_row(config: hs.HParamConfig, acc: float, status: str = "ok") -> dict[str, Any]:
    return {"hash": config.hash, "status": status, "final_val_accuracy": acc, "final_val_loss": 0.1}


def test_stage2_combines_each_dimensions_best() -> None:
    base = tiny()
    blocks = (
        hs.Block("lr", ("lr", "activation"), (base, tiny(lr=0.3), tiny(lr=0.5, activation="tanh"))),
        hs.Block("arch", ("hidden",), (base, tiny(hidden=(32, 16)))),
        hs.Block("batch", ("batch_size",), (base, tiny(batch_size=8), tiny(batch_size=64))),
        hs.Block(
            "optim", ("optimizer", "schedule", "lr"), (base, tiny(optimizer="momentum", lr=0.01))
        ),
    )
    rows = [
        fake_row(base, 0.90),
        fake_row(tiny(lr=0.3), 0.95),
        fake_row(tiny(lr=0.5, activation="tanh"), 0.99, "failed"),
        fake_row(tiny(hidden=(32, 16)), 0.93),
        fake_row(tiny(batch_size=8), 0.80),
        fake_row(tiny(batch_size=64), 0.85),
        fake_row(tiny(optimizer="momentum", lr=0.01), 0.999),  # not a plain-SGD block: ignored
    ]
    block = hs.combined_block(blocks, rows)
    assert block is not None and block.name == hs.STAGE2_NAME
    sgd, cosine, momentum = block.configs
    assert sgd == tiny(lr=0.3, hidden=(32, 16))  # failed tanh ignored; the base's batch size won
    assert cosine == attrs.evolve(sgd, schedule="cosine")
    assert momentum == attrs.evolve(sgd, optimizer="momentum", schedule="cosine", lr=0.03)
    assert hs.combined_block(blocks[3:], rows) is None


def test_study_runs_stage2_after_stage1(tmp_path: Path) -> None:
    base = tiny()
    blocks = (
        hs.Block("lr", ("lr",), (base, tiny(lr=0.3))),
        hs.Block("arch", ("hidden",), (base, tiny(hidden=(32, 16)))),
    )
    summary = hs.study(blocks, out=tmp_path, stage2=True)
    combined = hs.HParamConfig(**summary["grid"]["stage2"]["combined"])
    stage2 = [r for r in summary["runs"] if hs.STAGE2_NAME in r["blocks"]]
    assert len(stage2) == 3 and any(r["hash"] == combined.hash for r in stage2)
    assert (
        summary["grid"]["n_configs"]
        == len(summary["runs"])
        == len({r["hash"] for r in summary["runs"]})
    )
    assert len(list((tmp_path / hs.STUDY / "runs").glob("*.json"))) == len(summary["runs"])
    again = hs.study(blocks, out=tmp_path, stage2=True)
    assert again["n_computed_now"] == 0 and again["grid"]["stage2"] == summary["grid"]["stage2"]
    assert again["invocations"] == summary["invocations"] and summary["invocations"][0][
        "computed"
    ] == len(summary["runs"])
    assert summary["best"]["retrained"] is False
    (tmp_path / hs.STUDY / "params" / f"{summary['best']['hash']}.npz").unlink()
    third = hs.study(
        blocks, out=tmp_path, stage2=True
    )  # the best's params are gone: retrained, same bits
    assert third["best"]["retrained"] is True and third["best"]["retrain_matches_stored"] is True
    assert third["best"]["test_accuracy"] == summary["best"]["test_accuracy"]


# ------------------------------------------------------------------ resume


def test_rerun_computes_nothing_and_a_deleted_run_alone_is_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = [tiny(lr=0.05), tiny(lr=0.1), tiny(activation="tanh")]
    counter = Counter()
    monkeypatch.setattr(hs, "run_config", counter)
    first = hs.search(configs, out=tmp_path)
    assert counter.calls == configs and first.computed == (0, 1, 2)

    counter.calls.clear()
    again = hs.search(configs, out=tmp_path)
    assert counter.calls == [] and again.computed == ()
    assert again.results == first.results

    store_of(tmp_path).path(configs[1].to_dict()).unlink()
    third = hs.search(configs, out=tmp_path)
    assert counter.calls == [configs[1]] and third.computed == (1,)
    drop = ("wall_seconds", "epoch_seconds")

    def strip(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in drop}

    assert [strip(r) for r in third.results] == [strip(r) for r in first.results]


def test_an_interrupted_sweep_keeps_what_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = [tiny(lr=0.05), tiny(lr=0.1), tiny(lr=0.2)]
    real = hs.run_config

    def interrupted(config: hs.HParamConfig, **kwargs: Any) -> dict[str, Any]:
        if config.lr == 0.2:
            raise KeyboardInterrupt
        return real(config, **kwargs)

    monkeypatch.setattr(hs, "run_config", interrupted)
    with pytest.raises(KeyboardInterrupt):
        hs.search(configs, out=tmp_path)
    assert len(list((tmp_path / hs.STUDY / "runs").glob("*.json"))) == 2
    counter = Counter()
    counter.real = real
    monkeypatch.setattr(hs, "run_config", counter)
    hs.search(configs, out=tmp_path)
    assert counter.calls == [configs[2]]


# ------------------------------------------------------------------ failures


def test_diverging_and_raising_configs_are_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exploding = tiny(lr=1e6)  # ReLU: the loss explodes but stays finite
    overflowing = tiny(lr=1e20)  # float32 overflows: a non-finite loss
    raising = tiny(lr=0.123)
    good = tiny(lr=0.1)
    real = hs.make_optimizer

    def broken(config: hs.HParamConfig, n_train: int) -> fmlp.Optimizer[Any]:
        if config.lr == 0.123:
            raise RuntimeError("this optimizer is broken on purpose")
        return real(config, n_train)

    monkeypatch.setattr(hs, "make_optimizer", broken)
    blocks = (hs.Block("lr", ("lr",), (exploding, raising, good, overflowing)),)
    summary = hs.study(blocks, out=tmp_path, stage2=False)
    by_hash = {r["hash"]: r for r in summary["runs"]}
    assert by_hash[good.hash]["status"] == "ok"
    for bad in (exploding, overflowing):
        row = by_hash[bad.hash]
        assert row["status"] == "failed" and row["diverged"] is True
        assert row["error"].startswith("diverged")
    assert by_hash[overflowing.hash]["diverged_epoch"] == 1
    assert math.isnan(by_hash[overflowing.hash]["final_val_accuracy"])
    assert by_hash[raising.hash]["status"] == "failed"
    assert by_hash[raising.hash]["error"] == "RuntimeError: this optimizer is broken on purpose"
    assert [r["status"] for r in summary["runs"]] == ["ok", "failed", "failed", "failed"]
    assert summary["best"]["hash"] == good.hash and summary["n_failed"] == 3
    assert "failed: RuntimeError" in (tmp_path / hs.STUDY / "table.md").read_text()
    assert not (tmp_path / hs.STUDY / "params" / f"{exploding.hash}.npz").exists()

    counter = Counter()
    monkeypatch.setattr(hs, "run_config", counter)
    hs.search([exploding, raising, good, overflowing], out=tmp_path)
    assert counter.calls == []  # a failure of the config itself is a result: stored


def test_a_task_the_executor_cannot_run_is_reported_not_stored(tmp_path: Path) -> None:
    configs = [tiny(lr=0.1), tiny(lr=0.2)]
    calls: list[float] = []

    def flaky(config: hs.HParamConfig) -> dict[str, Any]:
        calls.append(config.lr)
        if config.lr == 0.2:
            raise OSError("worker lost")
        return {"status": "ok", "lr": config.lr}

    store = store_of(tmp_path)
    outcome = run_sweep(flaky, configs, store=store)
    assert outcome.lost == (1,) and outcome.computed == (0,)
    assert (
        outcome.results[1]["status"] == "failed"
        and "OSError: worker lost" in outcome.results[1]["error"]
    )
    assert store.get(configs[1].to_dict()) is None
    run_sweep(flaky, configs, store=store)
    assert calls == [0.1, 0.2, 0.2]


def test_unknown_dataset_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    blocks = (hs.Block("x", ("lr",), (tiny(dataset="no-such-data"),)),)
    with pytest.raises(ValueError, match="no-such-data"):
        hs.study(blocks, out=tmp_path)
    assert not (tmp_path / hs.STUDY / "runs").exists()


# ------------------------------------------------------------------ executors


def test_inline_executor_reports_exceptions_through_the_future() -> None:
    ex = InlineExecutor()
    assert ex.submit(lambda x: x + 1, 1).result() == 2
    future = ex.submit(lambda: 1 // 0)
    assert isinstance(future.exception(), ZeroDivisionError)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(lambda: 0)


def test_make_executor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown executor 'mpi'"), make_executor("mpi"):
        pass
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        with make_executor("process", workers=0):
            pass


def test_local_and_process_executors_give_identical_results(tmp_path: Path) -> None:
    configs = [
        tiny(lr=0.1),
        tiny(activation="tanh", optimizer="momentum", schedule="cosine", lr=0.05),
    ]
    local = hs.search(configs, out=tmp_path / "local")
    with make_executor("process", workers=2, blas_threads=1) as ex:
        pooled = hs.search(configs, out=tmp_path / "process", executor=ex)
    keys = (
        "val_accuracy",
        "val_loss",
        "running_loss",
        "running_accuracy",
        "final_val_accuracy",
        "final_val_loss",
    )
    for a, b in zip(local.results, pooled.results):
        assert a["status"] == b["status"] == "ok"
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}  # bit for bit
    for config in configs:
        name = f"{config.hash}.npz"
        pa = load_params(tmp_path / "local" / hs.STUDY / "params" / name)
        pb = load_params(tmp_path / "process" / hs.STUDY / "params" / name)
        for la, lb in zip(pa.layers, pb.layers):
            assert np.array_equal(la.w, lb.w) and np.array_equal(la.b, lb.b)


# ------------------------------------------------------------------ Dask (optional: pip install .[cluster])


def kill_worker_once(config: hs.HParamConfig, *, marker_dir: str) -> dict[str, Any]:
    """A task that kills its own worker process the first time it runs for ``config``
    (a marker file remembers), and runs the config normally the next time."""
    marker = Path(marker_dir) / config.hash
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return hs.run_config(config)


@pytest.fixture(scope="module")
def dask_executor() -> Iterator[SweepExecutor]:
    pytest.importorskip("distributed")
    with make_executor("dask", workers=2) as ex:
        yield ex


def test_dask_gives_the_same_results_as_local(tmp_path: Path, dask_executor: SweepExecutor) -> None:
    configs = [tiny(lr=0.1), tiny(activation="sigmoid", optimizer="momentum", lr=0.05)]
    local = hs.search(configs, out=tmp_path / "local")
    remote = hs.search(configs, out=tmp_path / "dask", executor=dask_executor)
    keys = (
        "val_accuracy",
        "val_loss",
        "running_loss",
        "running_accuracy",
        "final_val_loss",
        "status",
    )
    for a, b in zip(local.results, remote.results):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}  # bit for bit
    assert remote.computed == (0, 1)


def test_dask_survives_a_worker_killed_mid_task(
    tmp_path: Path, dask_executor: SweepExecutor
) -> None:
    configs = [tiny(lr=0.1), tiny(lr=0.05), tiny(lr=0.2)]
    markers = tmp_path / "markers"
    markers.mkdir()
    store = store_of(tmp_path / "dask")
    victim = configs[1]
    (markers / configs[0].hash).write_text("no kill")
    (markers / configs[2].hash).write_text("no kill")
    task = functools.partial(kill_worker_once, marker_dir=str(markers))
    outcome = run_sweep(task, configs, store=store, executor=dask_executor, timeout=120)
    assert (markers / victim.hash).read_text().isdigit()  # the first attempt did die
    assert outcome.lost == () and outcome.computed == (0, 1, 2)
    assert [r["status"] for r in outcome.results] == ["ok"] * 3
    files = sorted(p.name for p in (store.folder / "runs").iterdir())
    assert files == sorted(f"{c.hash}.json" for c in configs)  # nothing lost, nothing duplicated
    local = hs.search([victim], out=tmp_path / "local")
    assert local.results[0]["val_loss"] == outcome.results[1]["val_loss"]
