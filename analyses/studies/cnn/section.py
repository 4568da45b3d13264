"""The CNN study's section of the report: the network, CNN against MLP, the
regularizers screened and the chosen one against the vanilla CNN; every comment derived
from the measured results."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from analyses.report.common import figure, settings_lines
from analyses.report.fmt import pc, pct, thousands, widths
from analyses.report.markup import Document, m, ref
from analyses.report.section import Section
from analyses.studies.cnn.summary import CnnSummary, Screened
from analyses.studies.cnn.tables import table_rows

SPLITS: Final[tuple[str, ...]] = ("train", "valid", "test")


def _seeds(seeds: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in seeds)


def _points(x: float) -> str:
    return f"{100 * x:.2f} points"


def mlp_name(s: CnnSummary) -> str:
    mlp = s.mlp
    return f"{widths(mlp.sizes)} {mlp.config.activation} ({thousands(mlp.n_params)} parameters)"


def verdict_text(s: CnnSummary) -> str:
    """Whether the chosen technique's gain over vanilla exceeds twice the larger sd."""
    v = s.verdict
    van, cho = s.vanilla.aggregate, s.chosen.aggregate
    n = len(s.seeds)
    head = (
        f"Over the same {n} seeds, {v.technique} changes the mean final validation error from "
        f"{pct(van.final_valid_error)} (sd {pct(van.final_valid_error_sd)}) to "
        f"{pct(cho.final_valid_error)} (sd {pct(cho.final_valid_error_sd)}): a gain of "
        f"{_points(v.gain)} against twice the larger sd, {_points(2 * v.noise)}. "
    )
    if v.beyond_noise:
        return head + "The gain exceeds it: an improvement beyond seed-to-seed noise."
    if v.gain > 0:
        return head + "The gain does not exceed it, so it cannot be told from seed-to-seed noise."
    return head + f"The CNN with {v.technique} is not better on average."


def target_text(s: CnnSummary) -> str:
    v = s.verdict
    acc = s.chosen.aggregate.final_valid_accuracy
    if v.target_met and v.beyond_noise:
        return (
            f"The aim was a regularized CNN at {pct(v.target)} or more, with a gain beyond twice "
            f"the larger sd: {v.technique} reaches {pct(acc)}, and both hold."
        )
    missed = []
    if not v.target_met:
        missed.append(f"its mean validation accuracy, {pct(acc)}, is below {pct(v.target)}")
    if not v.beyond_noise:
        missed.append("its gain over vanilla is not beyond twice the larger sd")
    return (
        f"The aim was a regularized CNN at {pct(v.target)} or more with a gain beyond twice the "
        f"larger sd; no technique screened got there: for the chosen one, {v.technique}, "
        + " and ".join(missed)
        + "."
    )


def screening_text(s: CnnSummary) -> str:
    ran = sorted((x for x in s.screening if x.rank is not None), key=lambda x: x.rank or 0)
    order = ", ".join(
        f"{x.technique.name} ({pct(1 - x.result.curves.valid_error[-1])})"
        for x in ran
        if x.result is not None
    )
    base = next(r for r in s.vanilla.runs if r.seed == s.screening_seed).result.curves
    failed = [x.technique.name for x in s.screening if x.result is None]
    text = (
        f"At seed {s.screening_seed} the techniques rank {order}, against vanilla's "
        f"{pct(1 - base.valid_error[-1])}; {s.chosen.name} is chosen."
    )
    if failed:
        text += f" The screening runs of {', '.join(failed)} failed."
    return text


