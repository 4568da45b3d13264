"""How the report writes numbers: percentages, significant digits, thousands."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def pc(x: float | None, digits: int = 2) -> str:
    """A fraction in percent without the sign, for a column whose header says (%)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def sci(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2e}" if math.isfinite(x) else num(x))


def thousands(n: int) -> str:
    return f"{n:,}"


def widths(sizes: Sequence[int]) -> str:
    return "-".join(str(s) for s in sizes)


def first_finite(values: Sequence[float | None]) -> float | None:
    for v in values:
        if v is not None and math.isfinite(v):
            return v
    return None


def last_finite(values: Sequence[float | None]) -> float | None:
    return first_finite(list(reversed(values)))


def duration(seconds: float) -> str:
    """'4 s' below a minute, else '10.2 min'."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log y against log x over the positive finite pairs."""
    pairs = [
        (math.log(x), math.log(y))
        for x, y in zip(xs, ys, strict=True)
        if y > 0 and math.isfinite(y)
    ]
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx if sxx else None
