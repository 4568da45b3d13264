"""A small flowing-text layout on matplotlib's PdfPages: headings, wrapped paragraphs,
monospaced tables and images, paginated on A4. Output bytes depend only on content.
Pages are plain matplotlib Figures: no pyplot, no global backend."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PAGE_W, PAGE_H = 8.27, 11.69  # A4, inches
MARGIN = 0.75
LINE = 1.0 / 72.0  # one point, in inches


class Document:
    """Append content top to bottom; a new page starts when the current one is full."""

    def __init__(self, title: str) -> None:
        from matplotlib.backends.backend_pdf import PdfPages

        self._buf = io.BytesIO()
        self._pdf: Any = PdfPages(
            self._buf,
            metadata={
                "Title": title,
                "Creator": "fmlp analyses.report",
                "Producer": None,
                "CreationDate": None,
            },
        )
        self._fig: Any = None
        self._y = 0.0  # inches from the top of the page
        self.pages = 0

    # -- pages -----------------------------------------------------------------
    def new_page(self) -> None:
        from matplotlib.figure import Figure

        self._flush()
        self._fig = Figure(figsize=(PAGE_W, PAGE_H))
        self._y = MARGIN
        self.pages += 1
        self._fig.text(
            0.5, 0.3 / PAGE_H, str(self.pages), ha="center", va="bottom", fontsize=8, color="0.4"
        )

    def _flush(self) -> None:
        if self._fig is not None:
            self._pdf.savefig(self._fig)
            self._fig = None

    def _need(self, height: float) -> None:
        if self._fig is None or self._y + height > PAGE_H - MARGIN:
            self.new_page()

    def _text(self, s: str, size: float, *, x: float = MARGIN, **kw: Any) -> None:
        self._fig.text(
            x / PAGE_W, 1 - self._y / PAGE_H, s, fontsize=size, va="top", ha="left", **kw
        )

    # -- content ---------------------------------------------------------------
    def heading(self, s: str, level: int = 1) -> None:
        size = {0: 18.0, 1: 15.0, 2: 12.0}.get(level, 11.0)
        self._need(size * 2.6 * LINE + 0.6)  # keep a heading with what follows
        self._y += size * 0.6 * LINE
        self._text(s, size, weight="bold")
        self._y += size * 1.5 * LINE

    def paragraph(
        self, s: str, *, size: float = 9.5, width: int = 96, style: str = "normal"
    ) -> None:
        for block in s.split("\n"):
            lines = textwrap.wrap(block, width=width) or [""]
            for line in lines:
                self._need(size * 1.45 * LINE)
                self._text(line, size, style=style)
                self._y += size * 1.45 * LINE
        self._y += size * 0.5 * LINE

    def bullets(self, items: Sequence[str], *, size: float = 9.5) -> None:
        for item in items:
            lines = textwrap.wrap(item, width=92) or [""]
            for i, line in enumerate(lines):
                self._need(size * 1.45 * LINE)
                self._text(("\u2022 " if i == 0 else "   ") + line, size, x=MARGIN + 0.1)
                self._y += size * 1.45 * LINE
        self._y += size * 0.5 * LINE

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        size: float = 8.0,
        wrap: int | None = None,
    ) -> None:
        """A monospaced table; columns sized to their widest cell. ``wrap``: the last
        column's cells are wrapped to lines of at most this many characters (text
        columns such as notes), the other columns keep one line."""
        cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
        split: list[list[list[str]]] = []
        for r in cells:
            last = textwrap.wrap(r[-1], width=wrap) if wrap and r[-1] else [r[-1]]
            split.append([[c] for c in r[:-1]] + [last or [""]])
        widths = [max(len(line) for r in split for line in r[i]) for i in range(len(header))]

        def fmt(r: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if 0 < i < len(r) - 1 or (i and not wrap) else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()

        lines: list[tuple[str, bool]] = []
        for k, row in enumerate(split):
            depth = max(len(c) for c in row)
            for j in range(depth):
                lines.append((fmt([c[j] if j < len(c) else "" for c in row]), k == 0))
            if k == 0:
                lines.append(("  ".join("-" * w for w in widths), False))
        for line, bold in lines:
            self._need(size * 1.35 * LINE)
            self._text(line, size, family="DejaVu Sans Mono", weight="bold" if bold else "normal")
            self._y += size * 1.35 * LINE
        self._y += size * 0.8 * LINE

    def image(
        self, path: Path, *, width: float = PAGE_W - 2 * MARGIN, max_height: float = 5.0
    ) -> None:
        """A PNG scaled to ``width`` inches (or less, to stay under ``max_height``)."""
        import matplotlib.image as mpimg

        img = mpimg.imread(str(path))
        h_px, w_px = img.shape[:2]
        w = width
        h = w * h_px / w_px
        if h > max_height:
            h, w = max_height, max_height * w_px / h_px
        self._need(h + 0.1)
        left = (PAGE_W - w) / 2
        ax = self._fig.add_axes((left / PAGE_W, 1 - (self._y + h) / PAGE_H, w / PAGE_W, h / PAGE_H))
        ax.imshow(img, interpolation="lanczos")
        ax.set_axis_off()
        self._y += h + 0.15

    def space(self, inches: float) -> None:
        self._y += inches

    def close(self) -> bytes:
        """Finish the PDF and return its bytes."""
        self._flush()
        self._pdf.close()
        return self._buf.getvalue()