def comments(s: CnnSummary) -> list[str]:
    """Comments on the CNN against the MLP and on regularization, from the results."""
    van, cho, mlp = s.vanilla, s.chosen, s.mlp
    notes = [
        f"The CNN has {thousands(s.cnn_params)} parameters against the MLP's "
        f"{thousands(mlp.n_params)} (ratio {s.param_ratio:.4f}), so the comparison is at equal "
        "size; the convolutions hold few of them and the fully connected head most."
    ]
    mlp_err = mlp.curves.valid_error[-1]
    a = van.aggregate
    if a.final_valid_error < mlp_err:
        fewer = (
            f"{mlp_err / a.final_valid_error:.1f} times fewer" if a.final_valid_error > 0 else "no"
        )
        cmp = (
            f"the CNN makes {fewer} errors. Weight sharing and pooling build in translation "
            "equivariance that the MLP must learn from data."
        )
    else:
        cmp = "the CNN does not beat the MLP here."
    notes.append(
        m(
            f"After {s.epochs} epochs the vanilla CNN's validation error is "
            f"{pct(a.final_valid_error)} (mean of {len(van.runs)} seeds, sd "
            f"{pct(a.final_valid_error_sd)}) against the MLP's {pct(mlp_err)} (",
            ref("tab-cnn-models"),
            ", ",
            ref("fig-cnn-errors"),
            "): " + cmp,
        )
    )
    c = cho.aggregate
    gap_v = a.valid_error.mean[-1] - a.train_error.mean[-1]
    gap_c = c.valid_error.mean[-1] - c.train_error.mean[-1]
    narrows = "narrows it" if gap_c < gap_v else "does not narrow it"
    notes.append(
        "Generalization gap (validation error minus training-subset error, last epoch, mean "
        f"over seeds): vanilla {pct(gap_v)}, {cho.name} {pct(gap_c)}; {cho.name} {narrows}."
    )
    notes.append(m(screening_text(s), " See ", ref("tab-cnn-screening"), "."))
    notes.append(m(target_text(s), " See ", ref("tab-cnn-seeds"), "."))
    note = loss_note(s)
    if note is not None:
        notes.append(m(note, " See ", ref("fig-cnn-loss"), "."))
    met = "met" if a.final_valid_accuracy >= s.target_vanilla else "missed"
    notes.append(
        f"Target for the vanilla CNN: {pct(s.target_vanilla)} validation accuracy; it reaches "
        f"{pct(a.final_valid_accuracy)} ({met})."
    )
    stops = "; ".join(
        f"{v.name}: {', '.join(str(r.early_stop_epoch) for r in v.runs)}" for v in s.variants
    )
    notes.append(
        "Early stopping on the validation loss would have stopped at these epochs, one per "
        f"seed ({stops}); stopping is free to measure from the curves, so it was not screened "
        "as a run of its own."
    )
    return notes


def _screening_rows(s: CnnSummary) -> list[list[str]]:
    def row(x: Screened) -> list[str]:
        if x.result is None:
            return [x.technique.name, "failed", "", "", ""]
        c = x.result.curves
        return [
            x.technique.name,
            pc(1 - c.valid_error[-1]),
            pc(min(c.valid_error)),
            pc(c.valid_error[-1] - c.train_error[-1]),
            str(x.rank),
        ]

    base = next(r for r in s.vanilla.runs if r.seed == s.screening_seed).result.curves
    vanilla = [
        "vanilla",
        pc(1 - base.valid_error[-1]),
        pc(min(base.valid_error)),
        pc(base.valid_error[-1] - base.train_error[-1]),
        "-",
    ]
    return [vanilla] + [row(x) for x in s.screening]


def loss_note(s: CnnSummary) -> str | None:
    """When the chosen technique smooths the labels and ends with a higher validation
    loss than vanilla although it errs less, say why its loss curves sit higher."""
    cho, van = s.chosen, s.vanilla
    c_loss, v_loss = cho.aggregate.valid_loss.mean[-1], van.aggregate.valid_loss.mean[-1]
    if not cho.train.label_smoothing or c_loss <= v_loss:
        return None
    if cho.aggregate.final_valid_error >= van.aggregate.final_valid_error:
        return None
    return (
        f"{cho.name} ends with a higher validation loss than vanilla ({c_loss:.4f} against "
        f"{v_loss:.4f}) although it makes fewer errors: label smoothing trains towards "
        f"targets of {1 - cho.train.label_smoothing * 9 / 10:.2f} for the true class, so "
        "its predictions stay less confident and its plain cross-entropy keeps a floor. Its "
        "loss curves measure confidence as much as mistakes."
    )


