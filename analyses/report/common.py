"""What every section of the report uses: a study's figure by name, a settings list."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyses.report.markup import Document


def figure(
    doc: Document, folder: Path, name: str, *, caption: str, label: str, width: float = 100
) -> None:
    """The study's figure ``<folder>/<name>.svg``, numbered and captioned; referred to
    in the text as ``ref(label)``."""
    doc.figure(folder / f"{name}.svg", caption=caption, label=label, width=width)


def settings_lines(pairs: Sequence[tuple[str, object]]) -> list[str]:
    return [f"{k}: {v}" for k, v in pairs]
