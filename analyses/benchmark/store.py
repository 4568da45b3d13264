"""Where the benchmark keeps what it measured: one JSON file per measured cell under
``<out>/benchmark/runs/<hash>.json`` (named by the hash of the cell's configuration),
each setting's record, and ``summary.json``; all written atomically. A rerun reads
finished cells back instead of measuring them again."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from analyses.pipeline.records import key_hash
from fmlp.atomic import atomic_write_text


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_jsonable(value: Any) -> Any:
    """Arrays to lists and numpy scalars to Python; NaN and inf are kept."""
    return json.loads(json.dumps(value, default=_json_default))


def atomic_write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, default=_json_default, indent=1, sort_keys=True)
    atomic_write_text(path, text + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@attrs.frozen
class ResultStore:
    """One JSON file per finished cell under ``<out>/<study>/runs/<hash>.json``; ``get``
    answers a cell measured before, so an interrupted benchmark resumes."""

    out: Path
    study: str

    @property
    def folder(self) -> Path:
        return self.out / self.study

    def path(self, config: Mapping[str, Any]) -> Path:
        return self.folder / "runs" / f"{key_hash(to_jsonable(dict(config)))}.json"

    def get(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result of ``config``, or None. A corrupt file counts as absent."""
        try:
            record = read_json(self.path(config))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("config") != to_jsonable(dict(config)):
            return None
        result = record.get("result")
        return result if isinstance(result, dict) else None

    def run(
        self, config: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """The stored result of ``config``, or ``compute()`` stored then returned; the
        flag says whether it was computed now."""
        cached = self.get(config)
        if cached is not None:
            return cached, False
        start = time.perf_counter()
        result = dict(to_jsonable(dict(compute())))
        record = {"config": dict(config), "result": result, "seconds": time.perf_counter() - start}
        atomic_write_json(self.path(config), record)
        return result, True

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        path = self.folder / "summary.json"
        atomic_write_json(path, dict(summary))
        return path


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The options --out, --quick, --quiet, --dataset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results folder (default: results)"
    )
    parser.add_argument("--quick", action="store_true", help="a few hundred samples: a smoke run")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    return parser


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries numpy loaded, with their kernel (``architecture``) and threads."""
    from analyses.common import machine_info

    return [attrs.asdict(b) for b in machine_info().blas]
