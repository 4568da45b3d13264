"""Assemble the report: the Typst source (title page with the headline figures and the
contents, then one section per study, from the typed summaries), written beside the
PDF it compiles to."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TypeVar

import attrs

from analyses.pipeline.records import JsonRecord, RecordError
from analyses.pipeline.store import ResultStore, read_json
from analyses.pipeline.study import AnyStudy
from analyses.pipeline.timings import TIMINGS_FILE, Invocation, read_log
from analyses.report.fmt import duration
from analyses.report.markup import (
    MARGIN_BOTTOM_CM,
    MARGIN_TOP_CM,
    MARGIN_X_CM,
    Document,
    Markup,
    code,
    esc,
    m,
    ref,
    strong,
)
from analyses.studies import AnyEntry, entries
from fmlp.atomic import atomic_write_bytes, atomic_write_text

S = TypeVar("S", bound=JsonRecord)

SOURCE: Final = "report.typ"
PDF: Final = "report.pdf"
DATASET_NAMES: Final = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "synthetic": "synthetic data",
}


class MissingResults(FileNotFoundError):
    """No study has results on disk: there is nothing to report."""


class ReportError(ValueError):
    """The report's source does not compile (a fault of the report's code, not of the
    results): the message has Typst's diagnostic."""


@attrs.frozen
class Absent:
    """Why a study has no results: why it failed (``error``, as the last invocation
    that ran it said), and its ``failed`` runs stored with their ``errors`` (distinct,
    sorted), out of ``stored`` runs."""

    study: str
    stored: int
    failed: int
    errors: tuple[str, ...]
    error: str | None = None


@attrs.frozen
class Built:
    """What ``build_report`` wrote: the PDF, its Typst source, its page count, and the
    studies without results (they have a section that says why)."""

    path: Path
    source: Path
    pages: int
    missing: tuple[str, ...]


def absent(out: Path, study: str) -> Absent:
    """What the results folder holds of a study that wrote no summary."""
    stored = failed = 0
    errors: set[str] = set()
    for p in sorted((out / study / "runs").glob("*.json")):
        try:
            record = read_json(p)
        except (OSError, ValueError):
            continue
        stored += 1
        failure = record.get("failure") if isinstance(record, dict) else None
        if isinstance(failure, dict):
            failed += 1
            errors.add(str(failure.get("error", "unknown error")))
    return Absent(study, stored, failed, tuple(sorted(errors)), ResultStore(out).read_error(study))


def load_summaries(out: Path) -> dict[str, JsonRecord]:
    """Every summary on disk, by study; a study that wrote none is left out. RecordError
    (naming the field) when a summary cannot be read; MissingResults when no study has
    results."""
    store = ResultStore(out)
    summaries: dict[str, JsonRecord] = {}
    for sec in entries():
        try:
            summaries[sec.name] = store.read_summary(sec.name, sec.summary_type)
        except FileNotFoundError:
            continue
    if not summaries:
        raise MissingResults(
            f"no study has results in {out}: run `python -m analyses.main --out {out}` first"
        )
    return summaries


def read_timings(out: Path) -> list[Invocation]:
    """The logged invocations (empty when none computed anything or the log is unreadable)."""
    try:
        return read_log(read_json(out / TIMINGS_FILE))
    except (OSError, ValueError, TypeError):
        return []


def results_date(out: Path) -> str:
    """The UTC date of the newest stored run: when the results were produced. Run files
    are never rewritten on resume, so a rebuild keeps the date."""
    stamps = [
        p.stat().st_mtime for sec in entries() for p in (out / sec.name / "runs").glob("*.json")
    ]
    if not stamps:
        return "unknown"
    return datetime.datetime.fromtimestamp(max(stamps), tz=datetime.UTC).strftime("%Y-%m-%d")


def timing_lines(log: Sequence[Invocation]) -> list[str]:
    """Each study's wall time, the total and the core utilization, summed over the
    invocations that computed runs (one for a job that ran from start to end)."""
    if not log:
        return ["wall times: not recorded (every run was read back from earlier results)"]
    walls: dict[str, float] = {sec.name: 0.0 for sec in entries()}
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


def dataset_title(summaries: dict[str, JsonRecord]) -> str:
    """The dataset the studies ran on, by its display name."""
    base = sorted(
        {
            sec.section.dataset(summaries[sec.name]).split("[")[0]
            for sec in entries()
            if sec.name in summaries
        }
    )
    return " and ".join(DATASET_NAMES.get(n, n) for n in base)


def _subsets(summaries: dict[str, JsonRecord]) -> list[str]:
    labels = {
        sec.section.dataset(summaries[sec.name]) for sec in entries() if sec.name in summaries
    }
    return sorted(label for label in labels if "[" in label)


