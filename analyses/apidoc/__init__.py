"""The HTML API reference of ``fmlp``, built with pdoc from its docstrings and type hints.

``python -m analyses.apidoc`` (what ``make docs`` runs) writes one page per public module
of ``fmlp`` (the package, ``fmlp.data`` and its parts, ``fmlp.template``, ``fmlp.fused``,
``fmlp.kernels``, ...) into ``build/api/``; open ``build/api/index.html``. Modules whose
name, or a parent's, starts with an underscore are left out.

The build is strict: a module that fails to import, or any warning while pdoc reads or
renders the package, stops it with an exception (and the command with a non-zero exit),
so the reference never silently leaves a module out.
"""

from __future__ import annotations

import argparse
import importlib.util
import pkgutil
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final

PACKAGE: Final = "fmlp"
OUT: Final = Path("build") / "api"
TEMPLATES: Final = Path(__file__).resolve().parent / "templates"

__all__ = ["OUT", "PACKAGE", "build", "join_literal_lines", "main", "public_modules"]

_LITERAL: Final = re.compile(r"``([^`]+?)``")
_LINE_BREAK: Final = re.compile(r"[ \t]*\n[ \t]*")


def join_literal_lines(docstring: str) -> str:
    """Join the lines of every ``inline literal`` that a docstring wraps over two lines.

    reStructuredText lets inline markup continue on the next line, and fmlp's docstrings
    wrap long literals so; pdoc's Markdown renderer would print those with their
    backticks. A "literal" that holds an empty line is no literal (its backticks do not
    pair) and is left alone.
    """

    def join(m: re.Match[str]) -> str:
        body = m.group(1)
        if "\n" not in body or re.search(r"\n[ \t]*\n", body):
            return m.group(0)
        return "``" + _LINE_BREAK.sub(" ", body) + "``"

    return _LITERAL.sub(join, docstring)


def public_modules(package: str = PACKAGE) -> list[str]:
    """``package`` and every module below it whose name has no part starting with ``_``.

    Found on disk, without importing the submodules (importing them is the build's job,
    and its failures must reach the build). ``package.__all__`` does not decide this:
    ``fmlp.__all__`` names functions and records, not submodules.
    """
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(f"no module named {package!r}", name=package)
    names = [package]
    for info in pkgutil.iter_modules(spec.submodule_search_locations or []):
        if not info.name.startswith("_"):
            names.extend(public_modules(f"{package}.{info.name}"))
    return names


def build(out: Path = OUT, package: str = PACKAGE) -> list[str]:
    """Write the HTML reference of ``package`` into ``out``; return the modules documented.

    One page per module of ``public_modules(package)``, plus ``index.html`` and the search
    index. Raises whatever importing a module raises (pdoc wraps it in a ``RuntimeError``),
    and turns every warning into an exception.
    """
    import pdoc.doc
    import pdoc.render

    names = public_modules(package)
    pdoc.render.env.filters["join_literal_lines"] = join_literal_lines  # for the templates
    pdoc.render.configure(
        docformat="restructuredtext",  # the docstrings' ``literal`` and :class:`role` markup
        template_directory=TEMPLATES,
        search=True,
        show_source=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # pdoc.pdoc() would walk the packages again, on rules of its own; the modules are
        # named here, so its loop is written out (the same calls, in the same order).
        modules = {name: pdoc.doc.Module.from_name(name) for name in names}
        pages = {name: pdoc.render.html_module(mod, modules) for name, mod in modules.items()}
        index = pdoc.render.html_index(modules)
        search = pdoc.render.search_index(modules)
    for name, html in pages.items():
        page = out / f"{name.replace('.', '/')}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(html, encoding="utf-8")
    (out / "index.html").write_text(index, encoding="utf-8")
    (out / "search.js").write_text(search, encoding="utf-8")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analyses.apidoc", description="Build the HTML API reference of fmlp."
    )
    parser.add_argument(
        "--out", type=Path, default=OUT, help="the output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--package", default=PACKAGE, help="the package to document (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    modules = build(args.out, args.package)
    print(f"{len(modules)} modules documented: open {args.out / 'index.html'}")
    return 0
