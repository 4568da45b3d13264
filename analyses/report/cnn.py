"""The report's CNN section: the network, CNN against MLP, the regularizer against the
vanilla CNN; every comment derived from the measured curves."""

from __future__ import annotations

from pathlib import Path

from analyses.report.common import figures, settings_lines
from analyses.report.fmt import pct, split_sizes, thousands, widths
from analyses.report.pdfdoc import Document
from analyses.studies.cnn import CnnSummary
from analyses.studies.cnn.summary import Variant, table_rows


def _seeds(seeds: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in seeds)


def mlp_name(s: CnnSummary) -> str:
    m = s.mlp
    return f"{widths(m.sizes)} {m.config.activation} ({thousands(m.n_params)} parameters)"


def comments(s: CnnSummary) -> list[str]:
    """Comments on the CNN against the MLP and on the regularizer, from the results."""
    van = s.variant("vanilla")
    reg = next(v for v in s.variants if v.name != "vanilla")
    mlp = s.mlp
    notes = [
        f"The CNN has {thousands(s.cnn_params)} parameters against the MLP's "
        f"{thousands(mlp.n_params)} (ratio {s.param_ratio:.4f}), so the comparison is at equal "
        "size; the convolutions hold few of them and the fully connected head most."
    ]
    mlp_err = mlp.result.curves.valid_error[-1]
    a = van.aggregate
    v_err, v_sd = a.final_valid_error, a.final_valid_error_sd
    if v_err < mlp_err:
        ratio = f"{mlp_err / v_err:.1f} times fewer" if v_err > 0 else "no"
        cmp = (
            f"the CNN makes {ratio} errors. Weight sharing and pooling build in translation "
            "equivariance that the MLP must learn from data."
        )
    else:
        cmp = "the CNN does not beat the MLP here."
    notes.append(
        f"After {s.epochs} epochs the vanilla CNN's validation error is {pct(v_err)} (sd "
        f"{pct(v_sd)} over {len(van.runs)} seeds) against the MLP's {pct(mlp_err)}: " + cmp
    )
    gap_v = a.valid_error.mean[-1] - a.train_error.mean[-1]
    r = reg.aggregate
    gap_r = r.valid_error.mean[-1] - r.train_error.mean[-1]
    notes.append(
        "Generalization gap (validation error minus training-subset error, last epoch): "
        f"vanilla {pct(gap_v)}, {reg.technique} {pct(gap_r)}"
        + (
            f"; {reg.technique} narrows it."
            if gap_r < gap_v
            else f"; {reg.technique} does not narrow it."
        )
    )
    notes.append(verdict_text(s))
    met = "met" if a.final_valid_accuracy >= s.target_vanilla else "missed"
    notes.append(
        f"Target for the vanilla CNN: {pct(s.target_vanilla)} validation accuracy; it reaches "
        f"{pct(a.final_valid_accuracy)} ({met})."
    )
    notes.append(
        "Early stopping on the validation loss would have stopped at epoch(s) "
        + ", ".join(
            f"{', '.join(str(x.early_stop_epoch) for x in v.runs)} ({v.name})" for v in s.variants
        )
        + ", one per seed."
    )
    check = (
        "equals the search's bit for bit"
        if mlp.matches_search
        else "does NOT equal the search's: the MLP compared with is not exactly the chosen model"
    )
    notes.append(f"The retrained MLP's validation accuracy per epoch {check}.")
    return notes


def verdict_text(s: CnnSummary) -> str:
    v = s.verdict
    van = s.variant("vanilla").aggregate
    reg = next(x for x in s.variants if x.name != "vanilla").aggregate
    head = (
        f"{v.technique.capitalize()} changes the mean final validation error from "
        f"{pct(van.final_valid_error)} to {pct(reg.final_valid_error)}, a gain of "
        f"{100 * v.gain:.2f} points; twice the larger seed sd is {100 * 2 * v.noise:.2f} points: "
    )
    if v.beyond_noise:
        return head + "the gain exceeds it, a real improvement."
    if v.gain > 0:
        return head + "the gain does not exceed it, so it cannot be told from seed-to-seed noise."
    return head + "the regularized CNN is not better on average."