PREAMBLE: Final = f"""#set document(title: {{title}}, author: "fmlp", date: none)
#set page(paper: "a4", numbering: "1",
  margin: (x: {MARGIN_X_CM}cm, top: {MARGIN_TOP_CM}cm, bottom: {MARGIN_BOTTOM_CM}cm))
#set text(font: "Libertinus Serif", size: 10pt, lang: "en")
#set par(justify: true)
#set heading(numbering: "1.1")
#set math.equation(numbering: "(1)")
#show heading.where(level: 1): set block(above: 1.8em, below: 1em)
#show figure.where(kind: table): set figure.caption(position: top)
#show figure: set block(above: 1.4em, below: 1.4em)
#show table: set text(number-width: "tabular")
#set table(inset: (x: 0.45em, y: 0.3em))
#show table.cell.where(y: 0): set text(weight: "bold")
#set table(stroke: (x, y) => if y == 0 {{{{ (top: 0.8pt, bottom: 0.5pt) }}}})
#show table: t => block(t, stroke: (bottom: 0.8pt))
#show link: set text(fill: rgb("#1a4f8b"))
"""


def title_page(
    doc: Document,
    summaries: dict[str, JsonRecord],
    *,
    date: str | None,
    log: Sequence[Invocation] | None,
    failed: Sequence[str] = (),
) -> None:
    """The title, what produced the results, the headline figures (each row linking to
    its section), the studies without results or whose results do not answer
    (``failed``: studies with a summary and an error), and the contents."""
    dataset = dataset_title(summaries)
    title = esc(f"fmlp: how a two-hidden-layer MLP learns {dataset}")
    lead = esc(
        "Initialization, hyper-parameters, finite-difference gradients, and a CNN of the "
        "same size. Every number, table, figure and comment below is generated from the "
        "measured results."
    )
    # the source is formatted, not added: adding a plain string to Markup escapes it
    doc.raw(
        f'#align(center)[#v(1cm)#text(size: 18pt, weight: "bold")[{title}]#v(0.3em)'
        f"#text(size: 11pt)[{lead}]#v(0.6cm)]"
    )
    first = next(sec for sec in entries() if sec.name in summaries)
    mach = first.section.machine(summaries[first.name])
    kernel = (
        ", ".join(
            f"{b.internal_api} {b.version} ({b.architecture} kernel; every run uses 1 thread)"
            for b in mach.blas
        )
        or "unknown"
    )
    lines = [] if date is None else [f"results produced: {date}"]
    lines += [f"data: {label}" for label in _subsets(summaries)]
    lines += [
        f"fmlp {mach.fmlp} (commit {mach.fmlp_commit}), Python {mach.python}, "
        f"numpy {mach.numpy}, torch {mach.torch}",
        f"BLAS: {kernel}; OPENBLAS_CORETYPE {mach.openblas_coretype or 'unset'}",
        f"machine: {mach.cores} cores, {mach.platform}",
    ]
    if log is not None:
        lines += timing_lines(log)
    doc.bullets(lines)
    missing = [sec for sec in entries() if sec.name not in summaries]
    if missing:
        doc.paragraph(
            strong("No results"),
            " for ",
            *join(
                [m(sec.section.title.lower(), " (", ref(sec.label), ")") for sec in missing], ", "
            ),
            ": their sections say why and what to try.",
        )
    unanswered = [sec for sec in entries() if sec.name in failed]
    if unanswered:
        doc.paragraph(
            strong("Not answered"),
            " by ",
            *join(
                [m(sec.section.title.lower(), " (", ref(sec.label), ")") for sec in unanswered],
                ", ",
            ),
            ": their results are shown, and their sections say what is missing.",
        )
    rows: list[list[str]] = []
    for sec in entries():
        if sec.name in summaries:
            for what, value, note in sec.section.headline(summaries[sec.name]):
                rows.append([Markup(f"#link(<{sec.label}>)[{esc(what)}]"), value, note])
    if rows:
        doc.paragraph(
            m(
                "The headline results are in ",
                ref("tab-headline"),
                "; each row links to the section it comes from.",
            )
        )
        doc.table(
            ["result", "value", "note"],
            rows,
            caption="The headline results.",
            label="tab-headline",
            align=["l", "r", "l"],
            widths=["auto", "auto", "1fr"],
            size=8.5,
        )
    doc.raw("#outline(depth: 2)")
    doc.raw("#pagebreak(weak: true)")


def join(parts: Sequence[str], sep: str) -> list[str]:
    """``parts`` with ``sep`` between them, as arguments for ``m``."""
    out: list[str] = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.append(p)
    return out


