"""What every section of the report uses: figures embedded from a study's folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyses.report.pdfdoc import Document


def figure(doc: Document, folder: Path, name: str, *, max_height: float = 4.6) -> None:
    """Embed ``<folder>/<name>.png``, or say that it is missing (by its name only: the
    report never prints a path, so the same results give the same PDF anywhere)."""
    path = folder / f"{name}.png"
    if path.exists():
        doc.image(path, max_height=max_height)
    else:
        doc.paragraph(f"(the figure {folder.name}/{path.name} is missing)", style="italic")


def figures(doc: Document, folder: Path, files: Sequence[str]) -> None:
    """Every PNG figure a study listed, in its order."""
    names: list[str] = []
    for f in files:
        stem = Path(f).stem
        if stem not in names:
            names.append(stem)
    for name in names:
        figure(doc, folder, name)


def settings_lines(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return [f"{k}: {v}" for k, v in pairs]
