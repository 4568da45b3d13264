"""The main job end to end on the quick setting: killed and resumed, stopped by SIGTERM
and resumed, on another folder, on a real Dask cluster that loses a worker, it gives the
same metrics and the same PDF bytes as one uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analyses.main import main
from analyses.studies import study_names
from tests.analyses.processes import free_port, kill_group, left_after, sessions

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MAIN = [sys.executable, "-m", "analyses.main", "--quick", "--quiet", "--no-timings"]


def _metrics(out: Path) -> dict[str, Any]:
    """Every study's summary without the machine record (which names the process's
    environment, not a result)."""
    found = {}
    for name in study_names():
        summary = json.loads((out / name / "summary.json").read_text())
        summary.pop("machine", None)
        found[name] = summary
    return found


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _stored_runs(out: Path) -> int:
    return len(list(out.glob("*/runs/*.json")))


def _wait_for_runs(out: Path, n: int) -> None:
    _wait_for(lambda: _stored_runs(out) >= n, 300, f"{n} finished runs")


def _wait_for(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, f"timed out waiting for {why}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, real_mnist: Any) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("whole").resolve() / "results"  # an absolute --out
    start = time.perf_counter()
    subprocess.run([*MAIN, "--out", str(out)], check=True, timeout=600)
    return out, time.perf_counter() - start


def test_stopped_and_killed_jobs_resume_to_the_same_metrics_and_pdf(
    uninterrupted: tuple[Path, float], tmp_path: Path
) -> None:
    whole, seconds = uninterrupted
    out = tmp_path / "results"  # another folder, named relative to the working directory
    with sessions() as started:
        # SIGTERM, then SIGKILL, to the driver alone (as a scheduler or `timeout` sends
        # them), once some runs are in: no process of the job is left 10 s later
        for signum, code in ((signal.SIGTERM, 143), (signal.SIGKILL, -9)):
            proc = started.start([*MAIN, "--out", "results"], cwd=tmp_path)
            _wait_for_runs(out, _stored_runs(out) + 2)
            os.kill(proc.pid, signum)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == code, err
            assert left_after(proc.pid, 10.0) == []
            if signum == signal.SIGTERM:
                kept = _stored_runs(out)
                assert f"stopped by SIGTERM: the workers are ended; {kept} finished runs" in err
                assert "Resume with the same command: python -m analyses.main --quick" in err
        # then the job and its workers, mid-run, three times; a resumed run has less
        # left to do: the later kills come sooner after its start
        kills = 0
        for fraction in (0.1, 0.15, 0.2):
            proc = started.start([*MAIN, "--out", "results"], cwd=tmp_path)
            try:
                proc.wait(timeout=fraction * seconds)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
        assert kills == 3, "the job finished before a kill: kill earlier"
    subprocess.run([*MAIN, "--out", "results"], cwd=tmp_path, check=True, timeout=600)
    assert _metrics(out) == _metrics(whole)
    assert _md5(out / "report.pdf") == _md5(whole / "report.pdf")
    assert str(tmp_path) not in (out / "report.pdf").read_bytes().decode("latin-1")


def test_a_rerun_with_nothing_left_computes_nothing_and_rebuilds_the_same_pdf(
    uninterrupted: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    whole, _ = uninterrupted
    before = _md5(whole / "report.pdf")
    assert main(["--quick", "--no-timings", "--out", str(whole), "--executor", "local"]) == 0
    assert "0 runs computed" in capsys.readouterr().err
    assert _md5(whole / "report.pdf") == before


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    """A scheduler and two single-thread workers on 127.0.0.1, each started with Dask's
    own command as a process of its own (the README's commands), all ended afterwards."""
    distributed = pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout
    dask = [str(Path(sys.executable).with_name("dask"))]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT, "env": env}
    with sessions() as started:
        port = address.rsplit(":", 1)[1]
        started.start(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
            **quiet,
        )
        workers = [
            started.start(
                [
                    *dask,
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    name,
                    "--local-directory",
                    str(tmp_path / name),
                ],
                **quiet,
            )
            for name in ("w1", "w2")
        ]
        client = distributed.Client(address, timeout="60s")
        try:
            client.wait_for_workers(2, timeout=120)
        finally:
            client.close()
        yield address, workers


def test_the_quick_pipeline_on_a_dask_cluster_survives_a_killed_worker(
    uninterrupted: tuple[Path, float],
    dask_cluster: tuple[str, list[subprocess.Popen[str]]],
    tmp_path: Path,
) -> None:
    whole, _ = uninterrupted
    address, workers = dask_cluster
    out = tmp_path / "dask"
    job = subprocess.Popen(
        [*MAIN, "--out", str(out), "--executor", "dask", "--scheduler", address],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    distributed = pytest.importorskip("distributed")
    client = distributed.Client(address, timeout="60s")
    try:
        w1 = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "w1")

        def w1_busy_midway() -> bool:
            done = _stored_runs(out) >= 3 or job.poll() is not None
            return done and bool(client.processing().get(w1))

        # in the middle of the run: some runs are in, and w1 is running one
        _wait_for(w1_busy_midway, 300, "w1 running a task after three runs")
        assert job.poll() is None, "the job finished before the kill: kill earlier"
        kill_group(workers[0].pid)  # the worker and its nanny, as a lost node
        _, err = job.communicate(timeout=600)
    finally:
        client.close()
        job.kill()
    assert job.returncode == 0, err
    assert workers[0].wait(timeout=10) is not None
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
