"""The report's initialization section: settings, tables, figures and comments, each
comment derived from the measured curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

from analyses.report.common import figures, settings_lines
from analyses.report.fmt import last_finite, num, pct, sci, thousands, widths
from analyses.report.pdfdoc import Document
from analyses.studies.init import InitSummary

LN10: Final = math.log(10.0)


def comments(s: InitSummary) -> list[str]:
    """Comments on the three initializations, each derived from the measured curves."""
    notes: list[str] = []
    epochs = s.settings.epochs
    finals = {r.scheme: last_finite(r.curves.train_loss) for r in s.runs}
    ranked = sorted((v, k) for k, v in finals.items() if v is not None)
    if ranked:
        order = ", ".join(f"{k} ({num(v)})" for v, k in ranked)
        notes.append(f"After {epochs} epochs the training loss ranks: {order}.")
    zero, normal, glorot = s.run("zero"), s.run("normal"), s.run("glorot")
    if zero is not None:
        losses = [v for v in zero.curves.train_loss if math.isfinite(v)]
        stayed = bool(losses) and max(abs(v - LN10) for v in losses) < 0.02
        sym = zero.symmetry
        if stayed:
            text = (
                f"Zero initialization stays at the loss of a uniform guess, ln 10 = {LN10:.4f} "
                f"(from {num(losses[0])} to {num(losses[-1])})."
            )
        else:
            text = (
                f"Zero initialization moves away from ln 10 = {LN10:.4f} (training loss "
                f"{num(losses[0] if losses else None)} to {num(losses[-1] if losses else None)})."
            )
        if sym.hidden_units_identical:
            text += (
                " Every hidden unit of a layer keeps identical parameters at every epoch "
                f"(largest spread across units {sci(sym.max_hidden_unit_spread)}): the units "
                "receive identical gradients, so the symmetry is never broken."
            )
        if sym.only_output_bias_moves:
            text += (
                " Only the output bias moves; with zero hidden activations the weight gradients "
                "are zero, so the network can learn at most the class frequencies."
            )
        notes.append(text)
    if normal is not None:
        init = normal.initial
        text = (
            f"Standard normal weights start with huge logits (std {num(init.logit_std)}, "
            f"largest |z| {num(init.logit_max_abs)}) and an initial training loss of "
            f"{num(init.train_loss)}, far above ln 10: the softmax is saturated, so most "
            "samples are confidently wrong."
        )
        if normal.nonfinite.first_diverged_epoch is not None:
            text += (
                " The run diverged (non-finite loss) at epoch "
                f"{normal.nonfinite.first_diverged_epoch}."
            )
        elif glorot is not None:
            nt, gt = finals.get("normal"), finals.get("glorot")
            nv = last_finite(normal.curves.val_loss)
            gv = last_finite(glorot.curves.val_loss)
            if nt is not None and gt is not None and nv is not None and gv is not None:
                text += (
                    f" After {epochs} epochs its training loss is {num(nt)} against Glorot's "
                    f"{num(gt)}, and its validation loss {num(nv)} against {num(gv)}"
                )
                if nt < gt and nv > gv:
                    text += (
                        ": it fits the training set, yet its large weights keep the few "
                        "mistakes on unseen data extremely confident, so it generalizes worse."
                    )
                elif nt > gt:
                    text += ": it is still behind Glorot."
                else:
                    text += "."
        notes.append(text)
    if glorot is not None:
        notes.append(
            "Glorot initialization starts near ln 10 (initial loss "
            f"{num(glorot.initial.train_loss)}, logit std {num(glorot.initial.logit_std)}): "
            "activations keep a moderate scale through the layers, and it reaches "
            f"{pct(last_finite(glorot.curves.val_accuracy))} validation accuracy."
        )
    return notes


def section(doc: Document, s: InitSummary, folder: Path) -> None:
    st = s.settings
    doc.heading("1. Initialization")
    doc.paragraph(
        "Biases are zero; the weights are all zero (Zero), drawn from N(0, 1) (Normal), or from "
        "U(-d, d) with d = sqrt(6 / (h_in + h_out)) (Glorot). Everything else is shared: the "
        "architecture, the learning rate, the mini-batch size and the order of the data. The "
        "loss plotted is the average cross-entropy on the whole training set at the end of "
        "each epoch."
    )
    hidden = ", ".join(str(h) for h in st.sizes[1:-1])
    doc.bullets(
        settings_lines(
            [
                (
                    "architecture",
                    f"{widths(st.sizes)} ({len(st.sizes) - 2} hidden layers of {hidden} units), "
                    f"{thousands(st.n_params)} parameters",
                ),
                ("nonlinearity", st.activation),
                ("optimizer", f"plain SGD, learning rate {st.lr}, mini-batch size {st.batch_size}"),
                ("epochs", f"{st.epochs}, seed {st.seed}, {st.dtype}"),
                ("data", f"{st.dataset}: {st.dataset_sizes.text()}"),
                ("data order", st.data_order),
            ]
        )
    )
    rows = [
        [
            r.scheme,
            num(r.initial.train_loss),
            num(r.curves.train_loss[0]),
            num(r.curves.train_loss[-1]),
            num(r.curves.val_loss[-1]),
            pct(r.curves.val_accuracy[-1]),
        ]
        for r in s.runs
    ]
    doc.table(
        [
            "init",
            "loss at init",
            "loss epoch 1",
            f"loss epoch {st.epochs}",
            "valid loss",
            "valid acc",
        ],
        rows,
    )
    doc.paragraph("Average training loss at the end of each epoch:")
    doc.table(
        ["init"] + [str(e) for e in s.runs[0].curves.epoch],
        [[r.scheme] + [num(v, 3) for v in r.curves.train_loss] for r in s.runs],
        size=7.0,
    )
    figures(doc, folder, s.figures)
    doc.heading("Comments", 2)
    doc.bullets(comments(s))
