"""The environment a measurement runs in, and every place the benchmark reads or changes
it: the OpenBLAS variables and the environment of a child run under another OpenBLAS
setting, the command that starts a benchmark child process, the thread counts of
numpy's BLAS, torch and XLA (``limited_threads`` and ``torch_threads_as`` set them
around a block and restore them after), the BLAS libraries numpy loaded, XLA_FLAGS, and
the load average."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from analyses.machine import BlasInfo, machine_info

OPENBLAS_VARS: Final = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MODULE: Final = "analyses.benchmark"


def load_avg() -> list[float]:
    """The 1, 5 and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def torch_threads() -> int | None:
    """torch's intra-op thread count, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def xla_flags() -> str | None:
    """XLA_FLAGS as this process sees it (``limited_threads`` may have set it)."""
    return os.environ.get("XLA_FLAGS")


@contextlib.contextmanager
def torch_threads_as(threads: int, *, import_torch: bool = True) -> Iterator[None]:
    """torch's intra-op pool set to ``threads`` inside the block and restored after it.
    torch is imported first unless ``import_torch`` is false, in which case only a torch
    already imported is set; nothing happens when torch is not installed."""
    if import_torch:
        torch_threads()  # imports torch when it is installed
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def limited_threads(threads: int | None, *, import_torch: bool = True) -> Iterator[list[str]]:
    """Limit every framework of this process to ``threads`` threads inside the block
    (None: the libraries' defaults) and restore the previous settings after it: numpy's
    BLAS through threadpoolctl, torch's intra-op pool (``torch_threads_as``: torch is
    imported first unless ``import_torch`` is false, since importing it costs about 0.7 GB
    of resident memory, which a memory child must not pay), and XLA's CPU pool through
    XLA_FLAGS, which only works before jax is imported and only for 1 thread.
    Yields notes on what could not be applied."""
    if threads is None:
        yield []
        return
    if threads <= 0:
        raise SystemExit(f"--threads must be a positive integer, got {threads}")
    notes: list[str] = []
    with contextlib.ExitStack() as restore:
        try:
            from threadpoolctl import threadpool_limits

            limiter = threadpool_limits(limits=threads, user_api="blas")
            restore.callback(limiter.restore_original_limits)
        except ImportError:
            notes.append("threadpoolctl is not installed: numpy's BLAS keeps its default threads")
        restore.enter_context(torch_threads_as(threads, import_torch=import_torch))
        xla = xla_flags()
        if threads == 1 and "jax" not in sys.modules:
            one = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            os.environ["XLA_FLAGS"] = f"{xla} {one}" if xla else one
            restore.callback(_set_env, "XLA_FLAGS", xla)
        elif "jax" in sys.modules:
            notes.append("jax was imported before the thread limit: it keeps its CPU threads")
        else:
            notes.append(
                f"jax keeps XLA's default CPU threads (XLA has a flag for 1 thread, not {threads})"
            )
        yield notes


def _set_env(name: str, value: str | None) -> None:
    """Set ``name`` in this process's environment, or unset it when ``value`` is None."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def blas_info() -> tuple[BlasInfo, ...]:
    """The BLAS libraries numpy loaded, with their kernel (``architecture``) and threads."""
    return machine_info().blas


def threads_of_blas() -> int:
    """numpy's BLAS thread count (the first BLAS threadpoolctl reports), else the cores."""
    for info in blas_info():
        if info.num_threads:
            return info.num_threads
    return os.cpu_count() or 1


def openblas_env(env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The OpenBLAS variables of ``env`` (default: this process's), None where unset."""
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


def run_child(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m analyses.benchmark ARGS`` in a child process of this interpreter, in
    ``env`` (default: this process's environment); ``capture`` keeps its output."""
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        env=env,
        capture_output=capture,
        text=True,
        check=False,
    )
