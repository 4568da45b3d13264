"""The memory watcher: a command's processes, their private memory and the job's peak."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from analyses.pipeline import memwatch

# a parent that writes 64 MiB of its own, and a child that writes 32 MiB, both held 1.5 s
JOB = (
    "import subprocess, sys, time; "
    "a = bytearray(64 << 20); "
    "c = subprocess.Popen([sys.executable, '-c', "
    "'import time; b = bytearray(32 << 20); time.sleep(1.5)']); "
    "time.sleep(1.5); c.wait()"
)


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_a_command_and_its_child_are_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mem.json"
    code = memwatch.main(["--every", "0.2", "--json", str(out), "--", sys.executable, "-c", JOB])
    assert code == 0
    found = json.loads(out.read_text())
    peaks = sorted(p["peak_private_dirty"] for p in found["processes"].values())
    assert len(peaks) == 2
    assert 32 <= peaks[0] < 64 <= peaks[1]  # MiB: each process's own bytes, and more
    assert found["job_peak_private_dirty"] >= 96
    assert found["job_peak_pss"] >= found["job_peak_private_dirty"] - 1
    assert "job peak" in capsys.readouterr().err


def test_the_command_line_needs_a_pid_or_a_command() -> None:
    with pytest.raises(SystemExit):
        memwatch.main([])
    with pytest.raises(SystemExit):
        memwatch.main(["--pid", "1", "--", "true"])
    with pytest.raises(SystemExit):
        memwatch.main(["--every", "0", "--", "true"])


def test_a_process_that_is_gone_reads_as_empty() -> None:
    assert memwatch.smaps_rollup(2**22 + 7) == {}
