"""The report's finite-difference section: the setting, the headline table, the figure
and comments, each comment derived from the measured differences."""

from __future__ import annotations

from pathlib import Path

from analyses.report.common import figures
from analyses.report.fmt import loglog_slope, pct, sci, thousands
from analyses.report.pdfdoc import Document
from analyses.studies.gradcheck import GradcheckSummary, SampleResult


def comments(s: GradcheckSummary) -> list[str]:
    """Comments on the first sample's curves, each derived from the measurements."""
    st, first = s.settings, s.first
    head = st.headline_dtype
    curve = s.headline
    model = first.error_model(head)
    ns, diffs = curve.ns, curve.max_abs_diff
    notes: list[str] = []
    best = curve.minimum()
    best_d, best_n = best if best is not None else (None, None)
    notes.append(
        f"In {head} the largest difference max_i |FD_i - dL/dtheta_i| falls from {sci(diffs[0])} "
        f"at N = {ns[0]} to its minimum {sci(best_d)} at N = {best_n}."
    )
    crossing = None if model is None else model.crossing_N
    smooth = [
        (n, d)
        for n, d, k in zip(ns, diffs, curve.n_kinks, strict=True)
        if not k and (crossing is None or n <= crossing)
    ]
    slope = loglog_slope([n for n, _ in smooth], [d for _, d in smooth])
    if slope is not None:
        near = "close to" if abs(slope + 2) < 0.5 else "not close to"
        notes.append(
            "Where no ReLU kink is crossed and N is below the crossing, the error falls with a "
            f"log-log slope of {slope:.2f} against N ({len(smooth)} points), {near} the -2 of the "
            "central difference's truncation error, proportional to eps^2 = 1/N^2; the "
            f"constant C_t = {sci(first.truncation.coef)} ("
            + (
                "fitted to this curve; the stencil's independent estimate max |L'''|/6 is "
                f"{sci(first.truncation.stencil)}"
                if first.truncation.source == "fit"
                else "max |L'''|/6 from the five-point stencil"
            )
            + ")."
        )
    if model is not None and crossing is not None:
        if best_n == ns[-1]:
            notes.append(
                f"The error model puts the crossing of truncation and round-off at N* = "
                f"{sci(crossing)}; "
                + (
                    "the tested range stops before it, so the error is still falling at the "
                    "largest N."
                    if crossing > ns[-1]
                    else "the measured error is still smallest at the largest N tested, so the "
                    "round-off constant is an overestimate here."
                )
            )
        else:
            notes.append(
                f"Beyond N = {best_n} the error grows again: round-off, about sigma_L / eps with "
                f"the loss's noise sigma_L = {sci(model.loss_noise)}, takes over; the error model "
                f"puts the crossing at N* = {sci(crossing)}."
            )
    for c in first.curves:
        if c.dtype == head:
            continue
        m = first.error_model(c.dtype)
        u = sci(None if m is None else m.machine_eps)
        low = c.minimum()
        if c.all_zero:
            notes.append(
                f"In {c.dtype} every central difference is exactly 0 at every N: L(theta + eps) "
                f"and L(theta - eps) round to the same {c.dtype} number (machine epsilon {u}; the "
                f"loss is {sci(c.loss)}), so the error equals the gradient itself, "
                f"{sci(c.max_abs_diff[0])}; the loss is too small for {c.dtype} to resolve its "
                "changes."
            )
        elif low is not None:
            notes.append(
                f"In {c.dtype} the minimum is {sci(low[0])} at N = {low[1]} (machine epsilon {u} "
                f"against {sci(None if model is None else model.machine_eps)}): the round-off "
                "floor rises and moves to smaller N, as the error model predicts."
            )
    kinks = [(n, k) for n, k in zip(ns, curve.n_kinks, strict=True) if k]
    if kinks:
        notes.append(
            "Perturbations that cross a ReLU kink (a hidden pre-activation changes sign between "
            "theta - eps and theta + eps) occur at N = "
            + ", ".join(f"{n} ({k} of {st.p})" for n, k in kinks)
            + "; there the loss is not smooth, the Taylor argument fails and the difference can "
            "be far off."
        )
    else:
        notes.append(
            "No perturbation crossed a ReLU kink at any N, so every point is in the smooth regime."
        )
    return notes


def _sample_sentence(result: SampleResult) -> str:
    s = result.sample
    skipped = (
        ""
        if s.skipped == 0
        else f"; the rule passed over {thousands(s.skipped)} sample"
        + ("" if s.skipped == 1 else "s")
        + " where dL/dtheta = 0 exactly"
    )
    return (
        f"Training sample {s.index} (label {s.label}, loss {sci(s.loss)}), chosen as {s.rule}"
        f"{skipped}."
    )


def section(doc: Document, s: GradcheckSummary, folder: Path) -> None:
    st, model = s.settings, s.model
    doc.heading("3. Finite-difference gradients")
    acc = "" if model.val_accuracy is None else f", validation accuracy {pct(model.val_accuracy)}"
    doc.paragraph(
        f"The model: the search's chosen MLP, {model.config.describe()} "
        f"({thousands(model.n_params)} parameters{acc}; parameters {model.params_file}, sha256 "
        f"{model.params_sha256}). {_sample_sentence(s.first)} {st.theta}. For each N, eps = 1/N "
        "and FD_i = (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps), each perturbed model "
        "built with tree_map over a copy of the parameters; the reference is the hand-written "
        f"backward gradient in float64. The input is {st.inputs}."
    )
    head = st.headline_dtype
    c = s.headline
    doc.table(
        ["dtype", "N", "eps", "max |FD - grad|", "relative", "kinks"],
        [
            [head, str(n), sci(c.eps[i]), sci(c.max_abs_diff[i]), sci(c.relative_error[i]), str(k)]
            for i, (n, k) in enumerate(zip(c.ns, c.n_kinks, strict=True))
        ],
    )
    figures(doc, folder, s.figures)
    doc.heading("Comments", 2)
    doc.bullets(comments(s))


def headline(s: GradcheckSummary) -> list[list[str]]:
    """The title page's row: the smallest max error of the headline curve and its N."""
    best = s.headline.minimum()
    if best is None:
        return []
    d, n = best
    head = s.settings.headline_dtype
    return [["finite differences, smallest max error", sci(d), f"at N = {n} ({head})"]]
