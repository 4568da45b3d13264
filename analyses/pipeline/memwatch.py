"""Memory of a running job: each process's private memory, and the job's peak (Linux).

    python -m analyses.pipeline.memwatch [--every S] [--json FILE] -- COMMAND ...
    python -m analyses.pipeline.memwatch [--every S] [--json FILE] --pid PID

Runs COMMAND (or watches the running process PID) and, every ``S`` seconds (default
1), reads ``/proc/<pid>/smaps_rollup`` of it and of every process below it (its pool
workers, the resource tracker, a LocalCluster's workers). At the end it prints, for
each process seen, the peak of its ``Private_Dirty`` (memory no other process can
share: what each worker costs on its own) and of its ``Pss`` (its fair share of the
pages it shares), and for the whole job the peak of the sums over its processes at one
instant: ``Private_Dirty`` and ``Pss`` (the job's real footprint, shared pages counted
once). With ``--json`` the same figures go to FILE. The exit status is COMMAND's.

For example, on the full job (in another terminal, or wrapped)::

    python -m analyses.pipeline.memwatch --json /tmp/mem.json -- \\
        .venv/bin/python -m analyses.main --no-report --out /tmp/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

MIB = 1024.0

__all__ = ["ProcessPeak", "Watch", "main", "smaps_rollup", "tree"]


def smaps_rollup(pid: int) -> dict[str, int]:
    """The kB fields of ``/proc/<pid>/smaps_rollup`` (empty when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0])
    return fields


@attrs.frozen
class ProcStat:
    """A process as ``/proc/PID/stat`` names it: its state letter (``Z``: a zombie), its
    parent and its process group."""

    pid: int
    state: str
    ppid: int
    pgrp: int


def processes() -> Iterator[ProcStat]:
    """Every process of this machine (one that ends while it is read is left out)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name in parentheses may hold spaces: the fields follow its ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        yield ProcStat(int(entry.name), fields[0], int(fields[1]), int(fields[2]))


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for proc in processes():
        kids.setdefault(proc.ppid, []).append(proc.pid)
    return kids


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    kids = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:100]


@attrs.define
class ProcessPeak:
    """One process's peaks, in kB."""

    command: str
    private_dirty: int = 0
    pss: int = 0
    rss: int = 0


@attrs.define
class Watch:
    """Peaks of every process of a job, and of the job's sums at one instant (kB)."""

    processes: dict[int, ProcessPeak] = attrs.field(factory=dict)
    job_private_dirty: int = 0
    job_pss: int = 0
    samples: int = 0

    def sample(self, root: int) -> None:
        total_dirty = total_pss = 0
        for pid in tree(root):
            fields = smaps_rollup(pid)
            if not fields:
                continue
            peak = self.processes.get(pid)
            if peak is None:
                peak = self.processes[pid] = ProcessPeak(_cmdline(pid))
            dirty, pss = fields.get("Private_Dirty", 0), fields.get("Pss", 0)
            peak.private_dirty = max(peak.private_dirty, dirty)
            peak.pss = max(peak.pss, pss)
            peak.rss = max(peak.rss, fields.get("Rss", 0))
            total_dirty += dirty
            total_pss += pss
        self.job_private_dirty = max(self.job_private_dirty, total_dirty)
        self.job_pss = max(self.job_pss, total_pss)
        self.samples += 1

    def to_json(self) -> dict[str, object]:
        return {
            "unit": "MiB",
            "samples": self.samples,
            "job_peak_private_dirty": self.job_private_dirty / MIB,
            "job_peak_pss": self.job_pss / MIB,
            "processes": {
                str(pid): {
                    "command": p.command,
                    "peak_private_dirty": p.private_dirty / MIB,
                    "peak_pss": p.pss / MIB,
                    "peak_rss": p.rss / MIB,
                }
                for pid, p in sorted(self.processes.items())
            },
        }

    def text(self) -> str:
        lines = [f"{'pid':>8} {'Private_Dirty':>14} {'Pss':>9} {'Rss':>9}  command (peaks, MiB)"]
        for pid, p in sorted(self.processes.items()):
            lines.append(
                f"{pid:>8} {p.private_dirty / MIB:>14.0f} {p.pss / MIB:>9.0f} "
                f"{p.rss / MIB:>9.0f}  {p.command}"
            )
        lines.append(
            f"job peak ({self.samples} samples): Private_Dirty {self.job_private_dirty / MIB:.0f} "
            f"MiB, Pss {self.job_pss / MIB:.0f} MiB (sums over its processes at one instant)"
        )
        return "\n".join(lines)


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pid", type=int, default=None, help="watch this running process")
    p.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--json", type=Path, default=None, help="also write the peaks here")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... to run")
    args = p.parse_args(argv)
    command = [c for c in args.command if c != "--"][:] if args.command else []
    if (args.pid is None) == (not command):
        p.error("give either --pid PID or -- COMMAND ...")
    if args.every <= 0:
        p.error(f"--every must be a positive number of seconds, got {args.every}")
    watch = Watch()
    proc = subprocess.Popen(command) if command else None
    root = proc.pid if proc is not None else args.pid
    code = 0
    try:
        while True:
            watch.sample(root)
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                break
            if proc is None and not _alive(root):
                break
            time.sleep(args.every)
    except KeyboardInterrupt:
        if proc is not None:
            proc.wait()
            code = proc.returncode
    print(watch.text(), file=sys.stderr)
    if args.json is not None:
        from fmlp.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(watch.to_json(), indent=1) + "\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
