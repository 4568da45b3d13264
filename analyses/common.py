"""What every study shares: its data, a resumable results store, figures, progress bars
and a record of the machine. Studies import this; fmlp itself never does."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import numpy as np

from fmlp.atomic import atomic_write_bytes
from fmlp.types import FloatArray, IntArray

T = TypeVar("T")

DEFAULT_OUT: Final = Path("results")
QUICK_TRAIN: Final = 600
QUICK_EVAL: Final = 200


# --------------------------------------------------------------------------- data


@attrs.frozen(eq=False)
class StudyData:
    """The three splits a study uses. x: (N, 784) in [0, 1]; y: int64 (N,)."""

    name: str
    x_train: FloatArray
    y_train: IntArray
    x_valid: FloatArray
    y_valid: IntArray
    x_test: FloatArray
    y_test: IntArray

    def astype(self, dtype: Any) -> StudyData:
        """The same data with images cast to ``dtype`` (labels unchanged)."""
        return attrs.evolve(
            self,
            x_train=np.ascontiguousarray(self.x_train, dtype=dtype),
            x_valid=np.ascontiguousarray(self.x_valid, dtype=dtype),
            x_test=np.ascontiguousarray(self.x_test, dtype=dtype),
        )

    def head(self, n_train: int, n_eval: int) -> StudyData:
        """The first ``n_train`` training and ``n_eval`` validation/test samples."""
        return attrs.evolve(
            self,
            name=f"{self.name}[:{n_train}]",
            x_train=self.x_train[:n_train],
            y_train=self.y_train[:n_train],
            x_valid=self.x_valid[:n_eval],
            y_valid=self.y_valid[:n_eval],
            x_test=self.x_test[:n_eval],
            y_test=self.y_test[:n_eval],
        )

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "valid": len(self.y_valid), "test": len(self.y_test)}


def load_study_data(
    name: str = "mnist", *, quick: bool = False, dtype: Any = np.float64
) -> StudyData:
    """MNIST (or another dataset fmlp.data knows) as StudyData; ``quick`` keeps the first
    600 training and 200 validation/test samples."""
    import fmlp.data as fdata

    ds = fdata.load(name, dtype=dtype)
    out = StudyData(
        name=name,
        x_train=ds.train.x,
        y_train=ds.train.y,
        x_valid=ds.valid.x,
        y_valid=ds.valid.y,
        x_test=ds.test.x,
        y_test=ds.test.y,
    )
    return out.head(QUICK_TRAIN, QUICK_EVAL) if quick else out


def synthetic_data(
    n_train: int = 600,
    n_eval: int = 200,
    *,
    n_features: int = 784,
    n_classes: int = 10,
    seed: int = 0,
    dtype: Any = np.float64,
) -> StudyData:
    """A small learnable stand-in for MNIST (for tests): each class is a noisy copy of
    its own random prototype in [0, 1]^n_features."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((n_classes, n_features))

    def draw(n: int) -> tuple[FloatArray, IntArray]:
        y = rng.integers(0, n_classes, n)
        x = np.clip(prototypes[y] + 0.3 * rng.standard_normal((n, n_features)), 0.0, 1.0)
        return np.ascontiguousarray(x, dtype=dtype), y.astype(np.int64)

    (xt, yt), (xv, yv), (xs, ys) = draw(n_train), draw(n_eval), draw(n_eval)
    return StudyData("synthetic", xt, yt, xv, yv, xs, ys)


# ------------------------------------------------------------------ atomic files


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_jsonable(value: Any) -> Any:
    """Arrays to lists and numpy scalars to Python; NaN and inf are kept (JSON5-style
    NaN/Infinity, which Python's json reads back)."""
    return json.loads(json.dumps(value, default=_json_default))


def atomic_write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, default=_json_default, indent=1, sort_keys=True)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable name for a configuration: sha256 of its canonical JSON."""
    text = json.dumps(to_jsonable(dict(config)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class ResultStore:
    """One JSON file per finished run under ``<out>/<study>/runs/<hash>.json``, where the
    hash names the run's full configuration. A study asks ``get`` before training and
    skips runs already done, so an interrupted study resumes where it stopped."""

    out: Path
    study: str

    @property
    def folder(self) -> Path:
        return self.out / self.study

    def path(self, config: Mapping[str, Any]) -> Path:
        return self.folder / "runs" / f"{config_hash(config)}.json"

    def get(self, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result of ``config``, or None. A corrupt file counts as absent."""
        path = self.path(config)
        if not path.exists():
            return None
        try:
            record = read_json(path)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(record, dict) or record.get("config") != to_jsonable(dict(config)):
            return None
        result = record.get("result")
        return result if isinstance(result, dict) else None

    def put(
        self, config: Mapping[str, Any], result: Mapping[str, Any], *, seconds: float | None = None
    ) -> None:
        record: dict[str, Any] = {"config": dict(config), "result": dict(result)}
        if seconds is not None:
            record["seconds"] = seconds
        atomic_write_json(self.path(config), record)

    def seconds(self, config: Mapping[str, Any]) -> float:
        """How long ``config``'s stored run took to compute (0 when not recorded)."""
        try:
            record = read_json(self.path(config))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return 0.0
        value = record.get("seconds") if isinstance(record, dict) else None
        return float(value) if isinstance(value, (int, float)) else 0.0

    def run(
        self, config: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """The stored result of ``config``, or ``compute()`` stored then returned.
        The flag says whether it was computed now."""
        cached = self.get(config)
        if cached is not None:
            return cached, False
        start = time.perf_counter()
        result = dict(to_jsonable(dict(compute())))
        self.put(config, result, seconds=time.perf_counter() - start)
        return result, True

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """The study's summary, ``<out>/<study>/summary.json``, which the report reads."""
        path = self.folder / "summary.json"
        atomic_write_json(path, dict(summary))
        return path


# ------------------------------------------------------------------------ figures


def save_figure(fig: Any, out_dir: Path, name: str) -> list[Path]:
    """Save a matplotlib figure as ``name.png`` and ``name.pdf`` (fixed metadata, so the
    same results give the same bytes), atomically; returns both paths."""
    import io

    paths = []
    for ext, meta in (
        ("png", {"Software": None}),
        ("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
    ):
        buf = io.BytesIO()
        fig.savefig(
            buf, format=ext, metadata=meta, dpi=150 if ext == "png" else None, bbox_inches="tight"
        )
        path = out_dir / f"{name}.{ext}"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def use_agg() -> None:
    """Render without a display."""
    import matplotlib

    matplotlib.use("Agg")


# ---------------------------------------------------------------------- progress


def progress(
    items: Iterable[T], *, total: int | None = None, desc: str = "", quiet: bool = False
) -> Iterator[T]:
    """Iterate with a tqdm progress bar on stderr unless ``quiet``."""
    if quiet:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------------- machine


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries numpy loaded, with their kernel (``architecture``) and threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [
        {k: info.get(k) for k in keys}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine_info() -> dict[str, Any]:
    """Versions and machine facts recorded beside every study's results."""
    import fmlp

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fmlp": fmlp.__version__,
        "fmlp_commit": git_commit(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "blas": blas_info(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:  # the installed version, without paying for importing torch
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = None
    return info


class Timer:
    """Wall time of a block: ``with Timer() as t: ...; t.seconds``."""

    seconds: float = math.nan

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


# ----------------------------------------------------------------------- command line


def study_parser(description: str) -> argparse.ArgumentParser:
    """The options every study takes: --out, --quick, --quiet, --dataset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a few hundred samples, 1-2 epochs: a smoke run"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    return parser
