"""Figures: a matplotlib Figure that needs no pyplot, saved as SVG whose bytes depend
only on the data."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from fmlp.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(*, figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure that draws with its own Agg canvas: no pyplot, no global
    backend, nothing left open."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def save_figure(fig: Figure, folder: Path, name: str) -> list[str]:
    """Save ``fig`` as ``name.svg`` (vector, for the report), atomically; returns the file
    name. The same data give the same bytes: no date, a fixed hash salt for the SVG's ids,
    glyphs drawn as paths (no font needed to view it). Settings are scoped to this call."""
    from matplotlib import rc_context

    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "fmlp", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    atomic_write_bytes(folder / f"{name}.svg", buf.getvalue())
    return [f"{name}.svg"]
