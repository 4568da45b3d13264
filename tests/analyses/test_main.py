"""The main job end to end on the quick setting: killed and resumed, on another folder,
on Dask, it gives the same metrics and the same PDF bytes as one uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from analyses.main import main
from analyses.studies import STUDY_NAMES

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

MAIN = [sys.executable, "-m", "analyses.main", "--quick", "--quiet", "--no-timings"]


def _metrics(out: Path) -> dict[str, Any]:
    """Every study's summary without the machine record (which names the process's
    environment, not a result)."""
    found = {}
    for name in STUDY_NAMES:
        summary = json.loads((out / name / "summary.json").read_text())
        summary.pop("machine", None)
        found[name] = summary
    return found


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, real_mnist: Any) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("whole").resolve() / "results"  # an absolute --out
    start = time.perf_counter()
    subprocess.run([*MAIN, "--out", str(out)], check=True, timeout=600)
    return out, time.perf_counter() - start


def test_five_kills_then_a_rerun_give_the_same_metrics_and_pdf(
    uninterrupted: tuple[Path, float], tmp_path: Path
) -> None:
    whole, seconds = uninterrupted
    # another folder, named relative to the working directory
    kills = 0
    # a resumed run has less left to do: the later kills come sooner after its start
    for fraction in (0.1, 0.2, 0.25, 0.3, 0.35):
        proc = subprocess.Popen(
            [*MAIN, "--out", "results"],
            cwd=tmp_path,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=fraction * seconds)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the job and its workers, mid-run
            proc.wait()
            kills += 1
    assert kills == 5, "the job finished before a kill: kill earlier"
    subprocess.run([*MAIN, "--out", "results"], cwd=tmp_path, check=True, timeout=600)
    resumed = tmp_path / "results"
    assert _metrics(resumed) == _metrics(whole)
    assert _md5(resumed / "report.pdf") == _md5(whole / "report.pdf")
    assert str(tmp_path) not in (resumed / "report.pdf").read_bytes().decode("latin-1")


def test_a_rerun_with_nothing_left_computes_nothing_and_rebuilds_the_same_pdf(
    uninterrupted: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    whole, _ = uninterrupted
    before = _md5(whole / "report.pdf")
    assert main(["--quick", "--no-timings", "--out", str(whole), "--executor", "local"]) == 0
    assert "0 runs computed" in capsys.readouterr().err
    assert _md5(whole / "report.pdf") == before


def test_the_quick_pipeline_on_a_dask_cluster_gives_the_same_metrics(
    uninterrupted: tuple[Path, float], tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    whole, _ = uninterrupted
    out = tmp_path / "dask"
    subprocess.run(
        [*MAIN, "--out", str(out), "--executor", "dask", "--workers", "2"], check=True, timeout=600
    )
    assert _metrics(out) == _metrics(whole)
    assert _md5(out / "report.pdf") == _md5(whole / "report.pdf")


def test_a_study_alone_needs_its_artifacts_and_names_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--quick", "--quiet", "--out", str(tmp_path), "--only", "cnn", "--executor", "local"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "'search.chosen_mlp'" in err and "run the search study too" in err


def test_every_summary_round_trips_through_json(uninterrupted: tuple[Path, float]) -> None:
    from analyses.studies import SuiteOptions, suite

    whole, _ = uninterrupted
    for study in suite(SuiteOptions.quick()):
        raw = json.loads((whole / study.name / "summary.json").read_text())
        back = study.summary_type.from_json(raw).to_json()
        assert json.dumps(back, sort_keys=True) == json.dumps(raw, sort_keys=True), study.name
