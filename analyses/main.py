"""The main job: every study on one executor, then the PDF report.

    python -m analyses.main [--out results] [--quick] [--quiet] [--dataset mnist]
        [--only STUDY ...] [--executor process|local|dask] [--workers N]
        [--scheduler ADDRESS] [--no-report] [--no-timings]

All runs of all studies are tasks on one executor (by default a local process pool, one
single-threaded worker per core), each submitted as soon as its inputs exist. Every
finished run is stored as it arrives, so a second invocation computes nothing that is
stored: an interrupted job resumes, and a job with nothing left to do only rebuilds the
(byte-identical) report. Wall time, CPU time and core utilization of each invocation
that computed something go to ``<out>/pipeline/timings.json``.

The report is built from whatever finished: a study that failed, or could not answer,
keeps its section, which says why and what to try. The exit status is then 1 (0 when
every study succeeded; 2 when the job could not run or the report could not be built).

One driver per results folder: a second one stops at once (exit 2) with a message that
names the running one. SIGTERM or SIGINT (Ctrl-C) stops the job: no new run is handed
out, the workers are ended, every finished run stays stored, the message says how to
resume, and the exit status is 128 + the signal (143, 130). Workers end by themselves
within a second when their driver is killed outright (SIGKILL).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analyses.pipeline.driver import run_pipeline
from analyses.pipeline.executors import EXECUTOR_NAMES, make_executor
from analyses.pipeline.lock import FolderError
from analyses.pipeline.progress import Progress
from analyses.pipeline.session import driver_session, stopped_message
from analyses.pipeline.signals import Stopped, StopSignals
from analyses.pipeline.store import ResultStore
from analyses.pipeline.study import PipelineError
from analyses.pipeline.tasks import RunContext
from analyses.pipeline.timings import PipelineReport, log_invocation
from analyses.studies import SuiteOptions, study_names, suite


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run every fmlp study, then build the PDF report.")
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="results folder (default: results)"
    )
    p.add_argument(
        "--quick", action="store_true", help="the studies on 600 / 200 samples: a smoke run"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress (a bar on a terminal, a line per finished run otherwise)",
    )
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument(
        "--only",
        action="append",
        choices=study_names(),
        help="run only this study (repeatable); artifacts it needs from the others are read "
        "from their stored results",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default="process",
        help="process: a local process pool, one single-threaded worker per core (default); "
        "local: everything in this process, one run at a time; dask: Dask distributed "
        "(needs pip install '.[cluster]')",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="pool or LocalCluster size (default: cores)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --executor dask: a running scheduler (e.g. tcp://host:8786); "
        "default: a LocalCluster",
    )
    p.add_argument("--no-report", action="store_true", help="do not build the PDF")
    p.add_argument(
        "--no-timings",
        action="store_true",
        help="leave wall times, core utilization and dates out of the report, so that the same "
        "results give the same PDF bytes on any run",
    )
    return p


def _print_report(report: PipelineReport) -> None:
    rows = ", ".join(f"{name} {t.wall_seconds:.1f} s" for name, t in report.timings.items())
    print(
        f"pipeline: {report.wall_seconds:.1f} s wall ({rows}); {report.computed} runs computed, "
        f"{report.cpu_seconds:.1f} CPU s on {report.workers} {report.executor} workers: "
        f"core utilization {100 * report.utilization:.0f}%",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = ["python", "-m", "analyses.main", *(sys.argv[1:] if argv is None else argv)]
    try:
        with driver_session(args.out, say=_warn) as session:
            return _run(args, session.guard)
    except FolderError as exc:
        print(f"main: {exc}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(f"main: {stopped_message(stop, args.out, command)}", file=sys.stderr)
        return stop.exit_code


def _warn(message: str) -> None:
    print(f"main: {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, guard: StopSignals) -> int:
    """The job, inside the session that holds the results folder."""
    options = SuiteOptions.quick(args.dataset) if args.quick else SuiteOptions.full(args.dataset)
    studies = suite(options)
    selected = [s for s in studies if not args.only or s.name in args.only]
    store = ResultStore(args.out)
    ctx = RunContext(out=str(args.out.resolve()), quiet=args.quiet)
    progress = None if args.quiet else Progress(sys.stderr)
    try:
        with make_executor(args.executor, workers=args.workers, scheduler=args.scheduler) as ex:
            report = run_pipeline(
                selected,
                store=store,
                executor=ex,
                ctx=ctx,
                available=studies,
                progress=progress,
                guard=guard,
            )
    except (PipelineError, ValueError) as exc:
        print(f"main: {exc}", file=sys.stderr)
        return 2
    log_invocation(store, report)
    _print_report(report)
    for name, error in report.errors.items():
        print(f"main: {name}: {error}", file=sys.stderr)
    failed = 1 if report.errors else 0
    if args.no_report:
        return failed
    from analyses.report import build_report, describe

    # the report is built from whatever finished: a failed study gets a section that
    # says why, and the exit status still says that it failed
    try:
        built = build_report(args.out, studies, timings=not args.no_timings)
    except (FileNotFoundError, ValueError) as exc:
        print(f"main: the report cannot be built: {exc}", file=sys.stderr)
        return 2
    print(describe(built))
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
