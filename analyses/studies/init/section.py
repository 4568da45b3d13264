"""The initialization study's section of the report: settings, tables, figures and comments, each
comment derived from the measured curves."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Final

from analyses.report.common import figure, settings_lines
from analyses.report.fmt import last_finite, num, pc, pct, sci, thousands, widths
from analyses.report.markup import Document, formula, m, ref
from analyses.report.section import Section, no_headline
from analyses.studies.init.summary import InitSummary

LN10: Final = math.log(10.0)


def comments(s: InitSummary) -> list[str]:
    """Comments on the three initializations, each derived from the measured curves."""
    notes: list[str] = []
    epochs = s.settings.epochs
    finals = {r.scheme: last_finite(r.curves.train_loss) for r in s.runs}
    ranked = sorted((v, k) for k, v in finals.items() if v is not None)
    if ranked:
        order = ", ".join(f"{k} ({num(v)})" for v, k in ranked)
        notes.append(
            m(
                f"After {epochs} epochs the training loss ranks {order} (",
                ref("tab-init-epochs"),
                ", ",
                ref("fig-init-loss"),
                ").",
            )
        )
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
        notes.append(m(text, " See ", ref("fig-init-diagnostics"), "."))
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
        notes.append(m(text, " See ", ref("fig-init-loss"), "."))
    if glorot is not None:
        notes.append(
            m(
                "Glorot initialization (",
                ref("eq-glorot"),
                ") starts near ln 10 (initial loss "
                f"{num(glorot.initial.train_loss)}, logit std {num(glorot.initial.logit_std)}): "
                "activations keep a moderate scale through the layers, and it reaches "
                f"{pct(last_finite(glorot.curves.val_accuracy))} validation accuracy (",
                ref("tab-init"),
                ").",
            )
        )
    return notes


def param_count(sizes: tuple[int, ...]) -> str:
    """The parameter count as an equation: each layer's weights and biases, summed."""
    terms = " + ".join(f"({a} + 1) dot {b}" for a, b in itertools.pairwise(sizes))
    total = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    return f'P = sum_(l=1)^{len(sizes) - 1} (h_(l-1) + 1) h_l = {terms} = "{thousands(total)}"'


def section(doc: Document, s: InitSummary, folder: Path) -> None:
    st = s.settings
    doc.paragraph(
        "Biases are zero; the weights are all zero (zero), drawn from ",
        formula("cal(N)(0, 1)"),
        " (normal), or from Glorot's uniform distribution (glorot),",
    )
    doc.equation(
        'W_(j k) tilde cal(U)(-d, d), quad d = sqrt(6 / (h_"in" + h_"out")),',
        label="eq-glorot",
    )
    doc.paragraph(
        "with ",
        formula('h_"in"'),
        " and ",
        formula('h_"out"'),
        " the widths of the layer's input and output. Everything else is shared: the "
        "architecture, the learning rate, the mini-batch size and the order of the data. The "
        "loss is the average cross-entropy of the softmax of the logits ",
        formula("z(x; theta)"),
        " over the ",
        formula("n"),
        " samples of a set,",
    )
    doc.equation(
        'L(theta) = -1/n sum_(i=1)^n log "softmax"(z(x_i; theta))_(y_i), quad '
        '"softmax"(z)_c = e^(z_c) / (sum_k e^(z_k)),',
        label="eq-xent",
    )
    doc.paragraph(
        m(
            "measured on the whole training set at the end of each epoch. A network of widths ",
            formula("h_0, dots, h_L"),
            " has ",
        ),
        formula("P"),
        " parameters (",
        ref("eq-params"),
        "):",
    )
    doc.equation(param_count(st.sizes), label="eq-params")
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
    doc.paragraph(
        "The three initializations side by side: ",
        ref("tab-init"),
        " gives their losses and validation accuracy, ",
        ref("tab-init-epochs"),
        " the training loss after every epoch, ",
        ref("fig-init-loss"),
        " the curves and ",
        ref("fig-init-diagnostics"),
        " what happens inside the layers.",
    )
    doc.table(
        [
            "init",
            "loss at init",
            "loss, epoch 1",
            f"loss, epoch {st.epochs}",
            "valid loss",
            "valid accuracy (%)",
        ],
        [
            [
                r.scheme,
                num(r.initial.train_loss),
                num(r.curves.train_loss[0]),
                num(r.curves.train_loss[-1]),
                num(r.curves.val_loss[-1]),
                pc(r.curves.val_accuracy[-1]),
            ]
            for r in s.runs
        ],
        caption=m(
            "Each initialization: the average training loss (",
            ref("eq-xent"),
            ") at initialization, after the first and after the last epoch, and the validation "
            f"loss and accuracy after epoch {st.epochs}.",
        ),
        label="tab-init",
    )
    doc.table(
        ["epoch"] + [r.scheme for r in s.runs],
        [
            [str(e)] + [num(r.curves.train_loss[i], 4) for r in s.runs]
            for i, e in enumerate(s.runs[0].curves.epoch)
        ],
        caption="The average training loss at the end of each epoch.",
        label="tab-init-epochs",
    )
    figure(
        doc,
        folder,
        "init_loss",
        caption="The average training loss (left) and the validation accuracy (right) at the "
        "end of each epoch, for each initialization.",
        label="fig-init-loss",
    )
    figure(
        doc,
        folder,
        "init_diagnostics",
        caption=f"Inside the layers, on a subsample of {st.n_diag} training samples: the spread "
        "of the pre-activations, the norm of each layer's weight gradient, the fraction of dead "
        "ReLUs, and how far each layer's parameters moved from their initial values.",
        label="fig-init-diagnostics",
    )
    doc.comments(comments(s))


SECTION: Final = Section(
    "Initialization",
    section,
    no_headline,
    lambda s: s.machine,
    lambda s: s.settings.dataset,
)
"""The study's section of the report."""
