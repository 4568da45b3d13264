"""The main job: every study on real MNIST, then the PDF report.

    python -m analyses.main [--out results] [--quick] [--quiet] [--dataset mnist]

Each study resumes from its results on disk, so a second run with nothing changed only
rebuilds the report. Wall times of this invocation go to ``<out>/main/timings.json``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from analyses import cnn_study, gradcheck_study, hparam_search, init_study, report
from analyses.common import atomic_write_json, study_parser

Study = tuple[str, Callable[[Sequence[str] | None], int]]

# The order matters: the finite-difference and CNN studies read the search's best model.
STUDIES: tuple[Study, ...] = (
    ("init_study", init_study.main),
    ("hparam_search", hparam_search.main),
    ("gradcheck_study", gradcheck_study.main),
    ("cnn_study", cnn_study.main),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = study_parser("Run every fmlp study, then build the PDF report.")
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _ in STUDIES],
        help="run only this study (repeatable); the report still needs all four",
    )
    parser.add_argument("--no-report", action="store_true", help="skip building the PDF")
    args = parser.parse_args(argv)
    common: list[str] = ["--out", str(args.out), "--dataset", args.dataset]
    if args.quick:
        common.append("--quick")
    if args.quiet:
        common.append("--quiet")
    timings: dict[str, float] = {}
    cores = os.cpu_count() or 1
    for name, study_main in STUDIES:
        if args.only and name not in args.only:
            continue
        print(f"== {name}", file=sys.stderr, flush=True)
        extra: list[str] = []
        if name == "hparam_search" and cores > 1 and not args.quick:
            # one single-threaded run per core: the same bits as sequential, all cores busy
            extra = ["--executor", "process", "--workers", str(cores)]
        start = time.perf_counter()
        code = study_main(common + extra)
        timings[name] = round(time.perf_counter() - start, 3)
        if code:
            print(f"{name} failed with exit code {code}", file=sys.stderr)
            return code
    if not args.no_report:
        start = time.perf_counter()
        code = report.main(["--out", str(args.out)])
        timings["report"] = round(time.perf_counter() - start, 3)
        if code:
            return code
    atomic_write_json(Path(args.out) / "main" / "timings.json", timings)
    total = sum(timings.values())
    print(
        "wall time: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + f"; total {total:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
