"""``python -m fmlp.data``: runs the command line of :mod:`fmlp.data.cli`."""

from __future__ import annotations

from fmlp.data.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
