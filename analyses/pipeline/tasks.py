"""Tasks: the runs a study is made of, and how a worker runs one.

A task is a small frozen attrs record that names everything its result depends on
(``key()``; its hash names the stored result) and knows how to compute that result
(``run(ctx)``, returning a record of ``result_type``). The driver sends tasks to an
executor; a worker process calls :func:`execute`, which enters the task's environment
(one BLAS thread, one torch thread, OpenMP's passive wait policy for torch), runs it,
measures its wall and CPU time and turns any exception into a :class:`Failure`, so a
broken run is recorded with its error instead of stopping the pipeline.

Nothing here changes process-wide state at import time: the environment is entered
around each run and restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from analyses.pipeline.records import to_json

R = TypeVar("R", covariant=True)

__all__ = ["Failure", "Outcome", "RunContext", "Task", "execute", "run_environment"]


@attrs.frozen
class RunContext:
    """What a run needs besides its task and is not part of its result's name: where the
    results live (for checkpoints and parameter files) and whether to stay quiet."""

    out: str
    quiet: bool = True


class Task(Protocol[R]):
    """One run of a study.

    ``study``: the study it belongs to. ``torch``: whether the run uses torch (its
    worker then gets torch's environment too). ``result_type``: the record ``run``
    returns.
    """

    study: ClassVar[str]
    torch: ClassVar[bool]
    result_type: ClassVar[type[Any]]

    def priority(self) -> int:
        """Lower runs first when several tasks wait for a worker (the driver's choice,
        not part of the result)."""
        ...

    def key(self) -> dict[str, Any]:
        """Everything the result depends on, as JSON: its hash names the stored result."""
        ...

    def label(self) -> str:
        """A few words for progress lines, e.g. ``init glorot`` or ``search 3f2a rung 2``."""
        ...

    def run(self, ctx: RunContext) -> R:
        """Compute the result (in a worker)."""
        ...


@attrs.frozen
class Failure:
    """A run that raised: the exception and the end of its traceback."""

    error: str
    traceback: str = ""


@attrs.frozen
class Outcome:
    """What a worker sends back: the result as JSON, or the failure; wall and CPU seconds
    of the run itself, and where it ran."""

    result: Any
    failure: Failure | None
    wall_seconds: float
    cpu_seconds: float
    worker: str


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def run_environment(*, threads: int = 1, torch: bool = False) -> Iterator[None]:
    """The environment every run gets: ``threads`` BLAS (and OpenMP) threads, and for a
    torch run ``threads`` torch threads with OpenMP's passive wait policy (read by GNU
    OpenMP when torch is first imported, so it is set before that import), plus the
    cuBLAS workspace setting that deterministic CUDA matrix products need. Everything is
    restored on exit. One thread per run: runs go side by side, one per core, and
    OpenBLAS's and torch's sums depend on their thread count, so this also keeps every
    result the same bit for bit on any executor."""
    from threadpoolctl import threadpool_limits

    with contextlib.ExitStack() as stack:
        stack.enter_context(threadpool_limits(limits=threads))
        if torch:
            stack.enter_context(
                _env("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
            )
            stack.enter_context(
                _env(
                    "CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                )
            )
            import torch as torch_module

            previous = torch_module.get_num_threads()
            torch_module.set_num_threads(threads)
            stack.callback(torch_module.set_num_threads, previous)
        yield


def _worker_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def execute(task: Task[Any], ctx: RunContext) -> Outcome:
    """Run ``task`` in its environment and report what happened; never raises for a
    failing run (the Outcome holds the failure)."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        with run_environment(threads=1, torch=type(task).torch):
            result = to_json(task.run(ctx))
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc))[-4000:]
        if not ctx.quiet:
            print(f"{task.label()} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return Outcome(
            result=None,
            failure=Failure(error=f"{type(exc).__name__}: {exc}", traceback=tb),
            wall_seconds=time.perf_counter() - wall0,
            cpu_seconds=time.process_time() - cpu0,
            worker=_worker_name(),
        )
    return Outcome(
        result=result,
        failure=None,
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=time.process_time() - cpu0,
        worker=_worker_name(),
    )
