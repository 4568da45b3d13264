"""Sweeps: a list of configurations mapped over a ``concurrent.futures.Executor``.

A task is a small picklable configuration record (anything with ``to_dict()``); a
worker runs a top-level function ``run(config) -> dict`` that loads its own data by
name and returns a small result record. The driver -- this module -- keeps the
results: each is written atomically by a :class:`~analyses.common.ResultStore` as it
arrives, so an interrupted sweep loses no finished run, and a rerun skips every
configuration whose result is already stored.

The executor is pluggable: ``InlineExecutor`` (the default: sequential, in this
process), a process pool whose workers limit their BLAS threads so that workers x
threads = cores, or Dask distributed (``Client.get_executor()`` is a
``concurrent.futures.Executor``: a running scheduler, or a ``LocalCluster``), so a sweep
moves to a cluster without changing the study. Dask is optional: ``pip install
.[cluster]``.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import (
    Any,
    Final,
    Generic,
    Literal,
    ParamSpec,
    Protocol,
    TypeVar,
    get_args,
)

import attrs

from analyses.common import ResultStore, config_hash, to_jsonable
from fmlp.types import is_int

T = TypeVar("T")
P = ParamSpec("P")

ExecutorName = Literal["local", "process", "dask"]
EXECUTOR_NAMES: Final[tuple[str, ...]] = get_args(ExecutorName)


class Config(Protocol):
    """What a sweep needs of a configuration: a JSON-able dict that names it fully."""

    def to_dict(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=Config)


# ----------------------------------------------------------------------- executors


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


def limit_blas_threads(threads: int) -> None:
    """Process initializer: limit the BLAS (and OpenMP) thread pools of this process to
    ``threads`` threads. The limit stays in force for the life of the process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def blas_threads_for(workers: int, cores: int | None = None) -> int:
    """BLAS threads per worker so that workers x threads <= cores (at least 1)."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


@attrs.frozen
class SweepExecutor:
    """An executor with how many tasks the driver keeps in flight on it.

    ``max_in_flight`` is 1 for the inline executor (so each result is written before
    the next run starts) and about twice the workers for a pool (so no worker idles
    while the driver writes)."""

    executor: cf.Executor
    max_in_flight: int
    name: str
    workers: int
    blas_threads: int | None


DASK_RETRIES: Final = 2
"""Dask retries of a task that raised (run functions return their own failures, so
this covers what the executor met: a worker that could not load its data, say). A
task whose worker died is rescheduled by the scheduler on its own (up to its
``allowed-failures``, 3 by default)."""


@contextmanager
def make_executor(
    name: str = "local",
    *,
    workers: int | None = None,
    blas_threads: int | None = None,
    scheduler: str | None = None,
) -> Iterator[SweepExecutor]:
    """The executor named ``name`` ("local", "process" or "dask"), shut down on exit.

    local: runs in this process; ``blas_threads`` (default: leave BLAS as it is)
    limits this process's BLAS threads for the duration. process: a pool of
    ``workers`` spawned processes (default: the number of cores), each limiting its
    BLAS threads to ``blas_threads`` (default: cores // workers). dask: a client of
    the scheduler at ``scheduler`` (e.g. "tcp://10.0.0.5:8786"), or, without one, of
    a new ``LocalCluster`` of ``workers`` single-threaded worker processes; Dask's
    nannies start workers with one BLAS thread.
    """
    if name not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTOR_NAMES)}")
    if scheduler is not None and name != "dask":
        raise ValueError(f"a scheduler address is for --executor dask, not {name!r}")
    for label, value in (("workers", workers), ("blas_threads", blas_threads)):
        if value is not None and (not is_int(value) or value <= 0):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if name == "local":
        if workers not in (None, 1):
            raise ValueError(
                f"the local executor runs one task at a time; got workers={workers} (use --executor process)"
            )
        if blas_threads is None:
            yield SweepExecutor(InlineExecutor(), 1, "local", 1, None)
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=blas_threads):
            yield SweepExecutor(InlineExecutor(), 1, "local", 1, blas_threads)
        return
    if name == "dask":
        with _dask_executor(workers=workers, scheduler=scheduler) as ex:
            yield ex
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    threads = blas_threads if blas_threads is not None else blas_threads_for(n)
    pool = cf.ProcessPoolExecutor(
        max_workers=n,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a threaded BLAS
        initializer=limit_blas_threads,
        initargs=(threads,),
    )
    try:
        yield SweepExecutor(pool, 2 * n, "process", n, threads)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")  # optional: typed as Any on purpose
    except ImportError as exc:
        raise ValueError(
            "the dask executor needs Dask distributed: pip install '.[cluster]' "
            "(or pip install 'dask[distributed]')"
        ) from exc


@contextmanager
def _dask_executor(*, workers: int | None, scheduler: str | None) -> Iterator[SweepExecutor]:
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
        n = len(client.scheduler_info().get("workers", {})) or (workers or 1)
        executor = client.get_executor(pure=False, retries=DASK_RETRIES)
        yield SweepExecutor(executor, 2 * n, "dask", n, 1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------- the driver


@attrs.frozen
class SweepOutcome(Generic[C]):
    """The sweep's results in the order of its configurations.

    results[i] is the stored result of configs[i] or, where the executor could not run
    the task at all (a worker died, the task could not be sent), a failure record that
    is NOT stored, so a rerun tries that configuration again. computed: the indices run
    now (not found in the store)."""

    configs: tuple[C, ...]
    results: tuple[dict[str, Any], ...]
    computed: tuple[int, ...]
    lost: tuple[int, ...]


def executor_failure(exc: BaseException) -> dict[str, Any]:
    """The record of a task the executor could not run (not the configuration's fault)."""
    return {
        "status": "failed",
        "error": f"executor: {type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
        "stored": False,
    }


def run_sweep(
    run: Callable[[C], Mapping[str, Any]],
    configs: Sequence[C],
    *,
    store: ResultStore,
    executor: SweepExecutor | cf.Executor | None = None,
    max_in_flight: int | None = None,
    on_result: Callable[[int, C, dict[str, Any], bool], None] | None = None,
    timeout: float | None = None,
) -> SweepOutcome[C]:
    """Map ``run`` over ``configs`` on ``executor`` (default: inline, sequential),
    writing each result to ``store`` as it arrives and skipping those already there.

    ``run`` must be a picklable top-level function for a process or cluster executor;
    it should catch its own failures and return them as a result (they are stored).
    ``on_result(index, config, result, computed_now)`` is called for every config,
    stored or new, in the order results become known. Duplicate configurations (same
    hash) are run once. ``timeout`` (seconds) bounds the whole sweep: past it a
    TimeoutError names what is still outstanding (what finished is stored).
    """
    configs = tuple(configs)
    if isinstance(executor, SweepExecutor):
        window = max_in_flight or executor.max_in_flight
        ex: cf.Executor = executor.executor
    elif executor is None:
        window, ex = 1, InlineExecutor()
    else:
        window, ex = max_in_flight or 2 * (os.cpu_count() or 1), executor
    if window <= 0:
        raise ValueError(f"max_in_flight must be positive, got {window}")
    hashes = [config_hash(c.to_dict()) for c in configs]
    results: dict[int, dict[str, Any]] = {}
    first_of: dict[str, int] = {}
    duplicates: dict[int, int] = {}
    pending: list[int] = []
    for i, (c, h) in enumerate(zip(configs, hashes)):
        if h in first_of:
            duplicates[i] = first_of[h]
            continue
        first_of[h] = i
        cached = store.get(c.to_dict())
        if cached is None:
            pending.append(i)
        else:
            results[i] = cached
            if on_result is not None:
                on_result(i, c, cached, False)

    computed: list[int] = []
    lost: list[int] = []
    todo = iter(pending)
    in_flight: dict[cf.Future[Mapping[str, Any]], int] = {}

    def fill() -> None:
        while len(in_flight) < window:
            i = next(todo, None)
            if i is None:
                return
            try:
                in_flight[ex.submit(run, configs[i])] = i
            except Exception as exc:  # e.g. a broken pool refuses new work
                failed: cf.Future[Mapping[str, Any]] = cf.Future()
                failed.set_exception(exc)
                in_flight[failed] = i

    deadline = None if timeout is None else time.monotonic() + timeout
    fill()
    while in_flight:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = cf.wait(in_flight, timeout=left, return_when=cf.FIRST_COMPLETED)
        if not done:
            outstanding = sorted(in_flight.values()) + [i for i in todo]
            raise TimeoutError(
                f"the sweep did not finish within {timeout} s: configurations {outstanding} are outstanding "
                "(finished ones are stored; a rerun resumes)"
            )
        for future in sorted(done, key=lambda f: in_flight[f]):
            i = in_flight.pop(future)
            try:
                result = dict(to_jsonable(dict(future.result())))
            except Exception as exc:
                result = executor_failure(exc)
                lost.append(i)
            else:
                store.put(configs[i].to_dict(), result)
                computed.append(i)
            results[i] = result
            if on_result is not None:
                on_result(i, configs[i], result, True)
        fill()
    for i, j in duplicates.items():
        results[i] = results[j]
    return SweepOutcome(
        configs=configs,
        results=tuple(results[i] for i in range(len(configs))),
        computed=tuple(sorted(computed)),
        lost=tuple(sorted(lost)),
    )
