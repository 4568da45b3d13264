"""A driver stopped by SIGTERM or SIGINT, or killed outright, leaves no process behind
and loses no finished run; one driver per results folder, and a stale lock taken over.

The driver here is ``tests.analyses.signal_job``: one study of slow squares on a pool of
two workers, in the same driver session as ``analyses.main``. Every process a test
starts is in a session of its own, which a finalizer kills whatever the test's outcome.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analyses.pipeline.lock import LOCK_FILE, FolderError, FolderLocked, hold_results_folder
from tests.analyses.processes import alive_in_group, left_after, sessions

JOB = [sys.executable, "-m", "tests.analyses.signal_job"]
RUNS = 10
ROOT = Path(__file__).resolve().parents[2]

Start = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(out, *args) -> Popen`` of the job in its own session; every process of
    every session started is killed at the end of the test."""
    with sessions() as started:
        yield lambda out, *args: started.start([*JOB, str(out), *args], cwd=ROOT)


def _stored(out: Path) -> int:
    return len(list((out / "slow" / "runs").glob("*.json")))


def _wait_for(what: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _squares(out: Path) -> list[int]:
    squares: list[int] = json.loads((out / "slow" / "summary.json").read_text())["squares"]
    return squares


@pytest.mark.parametrize(
    ("signum", "code", "group"),
    [
        (signal.SIGTERM, 143, False),
        (signal.SIGINT, 130, False),
        (signal.SIGINT, 130, True),  # Ctrl-C in a terminal: the whole process group
        (signal.SIGKILL, -9, False),
    ],
    ids=["SIGTERM", "SIGINT", "Ctrl-C", "SIGKILL"],
)
def test_a_stopped_driver_leaves_no_process_and_the_next_run_resumes(
    start: Start, tmp_path: Path, signum: int, code: int, group: bool
) -> None:
    out = tmp_path / "results"
    proc = start(out)
    _wait_for(lambda: _stored(out) >= 2)
    assert len(alive_in_group(proc.pid)) >= 3  # the driver, its workers (and a tracker)
    if group:
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)  # the driver alone, not its group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert left_after(proc.pid, 10.0) == []
    kept = _stored(out)
    assert 2 <= kept < RUNS
    if signum != signal.SIGKILL:
        assert f"stopped by {signal.Signals(signum).name}" in err
        assert f"{kept} finished runs are kept in {out}" in err
        assert f"Resume with the same command: {sys.executable} -m tests.analyses" in err
    again = start(out)
    stdout, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert stdout.split() == ["computed", str(RUNS - kept), "reused", str(kept), "total", "10"]
    assert _squares(out) == [n * n for n in range(RUNS)]
    assert left_after(again.pid, 10.0) == []


def test_a_second_driver_on_a_folder_in_use_names_the_running_one(
    start: Start, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    first = start(out, "--runs", "4", "--seconds", "2")
    _wait_for(lambda: (out / "slow" / "runs").exists() or (out / "started").exists())
    second = start(out)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    host = socket.gethostname()
    assert f"is in use by another driver: process {first.pid} on host {host}" in err
    assert f"kill {first.pid}" in err
    assert not (out / "started").exists() or all(
        name.split("-")[1] != str(second.pid) for name in os.listdir(out / "started")
    )
    _stdout, err = first.communicate(timeout=60)
    assert first.returncode == 0, err


def test_a_lock_is_exclusive_in_one_process_too(tmp_path: Path) -> None:
    with hold_results_folder(tmp_path) as stale:
        assert stale is None
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with (
            pytest.raises(FolderLocked, match=f"process {os.getpid()} on host") as info,
            hold_results_folder(tmp_path),
        ):
            pass
        assert info.value.holder is not None and info.value.holder.pid == os.getpid()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released: emptied, not deleted
    with hold_results_folder(tmp_path) as stale:
        assert stale is None


def test_a_stale_lock_of_a_dead_driver_is_taken_over_and_said_so(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).parent.mkdir(parents=True)
    dead = {"pid": 4_000_000, "host": "gone", "started": "2026-01-01 00:00:00 UTC"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(dead) + "\n")
    said: list[str] = []
    with hold_results_folder(tmp_path, say=said.append) as stale:
        assert stale is not None and stale.pid == 4_000_000
    assert said == [
        f"{tmp_path}: took over the lock left by a driver that is no longer running "
        "(process 4000000 on host gone (started 2026-01-01 00:00:00 UTC)); its finished runs "
        "are kept"
    ]


def test_a_driver_killed_outright_leaves_a_stale_lock_the_next_one_takes_over(
    start: Start, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    proc = start(out, "--runs", "4", "--seconds", "2")
    _wait_for(lambda: (out / "started").exists())
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    again = start(out, "--runs", "4", "--seconds", "2")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"took over the lock left by a driver that is no longer running (process {proc.pid}" in (
        err
    )


def test_a_results_folder_that_cannot_be_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with (
        pytest.raises(FolderError, match=f"cannot use {tmp_path / 'file'} as the results folder"),
        hold_results_folder(tmp_path / "file"),
    ):
        pass
