"""The command line, ``python -m analyses.benchmark``: its options, the settings children
(``--native-blas``, ``--both``, ``--coretype``), ``summary.json``, and the dispatch to a
memory child (``--rss-child``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analyses.benchmark.cells import STUDY
from analyses.benchmark.config import make_config
from analyses.benchmark.environment import child_env, openblas_env, run_child
from analyses.benchmark.memory import rss_child_main
from analyses.benchmark.optimizers import add_arguments as add_optimizer_arguments
from analyses.benchmark.optimizers import main as optimizers_main
from analyses.benchmark.run import run_setting
from analyses.benchmark.setting import BenchmarkSummary, SettingRecord
from analyses.benchmark.spec import BATCH_SIZES, DTYPES, FRAMEWORKS
from analyses.benchmark.tables import format_side_by_side, format_table, table_rows
from analyses.pipeline.records import RecordError
from analyses.pipeline.store import ResultStore, read_json, write_json


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The options --out, --quick, --quiet, --dataset."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results folder (default: results)"
    )
    parser.add_argument("--quick", action="store_true", help="a few hundred samples: a smoke run")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The options every study takes (--out, --quick, --quiet, --dataset) and the
    benchmark's own."""
    parser = benchmark_parser(
        "fmlp's training speed against PyTorch, JAX, an in-place numpy loop and the GEMM peak."
    )
    parser.prog = "python -m analyses.benchmark"  # not __main__.py, the file argparse sees
    parser.add_argument(
        "--native-blas",
        action="store_true",
        help="run in a child process without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE",
    )
    parser.add_argument(
        "--both",
        action="store_true",
        help="the inherited environment and --native-blas, side by side",
    )
    parser.add_argument(
        "--coretype",
        default=None,
        help="also run a child with OPENBLAS_CORETYPE=NAME (e.g. Haswell)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="measured epochs after warm-up (default 5; quick 1)",
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up epochs, not counted (default 1)"
    )
    parser.add_argument(
        "--n-train", type=int, default=None, help="training samples (default 50000; quick 600)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument(
        "--real-data",
        choices=("auto", "yes", "no"),
        default="auto",
        help="also measure on the cached dataset (auto: when cached)",
    )
    parser.add_argument(
        "--rss-epochs",
        type=int,
        default=None,
        help="epochs of the memory child's fmlp.fit (default 10)",
    )
    parser.add_argument(
        "--no-rss", action="store_true", help="skip the peak-memory child processes"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for every framework (default: each library's own default)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="measure again even the cells already stored"
    )
    parser.add_argument("--as-setting", default=None, help=argparse.SUPPRESS)
    return parser


def build_optimizer_parser() -> argparse.ArgumentParser:
    """The options of ``--per-optimizer`` (see ``analyses.benchmark.optimizers``)."""
    parser = benchmark_parser(
        "each optimizer's training step in fmlp (fused and numpy), in-place numpy, torch, "
        "JAX+optax and the GEMM-only loop, on one pinned core and on two."
    )
    parser.prog = "python -m analyses.benchmark --per-optimizer"
    parser.add_argument("--per-optimizer", action="store_true", required=True)
    add_optimizer_arguments(parser)
    return parser


def child_argv(argv: Sequence[str], setting: str) -> list[str]:
    """The command line of a child run: this one without the setting options."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--native-blas", "--both"):
            continue
        if a == "--coretype":
            skip = True
            continue
        if a.startswith("--coretype="):
            continue
        out.append(a)
    return [*out, "--as-setting", setting]


def is_setting(name: str) -> bool:
    """Whether ``name`` is one of the OpenBLAS settings: default, native, coretype-NAME."""
    return name in ("default", "native") or name.startswith("coretype-")


def setting_path(store: ResultStore, setting: str) -> Path:
    """Where a setting's record lives: ``<out>/benchmark/<setting>.json``."""
    return store.folder(STUDY) / f"{setting}.json"


def read_setting(path: Path) -> SettingRecord:
    """A setting's record; RecordError, naming the file and the field, when it is not
    one this code can read."""
    try:
        return SettingRecord.from_json(read_json(path))
    except ValueError as exc:  # not JSON, or not a setting's record (RecordError)
        raise RecordError(f"{path}: {exc}") from exc


def run_child_setting(
    argv: Sequence[str], setting: str, store: ResultStore
) -> SettingRecord | None:
    """Measure ``setting`` in a child process under its own OpenBLAS environment, and
    read the record it wrote; None (with a message) when the child fails."""
    proc = run_child(child_argv(argv, setting), env=child_env(setting))
    path = setting_path(store, setting)
    if proc.returncode != 0 or not path.exists():
        print(
            f"[benchmark] the {setting} child failed with exit code {proc.returncode}",
            file=sys.stderr,
        )
        return None
    return read_setting(path)


def write_summary(store: ResultStore) -> BenchmarkSummary:
    """summary.json from every <setting>.json in the study folder; a setting file this
    code cannot read (written by an older version) is left out with a message."""
    settings: dict[str, SettingRecord] = {}
    for path in sorted(store.folder(STUDY).glob("*.json")):
        if not is_setting(path.stem):  # summary.json, optimizers.json
            continue
        try:
            rec = read_setting(path)
        except RecordError as exc:
            print(f"[benchmark] left out of the summary: {exc}", file=sys.stderr)
            continue
        settings[rec.setting] = rec
    summary = BenchmarkSummary(
        settings=settings,
        table=tuple(row for rec in settings.values() for row in table_rows(rec)),
    )
    store.write_summary(STUDY, summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark as ``argv`` says and return the exit status: the default setting
    in this process (unless ``--native-blas``), the other OpenBLAS settings in child
    processes, then ``summary.json``. With ``--rss-child`` this process is a memory child
    instead; with ``--as-setting`` it is a settings child, which writes its record and no
    summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--rss-child" in argv or any(a.startswith("--rss-child=") for a in argv):
        return rss_child_main(argv)
    if "--per-optimizer" in argv:
        opt_args = build_optimizer_parser().parse_args(argv)
        opt_args.argv = argv
        return optimizers_main(opt_args)
    args = build_parser().parse_args(argv)
    cfg = make_config(args)
    store = ResultStore(args.out)
    if args.native_blas and args.both:
        raise SystemExit(
            "--native-blas and --both exclude each other: --both already includes the native run"
        )
    results: dict[str, SettingRecord] = {}
    own = args.as_setting
    if own is not None:  # a child: measure as told, write, no table
        rec = run_setting(cfg, own, store, fresh=args.fresh, quiet=args.quiet)
        write_json(setting_path(store, own), rec.to_json())
        if not args.quiet:
            print(format_table(rec))
        return 0
    if not args.native_blas:
        rec = run_setting(cfg, "default", store, fresh=args.fresh, quiet=args.quiet)
        write_json(setting_path(store, "default"), rec.to_json())
        results["default"] = rec
        print(format_table(rec))
    children = []
    if args.native_blas or args.both:
        if args.both and not any(openblas_env().values()):
            print(
                "note: the inherited environment sets neither OpenBLAS variable, so the native run "
                "would measure the same thing again; skipped",
                file=sys.stderr,
            )
        else:
            children.append("native")
    if args.coretype:
        children.append(f"coretype-{args.coretype}")
    for setting in children:
        rec_child = run_child_setting(argv, setting, store)
        if rec_child is None:
            return 1
        results[setting] = rec_child
    summary = write_summary(store)
    if len(results) > 1:
        print(format_side_by_side(results))
    print(f"summary: {store.summary_path(STUDY)} ({len(summary.settings)} settings)")
    return 0
