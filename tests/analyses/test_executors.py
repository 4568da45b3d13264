"""The executors (in-process, a process pool, Dask) and how a worker runs a task: every
executor gives the result a direct run gives, a failing run comes back as an Outcome
with its Failure, the pool has the workers asked for, and nothing outlives the executor.

The tasks are module-level, so the spawned workers can import them by name.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import os
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from analyses.pipeline.executors import (
    EXECUTOR_NAMES,
    InlineExecutor,
    PipelineExecutor,
    make_executor,
)
from analyses.pipeline.memwatch import processes
from analyses.pipeline.records import from_json
from analyses.pipeline.tasks import (
    Outcome,
    RunContext,
    Task,
    execute,
    run_environment,
)

MEET_SECONDS: Final = 20.0
"""How long a MeetTask waits for the others before it fails."""


def _blas_threads() -> tuple[int, ...]:
    """The thread counts of the BLAS and OpenMP pools loaded in this process."""
    return tuple(sorted({int(p["num_threads"]) for p in threadpool_info()}))


# ------------------------------------------------------------------ tasks


@attrs.frozen
class Product:
    sums: tuple[float, ...]
    blas_threads: tuple[int, ...]


@attrs.frozen
class ProductTask:
    """A float64 matrix product of seeded random matrices: its column sums, bit for bit
    the same wherever it runs on one BLAS thread, and the BLAS threads it ran with."""

    study: ClassVar[str] = "executors"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Product]] = Product

    seed: int
    fail: bool = False

    def priority(self) -> int:
        return 0

    def key(self) -> dict[str, Any]:
        return {"kind": "product", "seed": self.seed, "fail": self.fail}

    def label(self) -> str:
        return f"product {self.seed}"

    def run(self, ctx: RunContext) -> Product:
        if self.fail:
            raise ValueError(f"seed {self.seed} is refused")
        rng = np.random.default_rng(self.seed)
        a = rng.standard_normal((160, 160))
        c = a @ a.T @ a
        return Product(tuple(float(v) for v in c.sum(axis=0)[:16]), _blas_threads())


@attrs.frozen
class Met:
    pid: int
    others: int


@attrs.frozen
class MeetTask:
    """Waits in ``ctx.out/meet`` until ``parties`` tasks have arrived: it finishes only
    when that many run at once (and fails after MEET_SECONDS otherwise)."""

    study: ClassVar[str] = "executors"
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Met]] = Met

    name: str
    parties: int

    def priority(self) -> int:
        return 0

    def key(self) -> dict[str, Any]:
        return {"kind": "meet", "name": self.name, "parties": self.parties}

    def label(self) -> str:
        return f"meet {self.name}"

    def run(self, ctx: RunContext) -> Met:
        folder = Path(ctx.out) / "meet"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}-{os.getpid()}").touch()
        deadline = time.monotonic() + MEET_SECONDS
        while (arrived := len(list(folder.iterdir()))) < self.parties:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {arrived} of {self.parties} tasks ran at once")
            time.sleep(0.02)
        return Met(os.getpid(), arrived - 1)


def _direct(task: Task[Any], ctx: RunContext) -> Any:
    """What ``task`` gives run right here, as JSON (what a worker sends back)."""
    outcome = execute(task, ctx)
    assert outcome.failure is None, outcome.failure
    return outcome.result


def _submit(ex: PipelineExecutor, task: Task[Any], ctx: RunContext) -> cf.Future[Outcome[Any]]:
    return ex.executor.submit(execute, task, ctx)


# ------------------------------------------------------------------ processes


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants() -> set[int]:
    """The live processes below this one, less multiprocessing's resource tracker (it is
    started once and lives as long as this process, by design)."""
    every = list(processes())
    kids: dict[int, list[int]] = {}
    for p in every:
        if p.state != "Z":
            kids.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.add(kid)
            todo.append(kid)
    return {pid for pid in found if "resource_tracker" not in _cmdline(pid)}


def _alive(pid: int) -> bool:
    return any(p.pid == pid and p.state != "Z" for p in processes())


def _left_after(before: set[int], seconds: float = 5.0) -> set[int]:
    """The processes started since ``before`` that are still alive after waiting up to
    ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while (new := _descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return new


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(str(tmp_path))


@pytest.fixture
def before() -> Iterator[set[int]]:
    """The processes below this one when the test starts; none more at its end."""
    start = _descendants()
    yield start
    assert _left_after(start) == set(), "the executor left processes behind"


# ------------------------------------------------------------------ execute and its environment


def test_execute_returns_the_result_as_json_and_where_it_ran(ctx: RunContext) -> None:
    outcome = execute(ProductTask(1), ctx)
    assert outcome.failure is None
    result = from_json(Product, outcome.result)
    with threadpool_limits(limits=1):
        assert result == ProductTask(1).run(ctx), "the environment adds nothing but one thread"
    assert result.blas_threads == (1,), "one BLAS thread inside the run"
    assert outcome.worker == f"{os.uname().nodename}:{os.getpid()}"
    assert outcome.wall_seconds > 0 and outcome.cpu_seconds >= 0


def test_execute_turns_an_exception_into_a_failure(
    ctx: RunContext, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = execute(ProductTask(7, fail=True), ctx)
    assert outcome.result is None
    assert outcome.failure is not None
    assert outcome.failure.error == "ValueError: seed 7 is refused"
    assert "Traceback" in outcome.failure.traceback
    assert 'raise ValueError(f"seed {self.seed} is refused")' in outcome.failure.traceback
    assert capsys.readouterr().err == "", "a quiet context prints nothing"
    loud = RunContext(ctx.out, quiet=False)
    execute(ProductTask(7, fail=True), loud)
    assert capsys.readouterr().err == "product 7 failed: ValueError: seed 7 is refused\n"


def test_the_run_environment_has_one_blas_thread_and_restores_the_count() -> None:
    with threadpool_limits(limits=2):
        assert _blas_threads() == (2,)
        with run_environment():
            assert _blas_threads() == (1,)
        assert _blas_threads() == (2,)
        with pytest.raises(RuntimeError, match="inside"), run_environment():
            raise RuntimeError("inside")
        assert _blas_threads() == (2,), "restored after an exception too"
    with threadpool_limits(limits=1), run_environment(threads=2):
        assert _blas_threads() == (2,)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_a_torch_run_environment_sets_torch_threads_and_openmp_and_restores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    outer = torch.get_num_threads()
    with run_environment(threads=1, torch=True):
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8", "a setting given is kept"
    assert torch.get_num_threads() == outer
    assert "OMP_WAIT_POLICY" not in os.environ
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    with run_environment(torch=True):
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


# ------------------------------------------------------------------ make_executor's checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "threads"}, r"unknown executor 'threads': expected one of local, process, dask"),
        ({"name": "local", "scheduler": "tcp://h:1"}, r"scheduler address is for --executor dask"),
        ({"name": "process", "workers": 0}, r"workers must be a positive integer, got 0"),
        ({"name": "process", "workers": -2}, r"workers must be a positive integer, got -2"),
        ({"name": "process", "workers": True}, r"workers must be a positive integer, got True"),
        ({"name": "dask", "workers": 1.5}, r"workers must be a positive integer, got 1\.5"),
        ({"name": "local", "workers": 2}, r"runs one task at a time; got workers=2"),
    ],
)
def test_make_executor_refuses_bad_arguments_before_starting_anything(
    kwargs: dict[str, Any], message: str, before: set[int]
) -> None:
    with pytest.raises(ValueError, match=message), make_executor(**kwargs):
        pass
    assert _descendants() == before


