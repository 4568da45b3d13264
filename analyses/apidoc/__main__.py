"""``python -m analyses.apidoc``: the command line of ``analyses.apidoc`` (``make docs``)."""

from analyses.apidoc import main

if __name__ == "__main__":
    raise SystemExit(main())
