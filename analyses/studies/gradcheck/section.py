"""The finite-difference study's section of the report: the setting, the assignment's sample (its
table, figure and comments), then the sample of largest loss in float32 and float64 with
the measured against the predicted optimum; every comment is derived from the measured
differences."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

from analyses.report.common import figure
from analyses.report.fmt import loglog_slope, num, pct, sci, thousands
from analyses.report.markup import Document, formula, m, ref, strong
from analyses.report.section import Section
from analyses.studies.gradcheck.errormodel import Optimum
from analyses.studies.gradcheck.finite import FdCurve
from analyses.studies.gradcheck.summary import FIGURE, WORST_FIGURE, GradcheckSummary, SampleResult

MAXDIFF: Final = 'max_i |"FD"_i - partial L \\/ partial theta_i|'
THIRD: Final = "|L'''|"


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
        m(
            f"In {head} the largest difference ",
            formula(MAXDIFF),
            f" falls from {sci(diffs[0])} at N = {ns[0]} to its minimum {sci(best_d)} at "
            f"N = {best_n} (",
            ref("tab-fd"),
            ", ",
            ref("fig-fd"),
            ").",
        )
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
            m(
                "Where no ReLU kink is crossed and N is below the crossing, the error falls with "
                f"a log-log slope of {slope:.2f} against N ({len(smooth)} points), {near} the -2 "
                "of the central difference's truncation error, proportional to ",
                formula("epsilon^2 = 1 \\/ N^2"),
                "; the constant ",
                formula("C_t"),
                f" = {sci(first.truncation.coef)} (",
                *(
                    (
                        "fitted to this curve; the stencil's independent estimate ",
                        formula(f"{THIRD} \\/ 6"),
                        f" is {sci(first.truncation.stencil)}",
                    )
                    if first.truncation.source == "fit"
                    else (formula(f"{THIRD} \\/ 6"), " from the five-point stencil")
                ),
                ").",
            )
        )
    if model is not None and crossing is not None:
        if best_n == ns[-1]:
            notes.append(
                m(
                    "The error model puts the crossing of truncation and round-off at ",
                    formula("N^*"),
                    f" = {sci(crossing)}; ",
                )
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
                m(
                    f"Beyond N = {best_n} the error grows again: round-off, about ",
                    formula("sigma_L \\/ epsilon"),
                    " with the loss's noise ",
                    formula("sigma_L"),
                    f" = {sci(model.loss_noise)}, takes over; the error model puts the crossing "
                    "at ",
                    formula("N^*"),
                    f" = {sci(crossing)}.",
                )
            )
    for c in first.curves:
        if c.dtype == head:
            continue
        em = first.error_model(c.dtype)
        u = sci(None if em is None else em.machine_eps)
        low = c.minimum()
        zero = c.zero_ns
        if 2 * len(zero) > len(c.ns):  # mostly exact zeros: the loss is below resolution
            where = "every N" if len(zero) == len(c.ns) else "N = " + ", ".join(map(str, zero))
            rest = [
                f"{n}" + (" (a kink is crossed)" if k else "")
                for n, k in zip(c.ns, c.any_kink, strict=True)
                if n not in zero
            ]
            others = (
                "" if not rest else f"; the differences are non-zero only at N = {', '.join(rest)}"
            )
            notes.append(
                m(
                    f"In {c.dtype} every central difference is exactly 0 at {where}: ",
                    formula("L(theta + epsilon)"),
                    " and ",
                    formula("L(theta - epsilon)"),
                    f" round to the same {c.dtype} number (machine epsilon {u}; the ",
                )
                + f"loss is {sci(c.loss)}), so the error equals the gradient itself, "
                f"{sci(max(abs(g) for g in c.gradient))}; the loss is too small for {c.dtype} to "
                f"resolve its changes{others}."
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
            m(
                "Perturbations that cross a ReLU kink (a hidden pre-activation changes sign "
                "between ",
                formula("theta - epsilon"),
                " and ",
                formula("theta + epsilon"),
                ") occur at N = ",
            )
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


def _ratio(r: float) -> str:
    """A ratio: three significant digits between 0.001 and 10,000, else scientific."""
    return f"{r:.3g}" if 1e-3 <= abs(r) < 1e4 else sci(r)


def _factor(a: float, b: float) -> str:
    """The ratio a / b in words: 'equal to', or '3.1 times' / '0.42 times'."""
    r = a / b
    if 0.999 < r < 1.001:
        return "equal to"
    return f"{_ratio(r)} times"


def _closer(measured: float, rule: float, tuned: float | None) -> str | None:
    """Which prediction of N* lies closer to the measured one, on a log scale."""
    if tuned is None or measured <= 0:
        return None
    d_rule = abs(math.log(measured / rule))
    d_tuned = abs(math.log(measured / tuned))
    return "tuned" if d_tuned < d_rule else "rule"


def _resolution_note(s: GradcheckSummary) -> str | None:
    """Whether float32 resolves the differences on the sample of largest loss."""
    second, first = s.second, s.first
    f32, o32 = second.curve("float32"), second.optimum("float32")
    if f32 is None or o32 is None:
        return None
    n = len(f32.ns)
    reach = (
        m("")
        if o32.resolved_up_to_N is None
        else m(
            "; a step of ",
            formula("epsilon"),
            " moves L by about ",
            formula("2 epsilon max_i |g_i|"),
            ", more than that for N below " + sci(o32.resolved_up_to_N),
        )
    )
    resolves = m(
        "float32 resolves a change of about ",
        formula("u max(1, |L|)"),
        f" = {sci(o32.resolution)}",
        reach,
    )
    if f32.all_zero:
        return m(
            f"Its loss, {sci(second.sample.loss)}, is still too small for float32: every float32 "
            "difference is exactly 0 (",
            resolves,
            ").",
        )
    first32 = first.curve("float32")
    before = (
        ""
        if first32 is None or not first32.zero_ns
        else f" (on the first sample every float32 difference is exactly 0 at "
        f"{len(first32.zero_ns)} of them)"
    )
    return m(
        f"Its loss, {sci(second.sample.loss)} against {sci(first.sample.loss)} on the first "
        "sample, is large enough for float32: ",
        resolves,
        f", and the float32 differences are non-zero at {o32.nonzero_N} of the {n} N{before}.",
    )


def _optimum_note(o: Optimum, curve: FdCurve) -> str | None:
    """The measured optimum in one precision against the textbook's."""
    if o.measured_N is None or o.measured_error is None:
        return None
    ns = curve.ns
    j = ns.index(o.measured_N)
    if j in (0, len(ns) - 1):
        where = "; that is the edge of the N tried, so the curve's minimum may lie beyond it"
    elif curve.any_kink[j - 1]:
        where = (
            f"; the next smaller N, {ns[j - 1]}, crosses a ReLU kink, so the smooth curve's "
            "minimum may lie below this N"
        )
    else:
        where = ""
    tuned = (
        m("")
        if o.tuned_N is None or o.tuned_floor is None
        else m(
            ", and with the loss's own constants (",
            ref("eq-tuned"),
            ") at ",
            formula("N^*"),
            f" = {num(o.tuned_N, 3)} (floor {sci(o.tuned_floor)}; the measured N is "
            f"{_factor(o.measured_N, o.tuned_N)} that)",
        )
    )
    return m(
        f"In {o.dtype} (",
        formula("u"),
        f" = {sci(o.machine_eps)}) the error is smallest at N = {o.measured_N}, "
        f"{sci(o.measured_error)}{where}. The rule of thumb (",
        ref("eq-rule"),
        ") puts the optimum at ",
        formula("N^*"),
        f" = {num(o.rule_N, 3)} (the measured N is {_factor(o.measured_N, o.rule_N)} that) with "
        f"a floor of {sci(o.rule_floor)} (the measured minimum is "
        f"{_factor(o.measured_error, o.rule_floor)} that)",
        tuned,
        ".",
    )