def test_the_executor_names_are_the_three_offered() -> None:
    assert EXECUTOR_NAMES == ("local", "process", "dask")


# ------------------------------------------------------------------ local


def test_the_local_executor_runs_each_task_here_when_submitted(ctx: RunContext) -> None:
    with make_executor("local") as ex:
        assert (ex.name, ex.workers) == ("local", 1)
        assert isinstance(ex.executor, InlineExecutor)
        done = _submit(ex, ProductTask(2), ctx)
        assert done.done(), "already run when submit returns"
        outcome = done.result()
        assert outcome.result == _direct(ProductTask(2), ctx)
        assert outcome.worker.endswith(f":{os.getpid()}")
        failed = _submit(ex, ProductTask(3, fail=True), ctx).result()
        assert failed.failure is not None and failed.result is None
        assert failed.failure.error == "ValueError: seed 3 is refused"
    with make_executor("local", workers=1) as one:
        assert one.workers == 1


def test_the_inline_executor_keeps_an_exception_in_the_future_and_refuses_after_shutdown() -> None:
    ex = InlineExecutor()

    def boom() -> int:
        raise KeyError("boom")

    future = ex.submit(boom)
    assert future.done() and isinstance(future.exception(), KeyError)
    with pytest.raises(KeyError, match="boom"):
        future.result()
    assert ex.submit(divmod, 7, 2).result() == (3, 1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(divmod, 7, 2)


# ------------------------------------------------------------------ process pool


def test_a_process_pool_gives_the_direct_results_on_the_workers_asked_for(
    ctx: RunContext, before: set[int]
) -> None:
    tasks = [ProductTask(s) for s in (1, 2)]
    with make_executor("process", workers=2) as ex:
        assert (ex.name, ex.workers) == ("process", 2)
        assert isinstance(ex.executor, cf.ProcessPoolExecutor)
        met = [_submit(ex, MeetTask(n, 2), ctx) for n in ("a", "b")]
        runs = [_submit(ex, t, ctx) for t in tasks]
        failed = _submit(ex, ProductTask(5, fail=True), ctx).result()
        meetings = [f.result() for f in met]
        outcomes = [f.result() for f in runs]
        workers = _descendants() - before
    # two tasks that finish only side by side both finished: two workers at once
    assert [m.failure for m in meetings] == [None, None]
    pids = {from_json(Met, m.result).pid for m in meetings}
    assert len(pids) == 2 and os.getpid() not in pids
    assert pids <= workers
    for task, outcome in zip(tasks, outcomes, strict=True):
        assert outcome.failure is None
        assert outcome.result == _direct(task, ctx), "bit for bit what a direct run gives"
        assert int(outcome.worker.rsplit(":", 1)[1]) in pids
    assert failed.result is None and failed.failure is not None
    assert failed.failure.error == "ValueError: seed 5 is refused"
    # the exit shut the pool down: its workers have ended
    assert not any(_alive(pid) for pid in pids)


def test_a_pool_left_by_an_exception_ends_its_running_workers(
    ctx: RunContext, before: set[int]
) -> None:
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="stop"), make_executor("process", workers=1) as ex:
        pid = ex.executor.submit(os.getpid).result()
        sleeping = ex.executor.submit(time.sleep, 60)
        time.sleep(0.2)
        raise RuntimeError("stop")
    assert time.monotonic() - start < 30, "the running task was not waited for"
    assert not _alive(pid)
    # its future says so instead of hanging
    assert isinstance(sleeping.exception(timeout=0), BrokenProcessPool)