def missing_section(doc: Document, sec: AnyEntry, out: Path, present: set[str]) -> None:
    """The section of a study without results: why, and what to try."""
    doc.heading(sec.section.title, label=sec.label)
    info = absent(out, sec.name)
    waiting = [need for need in sec.section.needs if need not in present]
    again = m(
        " again with the same ",
        code("--out"),
        " folder: it reuses every run stored under ",
        code(f"{sec.name}/runs/"),
        " that succeeded.",
    )
    if info.error is not None and not waiting:
        doc.paragraph(f"This study failed, so it wrote no summary: {info.error}.")
    if info.failed:
        runs = (
            "its only stored run failed"
            if info.stored == 1
            else f"{info.failed} of its {info.stored} stored runs failed"
        )
        doc.paragraph(
            f"This study has no results: {runs}, so it wrote no summary. "
            + ("The error:" if len(info.errors) == 1 else "The errors:")
        )
        shown = list(info.errors[:8])
        if len(info.errors) > 8:
            shown.append(f"and {len(info.errors) - 8} more")
        doc.bullets(shown)
        doc.paragraph(
            m(
                "What to try: fix the cause the errors name. A failed run is stored like a "
                "finished one and read back as it is, so delete the study's folder ",
                code(f"{sec.name}/"),
                " in the results folder, then run ",
                code("python -m analyses.main"),
                " again with the same ",
                code("--out"),
                " folder: the other studies' runs are reused.",
            )
        )
    elif waiting:
        doc.paragraph(
            "This study has no results: it is computed from the results of the ",
            *join([m(w, " study (", ref(f"sec-{w}"), ")") for w in waiting], " and "),
            ", which has none, so it did not run. What to try: make that study succeed, then run ",
            code("python -m analyses.main"),
            again,
        )
    else:
        why = (
            f"{info.stored} of its runs are stored, but it wrote no summary (the job was stopped "
            "before it finished)"
            if info.stored
            else "it has not run (no run of it is stored)"
        )
        doc.paragraph(
            f"This study has no results: {why}. What to try: run ",
            code("python -m analyses.main"),
            again,
        )


def render(out: Path, summaries: dict[str, JsonRecord], *, timings: bool) -> str:
    """The report's Typst source."""
    title = f"fmlp: how a two-hidden-layer MLP learns {dataset_title(summaries)}"
    doc = Document(out)
    store = ResultStore(out)
    doc.raw(PREAMBLE.format(title=json.dumps(title)))
    title_page(
        doc,
        summaries,
        date=results_date(out) if timings else None,
        log=read_timings(out) if timings else None,
        failed=[sec.name for sec in entries() if store.read_error(sec.name) is not None],
    )
    for sec in entries():
        if sec.name in summaries:
            doc.heading(sec.section.title, label=sec.label)
            error = store.read_error(sec.name)
            if error is not None:
                doc.paragraph(
                    strong("Not answered. "), f"The study's results follow, but: {error}."
                )
            sec.section.render(doc, summaries[sec.name], out / sec.name)
        else:
            missing_section(doc, sec, out, set(summaries))
    doc.raw("#context [#metadata(counter(page).final().first()) <report-end>]")
    return doc.source()


def compile_pdf(source: Path, root: Path) -> tuple[bytes, int]:
    """Compile a Typst file (figures resolved under ``root``) with the compiler's own
    fonts only, so any machine gives the same bytes; returns the PDF and its page
    count."""
    import typst

    compiler = typst.Compiler(str(source), root=str(root), ignore_system_fonts=True)
    try:
        pdf, warnings = compiler.compile_with_warnings(format="pdf")
    except typst.TypstError as exc:
        raise ReportError(
            f"{source.name} does not compile: {exc.message}" + "".join(f"; {h}" for h in exc.hints)
        ) from exc
    for w in warnings:
        print(f"report: typst: {w.message}", file=sys.stderr)
    if not isinstance(pdf, bytes):
        raise RuntimeError("the Typst compiler returned no PDF")
    pages = json.loads(compiler.query("<report-end>", field="value", one=True))
    return pdf, int(pages)


def build_report(
    out: Path, studies: Sequence[AnyStudy] | None = None, *, timings: bool = True
) -> Built:
    """Write ``<out>/report.typ`` from the summaries under ``out`` and compile it into
    ``<out>/report.pdf``. A study without results gets a section that says why;
    MissingResults when no study has any, RecordError (naming the field) when a summary
    cannot be read, ReportError when the source does not compile. ``studies`` is unused:
    the report reads only the results folder."""
    summaries = load_summaries(out)
    source = atomic_write_text(out / SOURCE, render(out, summaries, timings=timings))
    pdf, pages = compile_pdf(source, out)
    path = atomic_write_bytes(out / PDF, pdf)
    missing = tuple(sec.name for sec in entries() if sec.name not in summaries)
    return Built(path=path, source=source, pages=pages, missing=missing)


def describe(built: Built) -> str:
    """One line on what was built, for the command line."""
    text = f"report: {built.path} ({built.pages} pages; its source: {built.source.name})"
    if built.missing:
        text += f"; no results for {', '.join(built.missing)}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the report's Typst source and compile it into the PDF, from the "
        "results on disk (no training)."
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results folder (default: results)"
    )
    parser.add_argument("--no-timings", action="store_true", help="leave wall times and dates out")
    args = parser.parse_args(argv)
    try:
        built = build_report(args.out, timings=not args.no_timings)
    except (MissingResults, RecordError, ReportError) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(describe(built))
    return 0
