"""The results folder: every finished run, every study's summary, written atomically.

Layout under ``out``::

    <study>/runs/<hash>.json     one finished run: its task key, its result or failure,
                                 its wall and CPU seconds
    <study>/summary.json         the study's typed summary (what the report reads)
    <study>/error.json           why the study failed in the last invocation that ran
                                 it (absent once it succeeds)
    <study>/...                  figures, tables, checkpoints of that study
    pipeline/timings.json        the wall time, CPU time and core utilization of every
                                 invocation that computed something

A run file is named by the hash of its task's key, and is used again only when the key
stored inside matches the task exactly, so a rerun computes nothing that is stored and
never mistakes another run's result for this one's. A corrupt file counts as missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Generic, TypeVar

import attrs

from analyses.pipeline.records import (
    Json,
    JsonRecord,
    RecordError,
    from_json,
    key_hash,
    to_json,
)
from analyses.pipeline.tasks import Failure, Outcome, Task
from fmlp.atomic import atomic_write_text

S = TypeVar("S", bound=JsonRecord)
R = TypeVar("R")

__all__ = ["ResultStore", "StoredRun", "read_json", "write_json"]


def write_json(path: Path, value: object) -> Path:
    """``value`` as indented JSON with sorted keys, atomically."""
    text = json.dumps(to_json(value), indent=1, sort_keys=True, allow_nan=True)
    return atomic_write_text(path, text + "\n")


def read_json(path: Path) -> Json:
    value: Json = json.loads(path.read_text(encoding="utf-8"))
    return value


@attrs.frozen
class StoredRun(Generic[R]):
    """A finished run as stored: its result (an ``R``; None when it failed) or its
    failure, and its cost."""

    result: R | None
    failure: Failure | None
    wall_seconds: float
    cpu_seconds: float


def _seconds(value: Json) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


@attrs.frozen
class ResultStore:
    """The results folder ``out``."""

    out: Path

    def folder(self, study: str) -> Path:
        return self.out / study

    def run_path(self, task: Task[object]) -> Path:
        return self.folder(type(task).study) / "runs" / f"{key_hash(task.key())}.json"

    def get(self, task: Task[R]) -> StoredRun[R] | None:
        """The stored run of ``task``, or None (absent, corrupt, or for another key)."""
        path = self.run_path(task)
        try:
            record = read_json(path)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("task") != to_json(task.key()):
            return None
        try:
            failure = (
                from_json(Failure, record["failure"]) if record.get("failure") is not None else None
            )
            result = None if failure is not None else from_json(task.result_type, record["result"])
            return StoredRun[R](
                result=result,
                failure=failure,
                wall_seconds=_seconds(record.get("wall_seconds")),
                cpu_seconds=_seconds(record.get("cpu_seconds")),
            )
        except (KeyError, TypeError, RecordError):
            return None

    def put(self, task: Task[R], outcome: Outcome[R]) -> StoredRun[R]:
        """Store what a worker sent back; returns it typed."""
        failure = outcome.failure
        result = None if failure is not None else from_json(task.result_type, outcome.result)
        write_json(
            self.run_path(task),
            {
                "task": task.key(),
                "result": outcome.result if failure is None else None,
                "failure": failure,
                "wall_seconds": outcome.wall_seconds,
                "cpu_seconds": outcome.cpu_seconds,
                "worker": outcome.worker,
            },
        )
        return StoredRun[R](result, failure, outcome.wall_seconds, outcome.cpu_seconds)

    def summary_path(self, study: str) -> Path:
        return self.folder(study) / "summary.json"

    def write_summary(self, study: str, summary: JsonRecord) -> Path:
        return write_json(self.summary_path(study), summary.to_json())

    def drop_summary(self, study: str) -> None:
        """Remove the summary of an earlier invocation (the study failed this time)."""
        self.summary_path(study).unlink(missing_ok=True)

    def error_path(self, study: str) -> Path:
        return self.folder(study) / "error.json"

    def write_error(self, study: str, message: str) -> Path:
        """Why ``study`` failed, for the report to say."""
        return write_json(self.error_path(study), {"error": message})

    def clear_error(self, study: str) -> None:
        self.error_path(study).unlink(missing_ok=True)

    def read_error(self, study: str) -> str | None:
        """Why ``study`` failed in the last invocation that ran it; None when it did not
        (or the file cannot be read)."""
        try:
            value = read_json(self.error_path(study))
        except (OSError, ValueError):
            return None
        error = value.get("error") if isinstance(value, dict) else None
        return error if isinstance(error, str) else None

    def read_summary(self, study: str, cls: type[S]) -> S:
        """The summary of ``study``; FileNotFoundError when it has not run, RecordError
        when the file is not one this code can read."""
        path = self.summary_path(study)
        try:
            value = read_json(path)
        except ValueError as exc:
            raise RecordError(f"{path} is not valid JSON ({exc}); delete it and rerun") from exc
        try:
            return cls.from_json(value)
        except RecordError as exc:
            raise RecordError(f"{path}: {exc}") from exc