def _shift_note(o64: Optimum, o32: Optimum) -> str | None:
    """How the optimum moves from float64 to float32, predicted and measured."""
    if not (o64.measured_N and o32.measured_N and o64.measured_error and o32.measured_error):
        return None
    ratio = o32.machine_eps / o64.machine_eps
    return (
        f"From float64 to float32 machine epsilon grows {sci(ratio)}-fold, so the textbook "
        f"optimum N* shrinks {_ratio(ratio ** (1 / 3))}-fold and the floor rises "
        f"{_ratio(ratio ** (2 / 3))}-fold; measured, the best N goes from {o64.measured_N} to "
        f"{o32.measured_N} (a factor {_ratio(o64.measured_N / o32.measured_N)}) and the "
        f"smallest error from {sci(o64.measured_error)} to {sci(o32.measured_error)} (a factor "
        f"{_ratio(o32.measured_error / o64.measured_error)})."
    )


def _closer_note(optima: tuple[Optimum, ...]) -> str | None:
    """Which prediction of N* lies closer to the measured one, per precision."""
    verdicts = {
        o.dtype: _closer(float(o.measured_N), o.rule_N, o.tuned_N)
        for o in optima
        if o.measured_N is not None
    }
    if not verdicts or any(v is None for v in verdicts.values()):
        return None
    o = optima[0]
    scale = (o.loss / o.third) ** (1 / 3) if o.third > 0 else None
    why = m(
        " The rule takes ",
        formula("max(1, max_i |theta_i|)"),
        f" = {num(o.theta_scale, 3)} as the scale on which the loss varies; along theta, the "
        "loss's own scale is ",
        formula(f"(|L| \\/ {THIRD})^(1\\/3)"),
        f" = {num(scale, 3)} ({o.dtype}).",
    )
    if all(v == "tuned" for v in verdicts.values()):
        return (
            "In every precision the tuned prediction lies closer to the measured N than the rule "
            "of thumb." + why
        )
    if all(v == "rule" for v in verdicts.values()):
        return (
            "In every precision the rule of thumb lies closer to the measured N than the tuned "
            "prediction." + why
        )
    parts = [
        f"{'the tuned prediction' if v == 'tuned' else 'the rule of thumb'} in {dt}"
        for dt, v in verdicts.items()
    ]
    return "Closer to the measured N: " + ", ".join(parts) + "." + why


