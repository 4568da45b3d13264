"""The executors the pipeline runs on, all ``concurrent.futures.Executor``s.

- ``process`` (the default): a pool of spawned worker processes, one per core. Each
  run enters one BLAS thread and one torch thread itself (``tasks.run_environment``),
  so the workers keep every core busy without oversubscribing it.
- ``local``: every run in this process, one at a time (for debugging and small tests).
- ``dask``: Dask distributed, a running scheduler (``--scheduler tcp://host:8786``) or,
  without one, a ``LocalCluster`` of single-threaded worker processes.
  ``Client.get_executor()`` is a ``concurrent.futures.Executor``, so the driver does
  not change. Dask is optional: ``pip install '.[cluster]'``.

The pool's workers die with their driver (``signals.die_with_parent``), and a driver
that stops on a signal or an error ends them instead of waiting for their runs.

The workers load their data by name from their own cache, so a task is a few hundred
bytes; runs that continue from a checkpoint read it from the results folder, which the
workers of a cluster must share with the driver.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal, ParamSpec, TypeVar, get_args

import attrs

from analyses.pipeline.signals import die_with_parent
from fmlp.types import is_int

T = TypeVar("T")
P = ParamSpec("P")

ExecutorName = Literal["local", "process", "dask"]
EXECUTOR_NAMES: Final[tuple[str, ...]] = get_args(ExecutorName)

DASK_RETRIES: Final = 2
"""Dask retries of a task that raised in a way the run itself did not catch (a worker
that could not load its data, say). A task whose worker died is rescheduled by the
scheduler on its own (up to its ``allowed-failures``, 3 by default)."""

__all__ = ["EXECUTOR_NAMES", "ExecutorName", "InlineExecutor", "PipelineExecutor", "make_executor"]


class InlineExecutor(cf.Executor):
    """An Executor that runs each task in the calling thread when it is submitted.

    The returned future is already done: it holds the result, or the exception the
    task raised (``future.result()`` re-raises it), exactly as a pool would report it.
    """

    def __init__(self) -> None:
        self._shutdown = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> cf.Future[T]:
        if self._shutdown:
            raise RuntimeError("cannot submit to an InlineExecutor after shutdown")
        future: cf.Future[T] = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # as a pool would: the future holds it, result() re-raises
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


@attrs.frozen
class PipelineExecutor:
    """An executor, its name and how many runs it takes at once."""

    executor: cf.Executor
    name: str
    workers: int


def _check_workers(workers: int | None) -> None:
    if workers is not None and (not is_int(workers) or workers <= 0):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


@contextmanager
def make_executor(
    name: str = "process", *, workers: int | None = None, scheduler: str | None = None
) -> Iterator[PipelineExecutor]:
    """The executor named ``name`` ("process", "local" or "dask"), shut down on exit.

    ``workers``: processes of the pool or of the LocalCluster (default: the number of
    cores). ``scheduler``: the address of a running Dask scheduler (dask only).
    """
    if name not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTOR_NAMES)}")
    if scheduler is not None and name != "dask":
        raise ValueError(f"a scheduler address is for --executor dask, not {name!r}")
    _check_workers(workers)
    if name == "local":
        if workers not in (None, 1):
            raise ValueError(
                f"the local executor runs one task at a time; got workers={workers} "
                "(use --executor process)"
            )
        yield PipelineExecutor(InlineExecutor(), "local", 1)
        return
    if name == "dask":
        with _dask_executor(workers=workers, scheduler=scheduler) as ex:
            yield ex
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    pool = cf.ProcessPoolExecutor(
        max_workers=n,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded BLAS
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        yield PipelineExecutor(pool, "process", n)
    except BaseException:
        # Stopped by a signal, or the driver gave up: the runs in progress are not
        # waited for (a full run can take minutes); finished ones are stored already.
        end_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def end_workers(pool: cf.ProcessPoolExecutor, *, grace: float = 3.0) -> None:
    """Terminate ``pool``'s worker processes (SIGTERM, then SIGKILL after ``grace``
    seconds) and wait for them, so that nothing of the pool outlives its driver."""
    processes = list(pool._processes.values())  # no public way to reach them before 3.14
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")  # optional: typed as Any on purpose
    except ImportError as exc:
        raise ValueError(
            "the dask executor needs Dask distributed: pip install '.[cluster]' "
            "(or pip install 'dask[distributed]')"
        ) from exc


@contextmanager
def _dask_executor(*, workers: int | None, scheduler: str | None) -> Iterator[PipelineExecutor]:
    distributed = _import_distributed()
    cluster: Any = None
    if scheduler is None:
        n = workers if workers is not None else (os.cpu_count() or 1)
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler!r}: {exc}; is it running?"
            ) from exc
    try:
        info = client.scheduler_info()
        threads = sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())
        executor = client.get_executor(pure=False, retries=DASK_RETRIES)
        yield PipelineExecutor(executor, "dask", threads or (workers or 1))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
