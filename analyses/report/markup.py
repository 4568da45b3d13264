"""The report as Typst source: a small builder that appends headings, paragraphs, lists,
equations, tables and figures, and escapes every plain string it is given.

Text is either a plain ``str`` (escaped, so a value such as ``lr_0 * 2`` prints as it is)
or ``Markup`` (Typst source, inserted verbatim): build mixed text with ``m``, e.g.
``m("the error falls as ", formula("epsilon^2"), " (", ref("fig-fd"), ")")``. Tables and
figures are numbered and captioned, and carry a label so that the text refers to them
by number with ``ref``; ``Document.source`` returns the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

_SPECIAL: Final = re.compile(r"([\\#$*_@<>\[\]`~/])")
_LINE_START: Final = re.compile(r"^(\s*)([-+=]|\d+\.)")
_NUMERIC: Final = re.compile(r"^[-+\u2212]?(\d|\.\d|n/a$|inf$|NaN$|-$)")
_LABEL: Final = re.compile(r"^[a-z][a-z0-9-]*$")
_CALLS: Final = re.compile(r"#[a-z.]+(\([^)]*\))?\[|[\]\\$]")
_REF: Final = re.compile(r"#ref\(<([a-z0-9-]+)>\);")

Align = Literal["l", "r", "c"]

# The page: A4 with these margins (the preamble sets them), and the text width between.
MARGIN_X_CM: Final = 2.3
MARGIN_TOP_CM: Final = 2.2
MARGIN_BOTTOM_CM: Final = 2.4
TEXT_WIDTH_PT: Final = (21.0 - 2 * MARGIN_X_CM) / 2.54 * 72
CHAR_EM: Final = 0.6  # a generous width of one character of a table, in em
INSET_EM: Final = 1.0  # a cell's padding left and right, in em


class Markup(str):
    """Typst markup, inserted as it is (a plain ``str`` is escaped). Adding a plain
    string to markup, on either side, escapes the string and gives markup."""

    def __add__(self, other: str) -> Markup:
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other: str) -> Markup:
        return Markup(str.__add__(esc(other), self))


def esc(text: str) -> Markup:
    """``text`` as Typst markup that prints it literally; Markup is returned unchanged."""
    if isinstance(text, Markup):
        return text
    out = _SPECIAL.sub(r"\\\1", text)
    out = _LINE_START.sub(lambda g: g.group(1) + "\\" + g.group(2), out)
    return Markup(out.replace("\n", " \\\n"))


def m(*parts: str) -> Markup:
    """Plain strings and markup joined into markup."""
    return Markup("".join(esc(p) for p in parts))


def formula(src: str) -> Markup:
    """Inline math in Typst's math syntax, e.g. ``formula("u^(1\\/3)")``."""
    return Markup(f"${src}$")


def ref(label: str) -> Markup:
    """A reference by number to a labelled section, equation, table or figure."""
    _check_label(label)
    return Markup(f"#ref(<{label}>);")  # the semicolon ends the call, whatever follows


def strong(text: str) -> Markup:
    return Markup(f"#strong[{esc(text)}]")


def code(text: str) -> Markup:
    """Monospaced text (a command, a file name), escaped as a Typst string."""
    return Markup("#raw(" + _string(text) + ")")


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_label(label: str) -> None:
    if not _LABEL.match(label):
        raise ValueError(
            f"label {label!r}: use lower-case letters, digits and '-', starting with a letter"
        )


def numeric(cell: str) -> bool:
    """Whether a table cell holds a number (right-aligned)."""
    return bool(_NUMERIC.match(cell.strip()))


def _visible(cell: str) -> str:
    """About the text a cell shows: markup's calls, brackets and escapes left out."""
    if not isinstance(cell, Markup):
        return cell
    return _CALLS.sub("", cell)


def _table_src(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    side: Sequence[Align],
    widths: Sequence[str],
) -> str:
    aligns = ", ".join({"l": "left", "r": "right", "c": "center"}[a] for a in side)
    head = ", ".join(f"[{esc(h)}]" for h in header)
    body = ",\n    ".join(", ".join(f"[{esc(c)}]" for c in r) for r in rows)
    return (
        f"table(\n    columns: ({', '.join(widths)},),\n    align: ({aligns},),\n"
        f"    table.header({head}),\n    {body}{',' if rows else ''}\n  )"
    )