# ------------------------------------------------------------------ dask


@pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="Dask distributed is not installed"
)
def test_a_dask_cluster_gives_the_direct_results_on_the_workers_asked_for(
    ctx: RunContext, before: set[int]
) -> None:
    tasks = [ProductTask(s) for s in (1, 2)]
    with make_executor("dask", workers=2) as ex:
        assert (ex.name, ex.workers) == ("dask", 2)
        met = [_submit(ex, MeetTask(n, 2), ctx) for n in ("a", "b")]
        outcomes = [_submit(ex, t, ctx).result() for t in tasks]
        failed = _submit(ex, ProductTask(5, fail=True), ctx).result()
        meetings = [f.result() for f in met]
        workers = _descendants() - before
    assert [m.failure for m in meetings] == [None, None]
    pids = {from_json(Met, m.result).pid for m in meetings}
    assert len(pids) == 2 and pids <= workers
    for task, outcome in zip(tasks, outcomes, strict=True):
        assert outcome.failure is None
        assert outcome.result == _direct(task, ctx)
        assert int(outcome.worker.rsplit(":", 1)[1]) in pids
    assert failed.result is None and failed.failure is not None
    assert failed.failure.error == "ValueError: seed 5 is refused"
    # the cluster closed with the context: its workers are gone (the fixture checks
    # every process below this one)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)