def second_comments(s: GradcheckSummary) -> list[str]:
    """Comments on the sample of largest loss: whether float32 resolves its differences,
    and the measured optimum in each precision against the textbook's."""
    second, st = s.second, s.settings
    first = _resolution_note(s)
    notes: list[str | None] = [
        None if first is None else m(first, " See ", ref("fig-fd-worst"), ".")
    ]
    for o, c in zip(second.optima, second.curves, strict=True):
        note = _optimum_note(o, c)
        notes.append(None if note is None else m(note, " See ", ref("tab-fd-optimum"), "."))
    o64, o32 = second.optimum("float64"), second.optimum("float32")
    if o64 is not None and o32 is not None:
        notes.append(_shift_note(o64, o32))
    notes.append(_closer_note(second.optima))
    kinks = [(n, k) for n, k in zip(st.ns, second.curves[0].n_kinks, strict=True) if k]
    if kinks:
        notes.append(
            "On this sample perturbations cross a ReLU kink at N = "
            + ", ".join(f"{n} ({k} of {st.p})" for n, k in kinks)
            + "; those points are outside the Taylor argument."
        )
    return [n for n in notes if n is not None]


def _second_sentence(s: GradcheckSummary) -> str:
    sample = s.second.sample
    text = (
        f"Training sample {sample.index} (label {sample.label}, loss {sci(sample.loss)} in "
        f"float64), chosen as {sample.rule}."
    )
    if sample.skipped:
        text += (
            f" Sample {s.max_loss_index} has the largest loss of all, {sci(s.max_loss)}; the rule "
            f"passed over {thousands(sample.skipped)} sample"
            + ("" if sample.skipped == 1 else "s")
            + " of larger loss where dL/dtheta = 0 exactly."
        )
    return text


