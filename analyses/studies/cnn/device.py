"""Where the CNN runs: CUDA when asked for or available, else the CPU, found out without
importing torch into the driver."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from analyses.studies.cnn.options import Device, DeviceName


def cuda_available() -> bool:
    """Whether torch sees a CUDA device on this machine, found out without importing
    torch into this process: from torch itself when it is already imported, False on a
    Linux machine without NVIDIA device files, otherwise by asking a short subprocess."""
    loaded = sys.modules.get("torch")
    if loaded is not None:
        return bool(loaded.cuda.is_available())
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(int(torch.cuda.is_available()))"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return probe.stdout.strip() == "1"


def resolve_device(requested: DeviceName) -> Device:
    """``cuda`` when asked for or (``auto``) available, else ``cpu``."""
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    return requested