def section(doc: Document, s: CnnSummary, folder: Path) -> None:
    doc.paragraph(
        "PyTorch, on the same split as the MLP. After each epoch the loss (mean cross-entropy) "
        f"and error rate are measured on {s.train_measured_on} (training curves) and on the "
        "whole validation set; the test set once, after the last epoch. The MLP compared with "
        f"is the search's chosen model, {mlp_name(s)}, with the curves the search measured on "
        "the same samples while training it.",
    )
    doc.bullets(
        settings_lines(
            [
                ("data", f"{s.dataset}: {s.dataset_sizes.text()}"),
                ("epochs", f"{s.epochs}; seeds {_seeds(s.seeds)}"),
                ("optimizer", s.optimizer),
                ("MLP", s.mlp.description),
                ("device", f"{s.device}, {s.threads} thread per run"),
            ]
        )
    )
    doc.heading("The CNN against the MLP", 2, label="sec-cnn-mlp")
    van = s.vanilla
    doc.paragraph(
        f"The CNN: {van.description} ({thousands(van.n_params)} parameters, layer by layer in ",
        ref("tab-cnn-layers"),
        "). ",
        ref("tab-cnn-models"),
        " compares it with the MLP after the last epoch, ",
        ref("tab-cnn-epochs"),
        " and ",
        ref("fig-cnn-errors"),
        " epoch by epoch, ",
        ref("fig-cnn-loss"),
        " by their losses.",
    )
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
            for r in van.layers
        ],
        caption="The vanilla CNN, layer by layer: kernel size, input and output channels or "
        "features, the shape of its output for one sample, and its parameters.",
        label="tab-cnn-layers",
        align=["l", "l", "r", "r", "r", "r", "r"],
    )
    doc.table(
        [
            "model",
            "params",
            "seeds",
            "train error (%)",
            "valid error (%)",
            "sd over seeds (%)",
            "test error (%)",
        ],
        [
            [
                name,
                thousands(params),
                str(seeds),
                pc(train),
                pc(valid),
                "-" if sd is None else pc(sd),
                pc(test),
            ]
            for name, params, seeds, train, valid, sd, test in table_rows(s)
        ],
        caption=f"Each model after its last epoch: the error on {s.train_measured_on} "
        "(train), the validation and the test set; CNNs: the mean over seeds.",
        label="tab-cnn-models",
    )
    epochs_table(doc, s)
    figure(
        doc,
        folder,
        "cnn_errors",
        caption="The error rate after each epoch on the training subset and the validation "
        "set: the MLP and each CNN (mean over seeds, the band one sd).",
        label="fig-cnn-errors",
    )
    figure(
        doc,
        folder,
        "cnn_vs_mlp_loss",
        caption="The loss (mean cross-entropy) after each epoch: the MLP and each CNN.",
        label="fig-cnn-loss",
        width=75,
    )
    regularization(doc, s, folder)
    doc.comments(comments(s))


def epochs_table(doc: Document, s: CnnSummary) -> None:
    """The validation error after each epoch, one row per epoch (so that any number of
    epochs fits the page's width), one column per model."""
    columns = [("MLP", s.mlp.curves.valid_error, None)] + [
        (f"CNN {v.name}", v.aggregate.valid_error.mean, v.aggregate.valid_error.sd)
        for v in s.variants
    ]
    n = max(len(c[1]) for c in columns)
    rows = []
    for e in range(n):
        row = [str(e + 1)]
        for _, mean, sd in columns:
            if e >= len(mean):
                row.append("")
            elif sd is None:
                row.append(pc(mean[e]))
            else:
                row.append(f"{pc(mean[e])} ({pc(sd[e])})")
        rows.append(row)
    doc.table(
        ["epoch"] + [f"{name} (%)" for name, _, _ in columns],
        rows,
        caption="The validation error after each epoch; CNNs: the mean over seeds, the sd in "
        "brackets.",
        label="tab-cnn-epochs",
    )


