"""Assemble the report: the title page with the headline figures, then one section per
study, from the typed summaries."""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs

from analyses.common import MachineInfo
from analyses.pipeline.driver import TIMINGS_FILE, Invocation, Study
from analyses.pipeline.records import JsonRecord, RecordError, from_json
from analyses.pipeline.store import ResultStore, read_json
from analyses.report import cnn as cnn_section
from analyses.report import gradcheck as gradcheck_section
from analyses.report import init as init_section
from analyses.report import search as search_section
from analyses.report.fmt import duration
from analyses.report.pdfdoc import Document
from analyses.studies.cnn import CnnSummary
from analyses.studies.gradcheck import GradcheckSummary
from analyses.studies.init import InitSummary
from analyses.studies.search import SearchSummary
from fmlp.atomic import atomic_write_bytes

S = TypeVar("S", bound=JsonRecord)


class MissingResults(FileNotFoundError):
    """A study's results are not on disk."""


@attrs.frozen
class Section(Generic[S]):
    """How one study appears: its section, its rows of the title page's summary table,
    and the machine it ran on."""

    study: str
    title: str
    summary_type: type[S]
    render: Callable[[Document, S, Path], None]
    headline: Callable[[S], list[list[str]]]
    machine: Callable[[S], MachineInfo]


def _init_headline(s: Any) -> list[list[str]]:
    return []


SECTIONS: tuple[Section[Any], ...] = (
    Section(
        "init",
        "initialization",
        InitSummary,
        init_section.section,
        _init_headline,
        lambda s: s.machine,
    ),
    Section(
        "search",
        "hyper-parameter search",
        SearchSummary,
        search_section.section,
        search_section.headline,
        lambda s: s.machine,
    ),
    Section(
        "gradcheck",
        "finite differences",
        GradcheckSummary,
        gradcheck_section.section,
        gradcheck_section.headline,
        lambda s: s.machine,
    ),
    Section(
        "cnn",
        "CNN",
        CnnSummary,
        cnn_section.section,
        cnn_section.headline,
        lambda s: s.machine,
    ),
)


def load_summaries(out: Path) -> dict[str, JsonRecord]:
    """Every section's summary; MissingResults names the first missing study and the
    command that produces it."""
    store = ResultStore(out)
    summaries: dict[str, JsonRecord] = {}
    for sec in SECTIONS:
        try:
            summaries[sec.study] = store.read_summary(sec.study, sec.summary_type)
        except FileNotFoundError:
            raise MissingResults(
                f"the report needs the results of the {sec.study} study, which are not in "
                f"{out}: run `python -m analyses.main --out {out}` first"
            ) from None
    return summaries


def read_timings(out: Path) -> list[Invocation]:
    """The logged invocations (empty when none computed anything or the log is unreadable)."""
    try:
        raw = read_json(out / TIMINGS_FILE)
        return [from_json(Invocation, entry) for entry in raw]
    except (OSError, ValueError, TypeError, RecordError):
        return []


def results_date(out: Path) -> str:
    """The UTC date of the newest stored run: when the results were produced. Run files
    are never rewritten on resume, so a rebuild keeps the date."""
    stamps = [
        p.stat().st_mtime for sec in SECTIONS for p in (out / sec.study / "runs").glob("*.json")
    ]
    if not stamps:
        return "unknown"
    return datetime.datetime.fromtimestamp(max(stamps), tz=datetime.UTC).strftime("%Y-%m-%d")


def timing_lines(log: Sequence[Invocation]) -> list[str]:
    """Each study's wall time, the total and the core utilization, summed over the
    invocations that computed runs (one for a job that ran from start to end)."""
    if not log:
        return ["wall times: not recorded (every run was read back from earlier results)"]
    walls: dict[str, float] = {sec.study: 0.0 for sec in SECTIONS}
    for inv in log:
        for name, t in inv.studies.items():
            walls[name] = walls.get(name, 0.0) + t.wall_seconds
    total = sum(inv.wall_seconds for inv in log)
    cpu = sum(inv.cpu_seconds for inv in log)
    capacity = sum(inv.wall_seconds * inv.workers for inv in log)
    workers = sorted({f"{inv.workers} {inv.executor}" for inv in log})
    parts = ", ".join(f"{name} {duration(w)}" for name, w in walls.items())
    return [
        f"wall time of each study (from its first run to its summary; studies overlap): {parts}",
        f"total {duration(total)} on {' / '.join(workers)} workers"
        + (f", over {len(log)} invocations" if len(log) > 1 else "")
        + f"; core utilization {100 * cpu / capacity:.0f}% (CPU seconds of all runs over wall "
        "seconds times workers)",
    ]


def title_page(
    doc: Document,
    summaries: dict[str, JsonRecord],
    *,
    date: str | None,
    log: Sequence[Invocation] | None,
) -> None:
    first = SECTIONS[0]
    m = first.machine(summaries[first.study])
    kernel = (
        ", ".join(
            f"{b.internal_api} {b.version} ({b.architecture} kernel; every run uses 1 thread)"
            for b in m.blas
        )
        or "unknown"
    )
    doc.new_page()
    doc.space(1.2)
    doc.heading("fmlp: how a two-hidden-layer MLP learns MNIST", 0)
    doc.paragraph(
        "Initialization, hyper-parameters, finite-difference gradients, and a CNN of the same "
        "size. Every number, table, figure and comment below is generated from the measured "
        "results.",
        size=11,
    )
    doc.space(0.3)
    lines = [] if date is None else [f"results produced: {date}"]
    lines += [
        f"fmlp {m.fmlp} (commit {m.fmlp_commit}), Python {m.python}, numpy {m.numpy}, "
        f"torch {m.torch}",
        f"BLAS: {kernel}; OPENBLAS_CORETYPE {m.openblas_coretype or 'unset'}",
        f"machine: {m.cores} cores, {m.platform}",
    ]
    if log is not None:
        lines += timing_lines(log)
    doc.bullets(lines)
    rows = [row for sec in SECTIONS for row in sec.headline(summaries[sec.study])]
    if rows:
        doc.heading("Summary", 1)
        doc.table(["figure", "value", "note"], rows, size=8.0, wrap=42)


def build_report(
    out: Path, studies: Sequence[Study[Any]] | None = None, *, timings: bool = True
) -> tuple[Path, int]:
    """Write ``<out>/report.pdf`` from the summaries under ``out``; returns its path and
    page count. MissingResults when a study has not run."""
    summaries = load_summaries(out)
    doc = Document("fmlp: four studies of an MLP on MNIST")
    title_page(
        doc,
        summaries,
        date=results_date(out) if timings else None,
        log=read_timings(out) if timings else None,
    )
    for sec in SECTIONS:
        doc.new_page()
        sec.render(doc, summaries[sec.study], out / sec.study)
    path = out / "report.pdf"
    atomic_write_bytes(path, doc.close())
    return path, doc.pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the PDF report from the results on disk (no training)."
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results folder (default: results)"
    )
    parser.add_argument("--no-timings", action="store_true", help="leave wall times and dates out")
    args = parser.parse_args(argv)
    try:
        path, pages = build_report(args.out, timings=not args.no_timings)
    except (MissingResults, RecordError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} ({pages} pages)")
    return 0
