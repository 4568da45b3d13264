"""The targets fmlp's training speed and memory are held to, each checked against the
synthetic cells of one setting's record.

fmlp is a functional library: every step returns new parameters. The targets say what
that may cost: fmlp trains in at most three quarters of PyTorch eager's time and no
slower than a jitted JAX epoch, its products reach three quarters of the machine's
sgemm peak, it is at most 15% slower than an in-place numpy loop doing the same
arithmetic, float64 costs it no more than about twice float32 (what BLAS allows), and a
10-epoch ``fit`` on MNIST stays under 1 GB of resident memory. A target is judged in
every setting measured; where it is meant for one setting, its note says which."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

RSS_LIMIT_MB: Final = 1000.0


def _cell(record: Mapping[str, Any], dtype: str, batch: int) -> Mapping[str, Any] | None:
    """The synthetic cell of ``dtype`` and ``batch``, or None when it was not measured."""
    for r in record["training"]:
        if r["dataset"] == "synthetic" and r["dtype"] == dtype and r["batch"] == batch:
            return r  # type: ignore[no-any-return]  # records are JSON dicts
    return None


def _target(
    name: str, value: float | None, threshold: float, *, below: bool, note: str
) -> dict[str, Any]:
    met = (
        None
        if value is None or not math.isfinite(value)
        else (value <= threshold if below else value >= threshold)
    )
    return {"name": name, "value": value, "threshold": threshold, "met": met, "note": note}


def evaluate_targets(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every target, measured on the synthetic cells of this setting."""
    out = []
    c128 = _cell(record, "float32", 128)
    r = c128["ratios"] if c128 else {}
    torch_r = r.get("fmlp/torch")
    jax_r = r.get("fmlp/jax")
    out.append(
        _target(
            "fmlp/torch epoch time, float32, batch 128",
            torch_r["of_medians"] if torch_r else None,
            0.75,
            below=True,
            note="meant for the default setting, the environment the studies run in",
        )
    )
    out.append(
        _target(
            "fmlp/jax epoch time, float32, batch 128",
            jax_r["of_medians"] if jax_r else None,
            1.0,
            below=True,
            note="meant for the native setting (XLA does not use OpenBLAS's kernel)",
        )
    )
    c256 = _cell(record, "float32", 256)
    frac = c256["frameworks"].get("fmlp", {}).get("peak_fraction") if c256 else None
    out.append(
        _target(
            "fmlp fraction of the sgemm peak, float32, batch 256",
            frac,
            0.75,
            below=False,
            note="meant for the native setting, OpenBLAS's own kernel choice",
        )
    )
    refs = [
        t["ratios"]["fmlp/reference"]["of_medians"]
        for t in record["training"]
        if t["ratios"].get("fmlp/reference")
    ]
    out.append(
        _target(
            "fmlp/reference epoch time, worst cell",
            max(refs) if refs else None,
            1.15,
            below=True,
            note="over every dataset, dtype and batch measured",
        )
    )
    d = [
        v["fmlp"]
        for k, v in record["float64_over_float32"].items()
        if k.startswith("synthetic/") and "fmlp" in v
    ]
    out.append(
        _target(
            "fmlp float64/float32 epoch time, worst batch",
            max(d) if d else None,
            2.2,
            below=True,
            note="the reference loop's ratio, in float64_over_float32, shows what BLAS allows",
        )
    )
    child = record["memory"]["children"].get("fmlp", {})
    rss = None if child.get("skipped", True) else child["peak_rss_mb"]
    out.append(
        _target(
            f"peak RSS (MB) of a {child.get('epochs', '?')}-epoch fmlp.fit, float32, on "
            f"{child.get('dataset', '?')}",
            rss,
            RSS_LIMIT_MB,
            below=True,
            note="meant for 10 epochs on MNIST, the default run (--quick measures less)",
        )
    )
    return out
