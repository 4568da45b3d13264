"""A record of the machine the results come from: the CPU count, the platform, the BLAS
libraries and their threads, the commit of fmlp."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import attrs
import numpy as np

import fmlp


@attrs.frozen
class BlasInfo:
    internal_api: str | None
    version: str | None
    architecture: str | None
    num_threads: int | None


@attrs.frozen
class MachineInfo:
    """Versions and machine facts recorded beside the results."""

    python: str
    numpy: str
    torch: str | None
    fmlp: str
    fmlp_commit: str
    cores: int
    platform: str
    blas: tuple[BlasInfo, ...]
    openblas_coretype: str | None


def _is_scipys(filepath: str | None) -> bool:
    """True for a BLAS library that scipy ships (in ``scipy.libs``, scipy's package or
    ``scipy_openblas32``), not numpy's."""
    folders = Path(filepath or "").parts[:-1]
    return any(f in ("scipy", "scipy.libs", "scipy_openblas32") for f in folders)


def _blas_info() -> tuple[BlasInfo, ...]:
    """The BLAS that numpy uses. Where scipy is installed, numba loads scipy's OpenBLAS
    too (when its compiler starts, whether or not this process has run a kernel yet); it
    does none of fmlp's work, and listing it would make this record depend on what ran
    first in the process, so it is left out (unless it is the only one)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ()
    infos = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    numpy_own = [info for info in infos if not _is_scipys(info.get("filepath"))]
    return tuple(
        BlasInfo(
            internal_api=info.get("internal_api"),
            version=info.get("version"),
            architecture=info.get("architecture"),
            num_threads=info.get("num_threads"),
        )
        for info in (numpy_own or infos)
    )


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


def machine_info() -> MachineInfo:
    try:  # the installed version, without paying for importing torch
        torch_version: str | None = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return MachineInfo(
        python=platform.python_version(),
        numpy=np.__version__,
        torch=torch_version,
        fmlp=fmlp.__version__,
        fmlp_commit=git_commit(),
        cores=os.cpu_count() or 1,
        platform=platform.platform(),
        blas=_blas_info(),
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
    )