def regularization(doc: Document, s: CnnSummary, folder: Path) -> None:
    """The techniques screened, the chosen one against the vanilla CNN over the seeds."""
    doc.heading("Regularization", 2, label="sec-cnn-regularization")
    doc.paragraph(
        f"Each technique below changes only how the vanilla CNN is regularized (same network "
        f"and parameter count, optimizer, {s.epochs} epochs, split). The screening trains each "
        f"once, at seed {s.screening_seed} (the vanilla CNN's seed-{s.screening_seed} run is "
        f"shared); the choice is {s.selection}. The chosen technique then runs at the other "
        "seeds, so that it is compared with the vanilla CNN over the same seeds (",
        ref("tab-cnn-seeds"),
        "). The screening is in ",
        ref("tab-cnn-screening"),
        " and ",
        ref("fig-cnn-screening"),
        ".",
    )
    doc.bullets([f"{t.technique.name}: {t.technique.text}" for t in s.screening])
    doc.table(
        ["technique", "final valid accuracy (%)", "lowest valid error (%)", "gap (%)", "rank"],
        _screening_rows(s),
        caption=f"The screening at seed {s.screening_seed}. Gap: validation error minus "
        "training-subset error after the last epoch; lowest valid error: over the epochs (a "
        "stop chosen on validation data would flatter it).",
        label="tab-cnn-screening",
        align=["l", "r", "r", "r", "r"],
    )
    figure(
        doc,
        folder,
        "cnn_screening",
        caption=f"The validation error after each epoch of each technique screened, at seed "
        f"{s.screening_seed}, against the vanilla CNN.",
        label="fig-cnn-screening",
    )
    cho, van = s.chosen, s.vanilla
    per_seed = [
        [
            str(a.seed),
            pc(1 - a.result.curves.valid_error[-1]),
            pc(1 - b.result.curves.valid_error[-1]),
        ]
        for a, b in zip(van.runs, cho.runs, strict=True)
    ]
    per_seed.append(
        ["mean", pc(van.aggregate.final_valid_accuracy), pc(cho.aggregate.final_valid_accuracy)]
    )
    per_seed.append(
        ["sd", pc(van.aggregate.final_valid_error_sd), pc(cho.aggregate.final_valid_error_sd)]
    )
    doc.table(
        ["seed", "vanilla (%)", f"{cho.name} (%)"],
        per_seed,
        caption=f"The final validation accuracy per seed: the vanilla CNN against {cho.name}.",
        label="tab-cnn-seeds",
        align=["l", "r", "r"],
    )
    doc.paragraph(verdict_text(s))


def headline(s: CnnSummary) -> list[list[str]]:
    """The title page's rows: the vanilla and the chosen CNN's validation accuracy, and
    whether regularization beats vanilla beyond noise."""
    rows = [
        [
            f"CNN {v.name}, validation accuracy",
            pct(v.aggregate.final_valid_accuracy),
            f"mean of {len(v.runs)} seeds, sd {pct(v.aggregate.final_valid_error_sd)}",
        ]
        for v in s.variants
    ]
    v = s.verdict
    rows.append(
        [
            f"CNN regularization: {v.technique} against vanilla",
            f"{100 * v.gain:+.2f} points",
            ("beyond noise" if v.beyond_noise else "within noise")
            + f" (twice the larger sd: {_points(2 * v.noise)})",
        ]
    )
    return rows


SECTION: Final = Section(
    "A convolutional network",
    section,
    headline,
    lambda s: s.machine,
    lambda s: s.dataset,
    needs=("search",),
)
"""The study's section of the report."""