def _variant_line(v: Variant) -> str:
    return f"CNN {v.name}: {v.description} ({thousands(v.n_params)} parameters)"


def section(doc: Document, s: CnnSummary, folder: Path) -> None:
    doc.heading("4. A convolutional network")
    doc.paragraph(
        f"PyTorch, on the same split as the MLP. After each epoch the loss (mean cross-entropy) "
        f"and error rate are measured on {s.train_measured_on} (training curves) and on the "
        "whole validation set; the test set once, after the last epoch. The MLP compared with "
        f"is the search's chosen model, {mlp_name(s)}, retrained here with fmlp.fit exactly "
        "as the search trained it to measure the same curves."
    )
    doc.bullets(
        settings_lines(
            [
                ("data", f"{s.dataset}: {split_sizes(s.dataset_sizes)}"),
                ("epochs", f"{s.epochs}; seeds {_seeds(s.seeds)}"),
                ("optimizer", s.optimizer),
                ("MLP", s.mlp.description),
                ("device", f"{s.device}, {s.threads} thread per run"),
            ]
        )
    )
    for v in s.variants:
        doc.paragraph(_variant_line(v))
    doc.table(
        ["layer", "kind", "kernel", "in", "out", "output shape", "params"],
        [
            [
                r.name,
                r.kind,
                "" if r.kernel is None else str(r.kernel),
                "" if r.n_in is None else str(r.n_in),
                "" if r.n_out is None else str(r.n_out),
                "x".join(str(d) for d in r.output_shape),
                thousands(r.params),
            ]
            for r in s.variant("vanilla").layers
        ],
        size=7.5,
    )
    doc.table(
        [
            "model",
            "params",
            "seeds",
            "final train error",
            "final valid error",
            "sd over seeds",
            "test error",
        ],
        [
            [
                name,
                thousands(params),
                str(seeds),
                pct(train),
                pct(valid),
                "-" if sd is None else pct(sd),
                pct(test),
            ]
            for name, params, seeds, train, valid, sd, test in table_rows(s)
        ],
        size=7.5,
    )
    doc.paragraph("Validation error per epoch (CNN: mean over seeds, sd in brackets):")
    mlp_row = ["MLP"] + [pct(e) for e in s.mlp.result.curves.valid_error]
    rows = [mlp_row] + [
        [f"CNN {v.name}"]
        + [
            f"{pct(m)} ({100 * sd:.2f})"
            for m, sd in zip(v.aggregate.valid_error.mean, v.aggregate.valid_error.sd, strict=True)
        ]
        for v in s.variants
    ]
    n = max(len(r) for r in rows) - 1
    doc.table(
        ["model"] + [str(e) for e in range(1, n + 1)],
        [r + [""] * (n + 1 - len(r)) for r in rows],
        size=5.5,
    )
    figures(doc, folder, s.figures)
    doc.heading("Comments", 2)
    doc.bullets(comments(s))


def headline(s: CnnSummary) -> list[list[str]]:
    """The title page's rows: each CNN variant's validation accuracy, and the verdict."""
    rows = [
        [
            f"CNN {v.name}, validation accuracy",
            pct(v.aggregate.final_valid_accuracy),
            f"mean of {len(v.runs)} seeds, sd {pct(v.aggregate.final_valid_error_sd)}",
        ]
        for v in s.variants
    ]
    rows.append(
        [
            f"CNN {s.verdict.technique} against vanilla",
            f"{100 * s.verdict.gain:+.2f} points",
            "beyond noise (> 2 sd)" if s.verdict.beyond_noise else "within noise (<= 2 sd)",
        ]
    )
    return rows
