"""``python -m analyses.benchmark``: the command line of ``analyses.benchmark.cli``."""

from analyses.benchmark.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
