"""The text a run prints: one setting's table (training, GEMM peak, evaluation, loading,
memory, targets, notes), the rows of ``summary.json``'s ``table``, and the median epoch
times of several OpenBLAS settings side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analyses.benchmark.cells import TrainingCell
from analyses.benchmark.setting import SettingRecord, TableRow
from analyses.benchmark.spec import FRAMEWORKS
from analyses.benchmark.training import Epochs, Ratio


def _fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def _fmt_s(rec: Epochs | None) -> str:
    if rec is None:
        return "—"
    return f"{rec.median:.3f}±{rec.iqr:.3f}"


def _fmt_r(r: Ratio | None, cpu: bool = False) -> str:
    if r is None:
        return "—"
    return f"{r.cpu_of_medians if cpu else r.of_medians:.2f}"


def _aligned(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """The header and rows as lines, each column left-aligned to its widest cell."""
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [head, *body]]


def _jax_compile(t: TrainingCell) -> float | None:
    jax = t.epochs("jax")
    return None if jax is None else jax.compile_seconds


def table_rows(record: SettingRecord) -> list[TableRow]:
    """The rows of ``summary.json``'s ``table``, one per cell of a setting's record."""
    rows = []
    for t in record.training:
        f = t.epochs("fmlp")
        rows.append(
            TableRow(
                setting=record.setting,
                dataset=t.dataset,
                dtype=t.dtype,
                batch=t.batch,
                seconds={
                    name: (None if run.epochs is None else run.epochs.median)
                    for name, run in t.frameworks.items()
                },
                jax_compile_seconds=_jax_compile(t),
                fmlp_gflops=None if f is None else f.gflops,
                fmlp_peak_fraction=t.peak_fraction.get("fmlp"),
                gemm_bound_seconds=t.gemm_bound_seconds,
                ratios={k: (None if v is None else v.of_medians) for k, v in t.ratios.items()},
            )
        )
    return rows


def format_table(record: SettingRecord) -> str:
    """A setting's record as the text printed on screen."""
    fws = [n for n in FRAMEWORKS if n in record.config.frameworks]
    blas = record.blas[0] if record.blas else None
    env = record.openblas_env
    threads = record.threads
    load = record.load_avg
    lines = [
        f"setting {record.setting}: OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} "
        f"OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}; "
        f"BLAS {blas.internal_api if blas else None} {blas.version if blas else None} "
        f"kernel {blas.architecture if blas else None}, {threads.numpy_blas} threads "
        f"(torch {threads.torch}); load {list(load.start)} -> {list(load.end)}",
        "GEMM peak: "
        + ", ".join(
            f"{dt} {p.size}^3 {p.gflops_best:.1f} GFLOP/s (median {p.gflops_median:.1f})"
            for dt, p in record.gemm.peak.items()
        ),
        "seconds per epoch, median±IQR over measured epochs; GFLOP/s and %peak are fmlp's; "
        "GEMM-only is the 8 products timed alone; ratios of median wall times, "
        "'cpu' of median CPU times",
    ]
    head = [
        "data",
        "dtype",
        "batch",
        *fws,
        "jax compile",
        "GEMM-only",
        "GFLOP/s",
        "%peak",
        "fmlp/torch",
        "fmlp/jax",
        "fmlp/ref",
        "fmlp/ref cpu",
    ]
    body = []
    for t in record.training:
        f = t.epochs("fmlp")
        jc = _jax_compile(t)
        ref = t.ratios.get("fmlp/reference")
        body.append(
            [
                t.dataset,
                t.dtype,
                str(t.batch),
                *[_fmt_s(t.epochs(n)) for n in fws],
                "—" if jc is None else f"{jc:.2f}s",
                f"{t.gemm_bound_seconds:.3f}",
                "—" if f is None else f"{f.gflops:.1f}",
                "—" if f is None else f"{100 * t.peak_fraction['fmlp']:.0f}%",
                _fmt_r(t.ratios.get("fmlp/torch")),
                _fmt_r(t.ratios.get("fmlp/jax")),
                _fmt_r(ref),
                _fmt_r(ref, cpu=True),
            ]
        )
    lines.extend(_aligned(head, body))
    ev = record.evaluation.dtypes
    lines.append(
        "evaluation (fmlp.evaluate): "
        + ", ".join(
            f"{dt} {ev[dt].samples} samples in {ev[dt].seconds_median:.3f}s "
            f"({ev[dt].samples_per_second:.0f}/s)"
            for dt in record.config.dtypes
        )
    )
    ld = record.data_loading
    lines.append(
        "data loading: "
        + (
            ", ".join(f"{dt} {ld.dtypes[dt].seconds_median:.3f}s" for dt in record.config.dtypes)
            if ld.available
            else str(ld.note)
        )
    )
    mem = record.memory
    lines.append(
        f"peak RSS: this process {mem.parent_peak_rss_mb:.0f} MB; "
        f"children (MB, {record.config.rss_dataset}, "
        "peak / after data / training alone): "
        + ", ".join(
            f"{n} {c.peak.peak_rss_mb:.0f} / {c.peak.baseline_rss_mb:.0f} / "
            f"{_fmt_mb(c.peak.training_peak_rss_mb)} ({c.peak.epochs} ep)"
            if c.peak is not None
            else f"{n}: {c.note}"
            for n, c in mem.children.items()
        )
    )
    d = record.float64_over_float32
    if d:
        lines.append(
            "float64/float32: "
            + "; ".join(
                f"{k} " + " ".join(f"{n} {v:.2f}" for n, v in r.items()) for k, r in d.items()
            )
        )
    lines.append("targets:")
    for tg in record.targets:
        val = "—" if tg.value is None else f"{tg.value:.3f}"
        met = {True: "met", False: "NOT met", None: "not measured"}[tg.met]
        lines.append(f"  {tg.name}: {val} (threshold {tg.threshold}) {met}; {tg.note}")
    lines.extend(f"note: {n}" for n in record.notes)
    return "\n".join(lines)


def format_side_by_side(settings: Mapping[str, SettingRecord]) -> str:
    """Median seconds per epoch of each framework under each OpenBLAS setting."""
    names = list(settings)
    keys: dict[tuple[str, str, int], None] = {}
    for rec in settings.values():
        for t in rec.training:
            keys[(t.dataset, t.dtype, t.batch)] = None
    fws = [n for n in FRAMEWORKS if any(n in rec.config.frameworks for rec in settings.values())]
    head = ["data", "dtype", "batch"] + [f"{fw} [{s}]" for fw in fws for s in names]
    body = []
    for key in keys:
        row = [key[0], key[1], str(key[2])]
        for fw in fws:
            for s in names:
                cell = next(
                    (t for t in settings[s].training if (t.dataset, t.dtype, t.batch) == key),
                    None,
                )
                row.append(_fmt_s(cell.epochs(fw)) if cell else "—")
        body.append(row)
    lines = [
        "seconds per epoch under each OpenBLAS setting ("
        + "; ".join(
            f"{s}: kernel {rec.blas[0].architecture if rec.blas else '?'}"
            for s, rec in settings.items()
        )
        + ")"
    ]
    lines.extend(_aligned(head, body))
    return "\n".join(lines)