def second_section(doc: Document, s: GradcheckSummary, folder: Path) -> None:
    """The sample of largest loss: float64 and float32 side by side, and the measured
    against the predicted optimum."""
    st = s.settings
    doc.heading(
        "The sample of largest loss, in float32 and float64", 2, label="sec-gradcheck-worst"
    )
    doc.paragraph(
        f"{_second_sentence(s)} The same theta and N. With a step ",
        formula("h"),
        " and machine epsilon ",
        formula("u"),
        ", the error of a central difference is about its truncation plus its round-off,",
    )
    doc.equation(
        '|"FD"_i (h) - (partial L) / (partial theta_i)| approx '
        f'underbrace({THIRD} / 6 h^2, "truncation") + '
        'underbrace((u |L|) / h, "round-off"),',
        label="eq-fd-error",
    )
    doc.paragraph(
        "where ",
        formula(THIRD),
        " is the largest ",
        formula("|L'''_i|"),
        f" of the five-point stencil (step {st.third_h}, float64) and ",
        formula("|L|"),
        " the loss in that precision. The textbook's rule of thumb takes the scale of theta "
        "for the scale on which the loss varies,",
    )
    doc.equation(
        "h^* = u^(1\\/3) max(1, max_i |theta_i|), quad "
        f'"floor" approx u^(2\\/3) |L|^(2\\/3) {THIRD}^(1\\/3),',
        label="eq-rule",
    )
    doc.paragraph(
        "while minimizing the sum in ",
        ref("eq-fd-error"),
        " with the loss's own constants gives the tuned optimum",
    )
    doc.equation(
        f"h^* = ((3 u |L|) / {THIRD})^(1\\/3), quad "
        f'"floor" = (9 / 8)^(1\\/3) u^(2\\/3) |L|^(2\\/3) {THIRD}^(1\\/3);',
        label="eq-tuned",
    )
    doc.paragraph(
        "in both, ",
        formula("N^* = 1 \\/ h^*"),
        ". ",
        ref("tab-fd-worst"),
        " and ",
        ref("fig-fd-worst"),
        " give the error in both precisions, ",
        ref("tab-fd-optimum"),
        " the measured optimum against both predictions.",
    )
    curves = s.second.curves
    doc.table(
        ["N", formula("epsilon")]
        + [m(formula(MAXDIFF), f", {c.dtype}") for c in curves]
        + [f"kinks, {c.dtype}" for c in curves],
        [
            [str(n), sci(st.eps[j])]
            + [sci(c.max_abs_diff[j]) for c in curves]
            + [str(c.n_kinks[j]) for c in curves]
            for j, n in enumerate(st.ns)
        ],
        caption=f"The sample of largest loss: the largest error over the {st.p} elements of "
        "theta for each N, in each precision, and how many perturbations cross a ReLU kink.",
        label="tab-fd-worst",
    )
    doc.table(
        [
            "dtype",
            formula("u"),
            "best N",
            "error there",
            m("rule ", formula("N^*")),
            "rule floor",
            m("tuned ", formula("N^*")),
            "tuned floor",
        ],
        [
            [
                o.dtype,
                sci(o.machine_eps),
                "n/a" if o.measured_N is None else str(o.measured_N),
                sci(o.measured_error),
                num(o.rule_N, 3),
                sci(o.rule_floor),
                num(o.tuned_N, 3),
                sci(o.tuned_floor),
            ]
            for o in s.second.optima
        ],
        caption=m(
            "The measured optimum on the sample of largest loss against the rule of thumb (",
            ref("eq-rule"),
            ") and the tuned prediction (",
            ref("eq-tuned"),
            ").",
        ),
        label="tab-fd-optimum",
    )
    figure(
        doc,
        folder,
        WORST_FIGURE,
        caption="The sample of largest loss: the largest error against N in float64 and in "
        "float32, with the predicted optima.",
        label="fig-fd-worst",
    )
    doc.comments(second_comments(s))