class Document:
    """Typst source, appended top to bottom. ``root`` is the folder the source is
    written to: figures are referenced by their path relative to it, so the source and
    the PDF hold no absolute path."""

    def __init__(self, root: Path, *, text_width: float = TEXT_WIDTH_PT) -> None:
        self.root = root
        self.text_width = text_width
        self._parts: list[str] = []
        self.labels: list[str] = []

    def _add(self, src: str) -> None:
        self._parts.append(src)

    def _label(self, label: str | None) -> str:
        if label is None:
            return ""
        _check_label(label)
        if label in self.labels:
            raise ValueError(f"label {label!r} is used twice in the report")
        self.labels.append(label)
        return f" <{label}>"

    def raw(self, src: str) -> None:
        """Typst source as it is (the preamble, a page break)."""
        self._add(src)

    def heading(self, text: str, level: int = 1, *, label: str | None = None) -> None:
        self._add(f"{'=' * level} {esc(text)}{self._label(label)}")

    def paragraph(self, *parts: str, size: float | None = None) -> None:
        body = m(*parts)
        self._add(body if size is None else f"#text(size: {size}pt)[{body}]")

    def bullets(self, items: Sequence[str]) -> None:
        """A bullet list; a short one (up to 12 items, 1,200 characters) stays on one page."""
        body = "\n".join(f"- {esc(item)}" for item in items)
        if len(items) <= 12 and sum(len(i) for i in items) <= 1200:
            body = f"#block(breakable: false)[\n{body}\n]"
        self._add(body)

    def comments(self, items: Sequence[str]) -> None:
        """The comments on a section's results: an unnumbered heading (not in the
        contents) and a bullet list."""
        self._add("#heading(level: 4, numbering: none, outlined: false)[Comments]")
        self.bullets(items)

    def equation(self, src: str, *, label: str | None = None) -> None:
        """A numbered display equation in Typst's math syntax."""
        self._add(f"$ {src} $" + self._label(label))

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        caption: str,
        label: str,
        align: Sequence[Align] | None = None,
        size: float = 8.5,
        widths: Sequence[str] | None = None,
    ) -> None:
        """A numbered table with its caption above, a header row and rules; numeric
        columns are right-aligned unless ``align`` says otherwise. A table of more than
        24 rows may break across pages (its header repeats); a shorter one stays whole
        with its caption. A table too wide for the text is split into parts stacked under
        one caption, each repeating the first column, so nothing runs into the margin."""
        n = len(header)
        for r in rows:
            if len(r) != n:
                raise ValueError(f"table {label}: a row has {len(r)} cells, the header {n}")
        side: Sequence[Align] = align or [
            "r" if rows and all(numeric(r[j]) or not r[j] for r in rows) else "l" for j in range(n)
        ]
        sizes = list(widths) if widths is not None else ["auto"] * n
        parts = [
            _table_src(
                [header[j] for j in group],
                [[r[j] for j in group] for r in rows],
                [side[j] for j in group],
                [sizes[j] for j in group],
            )
            for group in self._column_groups(header, rows, size, sizes)
        ]
        body = parts[0] if len(parts) == 1 else "stack(spacing: 1.2em, " + ", ".join(parts) + ")"
        src = (
            f"#figure(\n  kind: table,\n  caption: [{esc(caption)}],\n"
            f"  text(size: {size}pt, {body}),\n)" + self._label(label)
        )
        if len(rows) > 24:  # a figure stays on one page unless told otherwise
            src = f"#[\n#show figure: set block(breakable: true)\n{src}\n]"
        self._add(src)

    def _column_groups(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        size: float,
        widths: Sequence[str],
    ) -> list[list[int]]:
        """The columns of each part of a table, the first column in every part: as many
        as fit the text width by a generous estimate of each column's width (its longest
        cell; a header, or a column of a fixed or fractional width, wraps between
        words)."""

        def longest_word(cells: Sequence[str]) -> int:
            return max((len(w) for c in cells for w in c.split()), default=0)

        def width(j: int) -> float:
            cells = [_visible(r[j]) for r in rows]
            wraps = widths[j] != "auto"
            chars = max(
                longest_word([header[j]]),
                longest_word(cells) if wraps else max(map(len, cells), default=0),
            )
            return (chars * CHAR_EM + INSET_EM) * size

        ws = [width(j) for j in range(len(header))]
        groups: list[list[int]] = [[0]]
        for j in range(1, len(header)):
            if len(groups[-1]) > 1 and sum(ws[k] for k in groups[-1]) + ws[j] > self.text_width:
                groups.append([0])
            groups[-1].append(j)
        return groups

    def figure(self, path: Path, *, caption: str, label: str, width: float = 100) -> None:
        """A numbered figure from an image file under ``root``, ``width`` percent of the
        text width; a missing file is named (relative to ``root``) in its place."""
        rel = path.relative_to(self.root).as_posix()
        if path.exists():
            body = f"image({_string(rel)}, width: {width:g}%)"
        else:
            note = esc(f"({rel} is missing)")
            body = f"block(width: 100%, inset: 1em, stroke: 0.5pt + gray)[{note}]"
        self._add(f"#figure(\n  {body},\n  caption: [{esc(caption)}],\n)" + self._label(label))

    def source(self) -> str:
        """The whole file; ValueError when the text refers to a label nothing defines (a
        Typst error otherwise)."""
        text = "\n\n".join(self._parts) + "\n"
        dangling = sorted(set(_REF.findall(text)) - set(self.labels))
        if dangling:
            raise ValueError(f"the report refers to {', '.join(dangling)}, which nothing defines")
        return text
