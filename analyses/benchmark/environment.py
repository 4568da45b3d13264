"""The environment a measurement runs in: the OpenBLAS variables and the environment of a
child run under another OpenBLAS setting, the thread counts of numpy's BLAS, torch and
XLA (and ``limited_threads``, which sets and restores them), and the load average."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from analyses.common import blas_info

OPENBLAS_VARS: Final = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def load_avg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


@contextlib.contextmanager
def limited_threads(threads: int | None, *, import_torch: bool = True) -> Iterator[list[str]]:
    """Limit every framework of this process to ``threads`` threads inside the block
    (None: the libraries' defaults) and restore the previous settings after it: numpy's
    BLAS through threadpoolctl, torch's intra-op pool (torch is imported first unless
    ``import_torch`` is false: importing it costs about 0.7 GB of resident memory, which
    a memory child must not pay; TorchLoop sets its threads itself), and XLA's CPU pool
    through XLA_FLAGS, which only works before jax is imported and only for 1 thread.
    Yields notes on what could not be applied."""
    if threads is None:
        yield []
        return
    if threads <= 0:
        raise SystemExit(f"--threads must be a positive integer, got {threads}")
    notes: list[str] = []
    restore: list[Callable[[], None]] = []
    try:
        from threadpoolctl import threadpool_limits

        restore.append(threadpool_limits(limits=threads, user_api="blas").restore_original_limits)
    except ImportError:
        notes.append("threadpoolctl is not installed: numpy's BLAS keeps its default threads")
    if import_torch and torch_threads() is not None:
        torch = sys.modules["torch"]
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        restore.append(lambda: torch.set_num_threads(before))
    xla = os.environ.get("XLA_FLAGS")
    if threads == 1 and "jax" not in sys.modules:
        one = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = f"{xla} {one}" if xla else one

        def undo_xla() -> None:
            if xla is None:
                os.environ.pop("XLA_FLAGS", None)
            else:
                os.environ["XLA_FLAGS"] = xla

        restore.append(undo_xla)
    elif "jax" in sys.modules:
        notes.append("jax was imported before the thread limit: it keeps its CPU threads")
    else:
        notes.append(
            f"jax keeps XLA's default CPU threads (XLA has a flag for 1 thread, not {threads})"
        )
    try:
        yield notes
    finally:
        for undo in reversed(restore):
            undo()


def threads_of_blas() -> int:
    """numpy's BLAS thread count (the first BLAS threadpoolctl reports), else the cores."""
    for info in blas_info():
        if info.get("num_threads"):
            return int(info["num_threads"])
    return os.cpu_count() or 1


def openblas_env(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    env = os.environ if env is None else env
    return {k: env.get(k) for k in OPENBLAS_VARS}


def child_env(setting: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child run: ``native`` drops both OpenBLAS variables,
    ``coretype-NAME`` sets OPENBLAS_CORETYPE=NAME and drops OPENBLAS_L2_SIZE."""
    out = dict(os.environ if env is None else env)
    for k in OPENBLAS_VARS:
        out.pop(k, None)
    if setting.startswith("coretype-"):
        name = setting.removeprefix("coretype-")
        if not name:
            raise ValueError("--coretype needs a kernel name, e.g. --coretype Haswell")
        out["OPENBLAS_CORETYPE"] = name
    elif setting != "native":
        raise ValueError(f"unknown child setting {setting!r}: expected native or coretype-NAME")
    return out
