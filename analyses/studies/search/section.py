"""The search's section of the report: every configuration tried with its
r(valid) at its last rung, the choice, the compute successive halving saved, and
comments derived from the results."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Final

from analyses.report.common import figure
from analyses.report.fmt import pc, pct, thousands
from analyses.report.markup import Document, formula, m, ref, strong
from analyses.report.section import Section
from analyses.studies.search.summary import SearchSummary, Trial


def _best_by(trials: list[Trial], field: str, epoch: int = 1) -> list[tuple[float, str]]:
    """The best r(valid) after ``epoch`` epochs (every trial has the first) by a config field."""
    best: dict[str, float] = defaultdict(lambda: -math.inf)
    for t in trials:
        if len(t.val_accuracy) >= epoch and math.isfinite(t.val_accuracy[epoch - 1]):
            key = str(getattr(t.config, field))
            best[key] = max(best[key], t.val_accuracy[epoch - 1])
    return sorted(((v, k) for k, v in best.items()), reverse=True)


def comments(s: SearchSummary) -> list[str]:
    notes: list[str] = []
    trials = list(s.trials)
    last = s.rung_epochs[-1]
    chosen = s.chosen
    if chosen is None:
        return ["No configuration finished the last rung successfully, so no model was chosen."]
    finalists = [t for t in trials if t.epochs == last and t.status == "ok"]
    over = [t for t in trials if t.status == "ok" and t.r_valid >= 0.97]
    notes.append(
        m(
            f"The chosen model reaches r(valid) = {pct(chosen.val_accuracy[-1])} after {last} "
            f"epochs ({'at least' if chosen.val_accuracy[-1] >= 0.97 else 'below'} the 97% asked "
            f"for) and a test accuracy of {pct(chosen.test_accuracy)}, measured once after the "
            "choice; "
            f"{len(over)} of the {len(trials)} configurations end at or above 97% at their last "
            "rung (",
            ref("tab-search"),
            ").",
        )
    )
    first = sorted(
        (t for t in trials if t.val_accuracy and math.isfinite(t.val_accuracy[0])),
        key=lambda t: (-t.val_accuracy[0], t.name),
    )
    chosen_trial = next(t for t in trials if t.rank == 1)
    where = next((i for i, t in enumerate(first, 1) if t.name == chosen_trial.name), None)
    if where is not None:
        finalist_ranks = sorted(
            next(i for i, t in enumerate(first, 1) if t.name == f.name) for f in finalists
        )
        notes.append(
            m(
                f"After one epoch the chosen configuration ranked {where} of {len(first)}; the "
                f"{len(finalists)} finalists ranked {', '.join(map(str, finalist_ranks))}. "
                + (
                    "An early lead predicted the final order well here."
                    if where <= max(3, len(first) // 10)
                    else "The final winner was not an early leader: the first rung kept a third "
                    "of the field, wide enough to let it through."
                ),
                " See ",
                ref("fig-search-ladder"),
                ".",
            )
        )
    saved = 1 - s.epochs_trained / s.epochs_without_halving
    notes.append(
        f"Successive halving trained {thousands(s.epochs_trained)} configuration-epochs instead of "
        f"the {thousands(s.epochs_without_halving)} that {len(trials)} configurations x {last} "
        f"epochs would cost: {100 * saved:.0f}% of the compute saved. Rungs held "
        + ", ".join(
            f"{n} configurations at {e} epoch{'s' if e > 1 else ''}"
            for n, e in zip(s.rung_sizes, s.rung_epochs, strict=True)
        )
        + "."
    )
    by_opt = _best_by(trials, "optimizer")
    if len(by_opt) > 1:
        notes.append(
            m(
                "Best r(valid) after the first epoch by optimizer: "
                + ", ".join(f"{k} {pct(v)}" for v, k in by_opt)
                + " (",
                ref("fig-search-setting"),
                ").",
            )
        )
    by_act = _best_by(trials, "activation")
    if len(by_act) > 1:
        notes.append(
            "By nonlinearity: "
            + ", ".join(f"{k} {pct(v)}" for v, k in by_act)
            + f": {by_act[0][1]} learns fastest."
        )
    f = s.plain_sgd_finalist
    if f is not None and f.status == "ok":
        verdict = "reaches" if f.r_valid >= 0.97 else "stays below"
        how = (
            f"Successive halving stopped it after {f.stopped_at} epoch"
            f"{'s' if f.stopped_at != 1 else ''}, behind configurations with momentum, Adam or a "
            f"decaying learning rate; continued from its checkpoint to the last epoch as the "
            f"grid's finalist, it"
            if f.stopped_at is not None
            else "It reached the last rung on its own merit and"
        )
        notes.append(
            m(
                f"The assignment's setting, plain SGD at a constant learning rate, answered in "
                f"its own terms: the grid's best, {f.config.describe()}. {how} {verdict} the 97% "
                f"asked for, with r(valid) {pct(f.r_valid)} after {len(f.val_accuracy)} epochs "
                f"and a test accuracy of {pct(f.test_accuracy)} (",
                ref("tab-search-sgd"),
                ").",
            )
        )
    elif s.best_plain_sgd is not None:
        t = s.trial(s.best_plain_sgd)
        notes.append(
            f"The best run in the assignment's own setting (plain SGD at a constant learning "
            f"rate) is {t.config.describe()}: r(valid) {pct(t.r_valid)} after the {t.epochs} "
            f"epoch{'s' if t.epochs > 1 else ''} it trained"
            + (
                "."
                if t.epochs == last
                else "; it was stopped early, behind configurations with momentum, Adam or a "
                "decaying learning rate."
            )
        )
    bad = [t for t in trials if t.status != "ok"]
    if bad:
        notes.append(
            f"{len(bad)} configuration(s) failed or diverged and are recorded as such: "
            + "; ".join(f"{t.config.describe()}: {t.error}" for t in bad)
        )
    return notes


def trials_table(doc: Document, s: SearchSummary) -> None:
    """Every configuration tried, ranked, with r(valid) at the last epoch it trained."""
    doc.table(
        [
            "rank",
            "r(valid) (%)",
            "epochs",
            "architecture",
            "params",
            "nonlin.",
            "optimizer",
            "lr",
            "schedule",
            "wd",
            "batch",
        ],
        [
            [
                str(t.rank),
                pc(t.r_valid) if t.status == "ok" else t.status,
                str(t.epochs),
                t.config.architecture,
                thousands(t.n_params),
                t.config.activation,
                t.config.optimizer,
                f"{t.config.lr:g}",
                t.config.schedule,
                f"{t.config.weight_decay:g}",
                str(t.config.batch_size),
            ]
            for t in s.trials
        ],
        caption="Every configuration tried, ranked (the finalists first), with r(valid) at "
        "the last epoch it trained; wd: weight decay, batch: mini-batch size.",
        label="tab-search",
        align=["r", "r", "r", "l", "r", "l", "l", "r", "l", "r", "r"],
        size=7.5,
    )


def finalist_table(doc: Document, s: SearchSummary) -> None:
    """The chosen model beside the plain-SGD grid's finalist: the assignment's own setting."""
    f, c = s.plain_sgd_finalist, s.chosen
    if f is None:
        return
    rows = []
    if c is not None:
        rows.append(
            [
                "the chosen model",
                c.config.describe(),
                str(len(c.val_accuracy)),
                pc(c.val_accuracy[-1]),
                pc(c.test_accuracy),
            ]
        )
    doc.paragraph(
        "The assignment asks for 97% in its own setting, plain SGD at a constant learning rate; ",
        ref("tab-search-sgd"),
        " sets the best configuration of that grid, trained to the last rung, beside the "
        "chosen model.",
    )
    stopped = "" if f.stopped_at is None else f" (continued from epoch {f.stopped_at})"
    rows.append(
        [
            "the assignment's setting: plain SGD",
            f.config.describe() + stopped,
            str(len(f.val_accuracy)),
            pc(f.r_valid) if f.status == "ok" else f.status,
            pc(f.test_accuracy) if f.status == "ok" else "-",
        ]
    )
    doc.table(
        ["model", "configuration", "epochs", "r(valid) (%)", "test accuracy (%)"],
        rows,
        caption="The chosen model and the best configuration of the assignment's own setting "
        "(plain SGD at a constant learning rate), each trained to the last rung.",
        label="tab-search-sgd",
        align=["l", "l", "r", "r", "r"],
        widths=["auto", "1fr", "auto", "auto", "auto"],
        size=8.5,
    )


def section(doc: Document, s: SearchSummary, folder: Path) -> None:
    b = s.base
    doc.paragraph(
        f"Glorot initialization throughout, {s.dataset} ({s.dataset_sizes.text()}), seed "
        f"{b.seed}, {b.dtype}. {len(s.trials)} configurations: {s.n_grid} in the assignment's "
        f"own setting around {b.architecture} {b.activation}, plain SGD at a constant learning "
        f"rate {b.lr:g}, batch {b.batch_size} (nonlinearity and learning rate), and "
        f"{s.n_sampled} more:"
    )
    doc.bullets(list(s.space))
    doc.paragraph(
        f"Rungs end after {', '.join(map(str, s.rung_epochs))} epochs ",
        formula(f"(eta = {s.eta})"),
        "; every learning-rate schedule spans all the epochs, so a run resumed from its "
        "checkpoint continues exactly as if it had never stopped. " + s.selection,
    )
    doc.paragraph(
        "Every configuration tried is in ",
        ref("tab-search"),
        "; ",
        ref("fig-search-ladder"),
        " follows r(valid) from rung to rung and ",
        ref("fig-search-setting"),
        " shows it by setting.",
    )
    trials_table(doc, s)
    c = s.chosen
    if c is not None:
        doc.paragraph(
            strong("Chosen model: "),
            f"{c.config.describe()}, {thousands(c.n_params)} parameters, "
            f"{c.config.epochs} epochs: r(valid) {pct(c.val_accuracy[-1])}, test accuracy "
            f"{pct(c.test_accuracy)}.",
        )
    finalist_table(doc, s)
    figure(
        doc,
        folder,
        "search_ladder",
        caption="r(valid) after each epoch of every configuration, rung by rung; right: a "
        "zoom on the finalists.",
        label="fig-search-ladder",
    )
    figure(
        doc,
        folder,
        "search_by_setting",
        caption="Left: r(valid) of every configuration after its first epoch against its "
        "learning rate. Right: r(valid) at the last epoch each configuration trained.",
        label="fig-search-setting",
    )
    doc.comments(comments(s))


def headline(s: SearchSummary) -> list[list[str]]:
    rows: list[list[str]] = []
    c = s.chosen
    if c is not None:
        rows.append(
            ["best MLP, validation accuracy r(valid)", pct(c.val_accuracy[-1]), c.config.describe()]
        )
        rows.append(["best MLP, test accuracy (measured once)", pct(c.test_accuracy), ""])
    f = s.plain_sgd_finalist
    if f is not None and f.status == "ok":
        rows.append(
            [
                "the assignment's setting: plain SGD, r(valid)",
                pct(f.r_valid),
                f"{f.config.architecture} {f.config.activation} lr {f.config.lr:g}, "
                f"{len(f.val_accuracy)} epochs",
            ]
        )
        rows.append(
            ["the assignment's setting: plain SGD, test accuracy", pct(f.test_accuracy), ""]
        )
    elif s.best_plain_sgd is not None:
        t = s.trial(s.best_plain_sgd)
        rows.append(
            [
                "best plain-SGD MLP (constant lr), r(valid)",
                pct(t.r_valid),
                f"{t.config.architecture} {t.config.activation} lr {t.config.lr:g}, "
                f"{t.epochs} epochs",
            ]
        )
    saved = 1 - s.epochs_trained / s.epochs_without_halving
    rows.append(
        [
            "search compute saved by successive halving",
            f"{100 * saved:.0f}%",
            f"{s.epochs_trained} of {s.epochs_without_halving} configuration-epochs",
        ]
    )
    return rows


SECTION: Final = Section(
    "Hyper-parameter search", section, headline, lambda s: s.machine, lambda s: s.dataset
)
"""The study's section of the report."""
