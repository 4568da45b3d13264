"""The benchmark's records and its results store: a measured cell is kept by the
pipeline's ``ResultStore`` and read back instead of measured again; a malformed cell or
setting file is refused with a message that names the field; the typed summary reads
back as written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from analyses.benchmark import cli, run
from analyses.benchmark.cells import CellResult, CellTask, TrainingCell
from analyses.benchmark.config import BenchConfig, make_config
from analyses.benchmark.data import DataLoading, EvalTiming, Evaluation
from analyses.benchmark.gemm import GemmPeak, GemmProduct, GemmTimes, StepGemms
from analyses.benchmark.memory import Memory, RssReport
from analyses.benchmark.setting import (
    BenchmarkSummary,
    LoadAvg,
    SettingRecord,
    ThreadsInfo,
)
from analyses.benchmark.tables import format_table, table_rows
from analyses.benchmark.targets import Target
from analyses.benchmark.training import Epochs, FrameworkRun, ratios
from analyses.datasets import StudyData, synthetic_data
from analyses.machine import machine_info
from analyses.pipeline.records import (
    RecordError,
    canonical_json,
    from_json,
    key_hash,
    record_json,
)
from analyses.pipeline.store import ResultStore, read_json, write_json
from analyses.pipeline.tasks import Outcome


def epochs(median: float) -> Epochs:
    return Epochs(
        seconds=(median,),
        warmup_seconds=(2 * median,),
        median=median,
        min=median,
        max=median,
        iqr=0.0,
        spread=0.0,
        cpu_seconds=(median,),
        cpu_median=median,
        gflops=10.0,
        compile_seconds=None,
        param_max_abs_diff=0.0,
    )


RESULT = CellResult(
    frameworks={
        "fmlp": FrameworkRun(epochs(0.5)),
        "reference": FrameworkRun(epochs(0.4)),
        "jax": FrameworkRun(None, note="jax is not installed"),
    },
    load_avg=((0.5, 0.4, 0.3), (0.6, 0.4, 0.3)),
    n_train=200,
)


TASK = CellTask(
    setting="default",
    openblas_env={"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None},
    source="0123456789abcdef",
    n_train=200,
    xla_flags=None,
    epochs=1,
    warmup=1,
    frameworks=("fmlp", "reference", "jax"),
    threads=1,
    jax=False,
    quick=True,
    dataset="synthetic",
    dtype="float32",
    batch=64,
)


def config() -> BenchConfig:
    return make_config(
        cli.build_parser().parse_args(["--quick", "--real-data", "no", "--dtypes", "float32"])
    )


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[CellTask]:
    """The cells measured while the test runs: ``CellTask.measure`` replaced by one that
    records its cell and returns ``RESULT``."""
    calls: list[CellTask] = []

    def fake(self: CellTask, data: StudyData, jax: object, log: object = None) -> CellResult:
        calls.append(self)
        return RESULT

    monkeypatch.setattr(CellTask, "measure", fake)
    return calls


def cell(store: ResultStore, task: CellTask) -> tuple[CellResult, bool]:
    cache = {(task.dataset, task.dtype): synthetic_data(200, 10, dtype=np.float32)}
    return run.cell_result(store, task, config(), cache, None, lambda msg: None)


# ------------------------------------------------------------------ the cells


def test_the_key_is_kind_version_and_every_field() -> None:
    key = TASK.key()
    assert key == {"kind": "cell", "version": CellTask.VERSION, **record_json(TASK)}
    assert set(key) == {"kind", "version", *(f.name for f in attrs.fields(CellTask))}


def test_a_finished_cell_is_read_back_not_measured_again(
    tmp_path: Path, measured: list[CellTask]
) -> None:
    store = ResultStore(tmp_path)
    assert cell(store, TASK) == (RESULT, True)
    path = tmp_path / "benchmark" / "runs" / f"{key_hash(TASK.key())}.json"
    assert store.run_path(TASK) == path and path.exists()
    assert cell(store, TASK) == (RESULT, False)
    assert measured == [TASK]
    changed = attrs.evolve(TASK, source="fedcba9876543210")  # another implementation
    assert cell(store, changed) == (RESULT, True)
    assert measured == [TASK, changed]


def test_a_malformed_cell_is_refused_naming_the_field(
    tmp_path: Path, measured: list[CellTask]
) -> None:
    store = ResultStore(tmp_path)
    cell(store, TASK)
    path = store.run_path(TASK)
    stored: Any = read_json(path)
    stored["result"]["frameworks"]["fmlp"]["epochs"]["median"] = "fast"
    with pytest.raises(RecordError, match=r"frameworks\['fmlp'\]\.epochs\.median"):
        from_json(CellResult, stored["result"])
    with pytest.raises(RecordError, match=r"\.median: expected a number"):
        store.put(TASK, Outcome(stored["result"], None, 1.0, 1.0, "here"))
    write_json(path, stored)
    assert store.get(TASK) is None  # so it is measured again, and stored right
    assert cell(store, TASK) == (RESULT, True)
    assert len(measured) == 2
    again: Any = read_json(path)
    assert from_json(CellResult, again["result"]) == RESULT


# --------------------------------------------------------- setting and summary


def setting_record(name: str = "default") -> SettingRecord:
    gemm = GemmTimes(
        peak={"float32": GemmPeak(size=256, gflops_best=100.0, gflops_median=90.0, seconds=(0.1,))},
        shapes={
            "float32": {
                "64": StepGemms(
                    products=(
                        GemmProduct("a0@W1", 64, 784, 512, 2 * 64 * 784 * 512, 1e-4, 2e-4, 50.0),
                    ),
                    step_seconds=1e-3,
                    step_gflops=40.0,
                )
            }
        },
    )
    training = TrainingCell(
        dataset="synthetic",
        dtype="float32",
        batch=64,
        n_train=200,
        steps_per_epoch=4,
        epoch_flops=10**9,
        gemm_bound_seconds=0.025,
        load_avg=RESULT.load_avg,
        frameworks={
            **RESULT.frameworks,  # a NaN, which JSON keeps as NaN
            "fmlp": FrameworkRun(attrs.evolve(epochs(0.5), spread=math.nan)),
        },
        peak_fraction={"fmlp": 0.1, "reference": 0.1},
        ratios=ratios(RESULT.frameworks),
        computed_now=True,
    )
    return SettingRecord(
        setting=name,
        openblas_env=dict(TASK.openblas_env),
        same_as_native=True,
        machine=machine_info(),
        blas=(),
        threads=ThreadsInfo(
            numpy_blas=1, torch=None, cpu_count=2, requested=1, xla_flags=None, jax_devices=None
        ),
        config=config(),
        gemm=gemm,
        training=(training,),
        evaluation=Evaluation(
            dataset="synthetic",
            dtypes={
                "float32": EvalTiming(
                    samples=200, seconds=(0.01,), seconds_median=0.01, samples_per_second=2e4
                )
            },
        ),
        data_loading=DataLoading(available=False, dataset="mnist", dtypes={}, note="not cached"),
        memory=Memory(
            parent_peak_rss_mb=100.0, children={"fmlp": RssReport(peak=None, note="child failed")}
        ),
        float64_over_float32={},
        targets=(Target(name="t", value=None, threshold=1.0, met=None, note="n"),),
        notes=("a note",),
        load_avg=LoadAvg(start=(0.5,), end=(0.6,)),
        wall_seconds=1.0,
    )


def test_the_typed_summary_round_trips(tmp_path: Path) -> None:
    rec = setting_record()
    summary = BenchmarkSummary(settings={"default": rec}, table=tuple(table_rows(rec)))
    store = ResultStore(tmp_path)
    path = store.write_summary("benchmark", summary)
    assert path == tmp_path / "benchmark" / "summary.json"
    again = store.read_summary("benchmark", BenchmarkSummary)
    assert canonical_json(again.to_json()) == canonical_json(summary.to_json())
    spread = again.settings["default"].training[0].epochs("fmlp")
    assert spread is not None and math.isnan(spread.spread)
    assert "fmlp/ref" in format_table(again.settings["default"])


def test_a_malformed_setting_is_refused_naming_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ResultStore(tmp_path)
    good = setting_record("native")
    write_json(cli.setting_path(store, "native"), good.to_json())
    bad: Any = good.to_json()
    bad["threads"]["numpy_blas"] = "one"
    path = cli.setting_path(store, "default")
    write_json(path, bad)
    with pytest.raises(RecordError, match=r"default\.json: .*threads\.numpy_blas"):
        cli.read_setting(path)
    summary = cli.write_summary(store)  # the unreadable setting is left out, and said so
    assert list(summary.settings) == ["native"]
    assert "threads.numpy_blas" in capsys.readouterr().err
    old = {k: v for k, v in good.to_json().items() if k != "schema"}
    write_json(path, {"schema": "fmlp-benchmark/1", **old})
    with pytest.raises(RecordError, match="schema"):
        cli.read_setting(path)
