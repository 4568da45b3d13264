"""Tasks: the runs a study is made of, and how a worker runs one.

A task is a small frozen attrs record that names everything its result depends on and
knows how to compute that result (``run(ctx)``, returning a record of
``result_type``). Its key, whose hash names the stored result, is built one way for
every task (:class:`KeyedTask`): its ``KIND``, its ``VERSION`` and every field of the
record, except fields marked as not part of its identity (:func:`not_identity`), so a
field added to a task can never be forgotten in its key. The driver sends tasks to an
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
from typing import ClassVar, Final, Generic, Literal, Protocol, TypeVar

import attrs

from analyses.pipeline.records import Json, to_json

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

__all__ = [
    "IDENTITY",
    "NOT_IDENTITY",
    "UNLESS_DEFAULT",
    "Failure",
    "KeyedTask",
    "Outcome",
    "RunContext",
    "Task",
    "execute",
    "identity_fields",
    "run_environment",
    "run_key",
]

IDENTITY: Final = "fmlp.identity"
"""The metadata entry that says whether a task's field is part of its run's identity:
absent (it is), ``False`` (it is not: a scheduling hint or a label), or
``"unless-default"`` (it is, except while it holds its default: a field added to a task
after runs were stored, so that their keys stay as they were)."""

Identity = Literal[True, False, "unless-default"]


NOT_IDENTITY: Final = {IDENTITY: False}
"""The metadata of a task field that is not part of its run's identity (a label, a
scheduling hint): ``attrs.field(default=..., eq=False, metadata=NOT_IDENTITY)``."""
UNLESS_DEFAULT: Final = {IDENTITY: "unless-default"}
"""The metadata of a task field that is part of its run's identity except while it
holds its default, so that runs stored before the field existed keep their keys:
``attrs.field(default=..., kw_only=True, metadata=UNLESS_DEFAULT)``."""


def _identity(field: attrs.Attribute[object]) -> Identity:
    value = field.metadata.get(IDENTITY, True)
    if value not in (True, False, "unless-default"):
        raise ValueError(f"field {field.name}: {IDENTITY} must be True, False or 'unless-default'")
    return value  # type: ignore[no-any-return]  # checked just above


def identity_fields(cls: type[object]) -> tuple[str, ...]:
    """The names of the fields of the task record ``cls`` that can be part of its key."""
    fields: tuple[attrs.Attribute[object], ...] = attrs.fields(cls)  # type: ignore[arg-type]  # an attrs class
    return tuple(f.name for f in fields if _identity(f) is not False)


def run_key(task: object, kind: str, version: int) -> dict[str, Json]:
    """``{"kind": kind, "version": version, <field>: <value as JSON>...}`` over the
    fields of the attrs record ``task`` that are part of its identity."""
    key: dict[str, Json] = {"kind": kind, "version": version}
    fields: tuple[attrs.Attribute[object], ...] = attrs.fields(type(task))  # type: ignore[arg-type]  # an attrs instance
    for f in fields:
        rule = _identity(f)
        value = getattr(task, f.name)
        if rule is False or (rule == "unless-default" and value == f.default):
            continue
        if f.name in key:
            raise ValueError(f"{type(task).__name__} has a field named {f.name!r}, as the key")
        key[f.name] = to_json(value)
    return key


@attrs.frozen
class RunContext:
    """What a run needs besides its task and is not part of its result's name: where the
    results live (for checkpoints and parameter files) and whether to stay quiet."""

    out: str
    quiet: bool = True


class Task(Protocol[R_co]):
    """One run of a study.

    ``study``: the study it belongs to. ``torch``: whether the run uses torch (its
    worker then gets torch's environment too). ``result_type``: the record ``run``
    returns.
    """

    study: ClassVar[str]
    torch: ClassVar[bool]

    @property
    def result_type(self) -> type[R_co]: ...

    def priority(self) -> int:
        """Among the waiting tasks of one study, lower runs first (the driver's choice,
        not part of the result; between studies, the study's priority decides)."""
        ...

    def key(self) -> dict[str, Json]:
        """Everything the result depends on, as JSON: its hash names the stored result."""
        ...

    def label(self) -> str:
        """A few words for progress lines, e.g. ``init glorot`` or ``search 3f2a rung 2``."""
        ...

    def run(self, ctx: RunContext) -> R_co:
        """Compute the result (in a worker)."""
        ...


class KeyedTask:
    """The one way a task is keyed: a base of the study's frozen attrs task records.

    ``KIND`` names the kind of run and ``VERSION`` is bumped whenever the code that
    computes its result changes what it returns; the key is :func:`run_key` over every
    field of the record except those made with :func:`not_identity`. Its priority among
    the study's waiting tasks is 0 unless the task says otherwise.
    """

    KIND: ClassVar[str]
    VERSION: ClassVar[int]

    def key(self) -> dict[str, Json]:
        return run_key(self, type(self).KIND, type(self).VERSION)

    def priority(self) -> int:
        return 0


@attrs.frozen
class Failure:
    """A run that raised: the exception and the end of its traceback."""

    error: str
    traceback: str = ""


@attrs.frozen
class Outcome(Generic[R]):
    """What a worker sends back for a task whose result is an ``R``: the result as JSON
    (the store reads it back as an ``R``), or the failure; wall and CPU seconds of the
    run itself, and where it ran."""

    result: Json
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


def execute(task: Task[R], ctx: RunContext) -> Outcome[R]:
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
        return Outcome[R](
            result=None,
            failure=Failure(error=f"{type(exc).__name__}: {exc}", traceback=tb),
            wall_seconds=time.perf_counter() - wall0,
            cpu_seconds=time.process_time() - cpu0,
            worker=_worker_name(),
        )
    return Outcome[R](
        result=result,
        failure=None,
        wall_seconds=time.perf_counter() - wall0,
        cpu_seconds=time.process_time() - cpu0,
        worker=_worker_name(),
    )