def section(doc: Document, s: GradcheckSummary, folder: Path) -> None:
    st, model = s.settings, s.model
    if st.dead is not None:
        doc.paragraph(
            strong("A dead theta. "),
            f"{st.dead[0].upper()}{st.dead[1:]}: with ReLU, an element of a weight matrix reaches "
            "the loss only where both units it joins are active, and on these the check would "
            "compare zeros with zeros.",
        )
    doc.heading("The assignment's sample", 2, label="sec-gradcheck-first")
    acc = "" if model.val_accuracy is None else f", validation accuracy {pct(model.val_accuracy)}"
    doc.paragraph(
        f"The model: the search's chosen MLP, {model.config.describe()} "
        f"({thousands(model.n_params)} parameters{acc}; parameters {model.params_file}, sha256 "
        f"{model.params_sha256}). {_sample_sentence(s.first)} {st.theta}. For each N the step "
        "is ",
        formula("epsilon = 1 \\/ N"),
        " and the central difference of the loss along each element of theta is",
    )
    doc.equation(
        '"FD"_i = (L(theta + epsilon e_i) - L(theta - epsilon e_i)) / (2 epsilon),',
        label="eq-fd",
    )
    doc.paragraph(
        "each perturbed model built with tree_map over a copy of the parameters; the "
        f"reference is the hand-written backward gradient in float64. The input is {st.inputs}. "
        "The errors are in ",
        ref("tab-fd"),
        " and ",
        ref("fig-fd"),
        ".",
    )
    head = st.headline_dtype
    c = s.headline
    doc.table(
        ["N", formula("epsilon"), formula(MAXDIFF), "relative", "kinks"],
        [
            [str(n), sci(c.eps[i]), sci(c.max_abs_diff[i]), sci(c.relative_error[i]), str(k)]
            for i, (n, k) in enumerate(zip(c.ns, c.n_kinks, strict=True))
        ],
        caption=m(
            f"The assignment's sample in {head}: the largest error of the central difference (",
            ref("eq-fd"),
            f") over the {st.p} elements of theta, relative to the largest gradient, and how "
            "many perturbations cross a ReLU kink.",
        ),
        label="tab-fd",
    )
    figure(
        doc,
        folder,
        FIGURE,
        caption="The assignment's sample: the largest error against N (left), with the "
        "truncation and round-off terms of the error model, and the error of every element "
        "(right).",
        label="fig-fd",
    )
    doc.comments(comments(s))
    second_section(doc, s, folder)


def headline(s: GradcheckSummary) -> list[list[str]]:
    """The title page's rows: the smallest max error of the headline curve and its N; and
    per precision, the best N on the sample of largest loss against the textbook's N*."""
    rows: list[list[str]] = []
    best = s.headline.minimum()
    if best is not None:
        d, n = best
        head = s.settings.headline_dtype
        rows.append(["finite differences, smallest max error", sci(d), f"at N = {n} ({head})"])
    for o in s.second.optima:
        if o.measured_N is None:
            continue
        rows.append(
            [
                f"finite differences, largest-loss sample, {o.dtype}",
                sci(o.measured_error),
                f"at N = {o.measured_N}; textbook N* {num(o.rule_N, 3)}, tuned {num(o.tuned_N, 3)}",
            ]
        )
    return rows


SECTION: Final = Section(
    "Finite-difference gradients",
    section,
    headline,
    lambda s: s.machine,
    lambda s: s.settings.dataset,
    needs=("search",),
)
"""The study's section of the report."""
