"""The PDF report, built from the results on disk only (no training).

    python -m analyses.report [--out results]

Reads ``<out>/<study>/summary.json`` of the four studies and their figures, and writes
``<out>/report.pdf``. Every number in the text and tables is read from those files and
every comment is derived from them, so the report stays true when the results change.
The PDF's bytes depend only on the results (fixed metadata, no creation date).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from analyses.common import DEFAULT_OUT, read_json
from analyses.pdfdoc import Document
from fmlp.atomic import atomic_write_bytes

STUDIES: Final = ("init_study", "hparam_search", "gradcheck_study", "cnn_study")
COMMANDS: Final = {
    "init_study": "python -m analyses.init_study",
    "hparam_search": "python -m analyses.hparam_search",
    "gradcheck_study": "python -m analyses.gradcheck_study",
    "cnn_study": "python -m analyses.cnn_study",
}
LN10: Final = math.log(10.0)

Summary = Mapping[str, Any]


class MissingResults(FileNotFoundError):
    """A study's results are not on disk."""


def load_summaries(out: Path) -> dict[str, Summary]:
    """Every study's summary.json; MissingResults names the first missing study and the
    command that produces it."""
    summaries: dict[str, Summary] = {}
    for study in STUDIES:
        path = out / study / "summary.json"
        if not path.exists():
            raise MissingResults(
                f"the report needs the results of {study}, but {path} does not exist; "
                f"run `{COMMANDS[study]} --out {out}` (or `make report`, which runs every study) first"
            )
        summaries[study] = read_json(path)
    return summaries


# ---------------------------------------------------------------------- formatting


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


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


def split_sizes(s: Summary) -> str:
    """'train 50,000, valid 10,000, test 10,000' from a summary's ``data_sizes``."""
    return ", ".join(f"{k} {thousands(v)}" for k, v in s["data_sizes"].items())


V = TypeVar("V")


def vanilla_first(items: Iterable[tuple[str, V]]) -> list[tuple[str, V]]:
    """CNN variants in report order: vanilla, then the regularized ones as stored."""
    return sorted(items, key=lambda kv: kv[0] != "vanilla")


def first_finite(values: Sequence[float | None]) -> float | None:
    for v in values:
        if v is not None and math.isfinite(v):
            return v
    return None


def last_finite(values: Sequence[float | None]) -> float | None:
    return first_finite(list(reversed(values)))


def figure(doc: Document, folder: Path, name: str, *, max_height: float = 4.6) -> None:
    """Embed ``<folder>/<name>.png`` if the study wrote it."""
    path = folder / f"{name}.png"
    if path.exists():
        doc.image(path, max_height=max_height)
    else:
        doc.paragraph(f"(figure {path.name} is missing from {folder})", style="italic")


def study_figures(summary: Summary, folder: Path) -> list[str]:
    """The figure names (without extension) a study lists, PNG ones first-seen order."""
    names: list[str] = []
    for f in summary.get("figures", []):
        stem = Path(str(f)).stem
        if stem not in names:
            names.append(stem)
    return names


def settings_lines(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return [f"{k}: {v}" for k, v in pairs]


# ------------------------------------------------------------------ initialization


def init_comments(s: Summary) -> list[str]:
    """Comments on the three initializations, each derived from the measured curves."""
    runs = s["runs"]
    notes: list[str] = []
    finals = {k: last_finite(r["curves"]["train_loss"]) for k, r in runs.items()}
    ranked = sorted((v, k) for k, v in finals.items() if v is not None)
    if ranked:
        order = ", ".join(f"{k} ({num(v)})" for v, k in ranked)
        notes.append(f"After {s['settings']['epochs']} epochs the training loss ranks: {order}.")
    if "zero" in runs:
        z = runs["zero"]
        losses = [v for v in z["curves"]["train_loss"] if v is not None and math.isfinite(v)]
        stayed = bool(losses) and max(abs(v - LN10) for v in losses) < 0.02
        sym = z["symmetry"]
        if stayed:
            text = (
                f"Zero initialization stays at the loss of a uniform guess, ln 10 = {LN10:.4f} "
                f"(from {num(losses[0])} to {num(losses[-1])})."
            )
        else:
            text = (
                f"Zero initialization moves away from ln 10 = {LN10:.4f} "
                f"(training loss {num(losses[0] if losses else None)} to {num(losses[-1] if losses else None)})."
            )
        if sym["hidden_units_identical"]:
            text += (
                " Every hidden unit of a layer keeps identical parameters at every epoch (largest spread "
                f"across units {sci(sym['max_hidden_unit_spread'])}): the units receive identical gradients, "
                "so the symmetry is never broken."
            )
        if sym["only_output_bias_moves"]:
            text += (
                " Only the output bias moves; with zero hidden activations the weight gradients are zero, "
                "so the network can learn at most the class frequencies."
            )
        notes.append(text)
    if "normal" in runs:
        n = runs["normal"]
        init = n["initial"]
        text = (
            f"Standard normal weights start with huge logits (std {num(init['logit_std'])}, "
            f"largest |z| {num(init['logit_max_abs'])}) and an initial training loss of "
            f"{num(init['train_loss'])}, far above ln 10: the softmax is saturated, so most samples are "
            "confidently wrong."
        )
        if n["nonfinite"]["first_diverged_epoch"] is not None:
            text += f" The run diverged (non-finite loss) at epoch {n['nonfinite']['first_diverged_epoch']}."
        elif "glorot" in runs:
            nt, gt = finals.get("normal"), finals.get("glorot")
            nv = last_finite(n["curves"]["val_loss"])
            gv = last_finite(runs["glorot"]["curves"]["val_loss"])
            if nt is not None and gt is not None and nv is not None and gv is not None:
                text += (
                    f" After {s['settings']['epochs']} epochs its training loss is {num(nt)} against Glorot's "
                    f"{num(gt)}, and its validation loss {num(nv)} against {num(gv)}"
                )
                if nt < gt and nv > gv:
                    text += (
                        ": it fits the training set, yet its large weights keep the few mistakes on unseen "
                        "data extremely confident, so it generalizes worse."
                    )
                elif nt > gt:
                    text += ": it is still behind Glorot."
                else:
                    text += "."
        notes.append(text)
    if "glorot" in runs:
        g = runs["glorot"]
        text = (
            f"Glorot initialization starts near ln 10 (initial loss {num(g['initial']['train_loss'])}, logit std "
            f"{num(g['initial']['logit_std'])}): activations keep a moderate scale through the layers, "
            f"and it reaches {pct(last_finite(g['curves']['val_accuracy']))} validation accuracy."
        )
        notes.append(text)
    return notes


def init_section(doc: Document, s: Summary, folder: Path) -> None:
    st = s["settings"]
    doc.heading("1. Initialization")
    doc.paragraph(
        "Biases are zero; the weights are all zero (Zero), drawn from N(0, 1) (Normal), or from "
        "U(-d, d) with d = sqrt(6 / (h_in + h_out)) (Glorot). Everything else is shared: the "
        "architecture, the learning rate, the mini-batch size and the order of the data. The loss "
        "plotted is the average cross-entropy on the whole training set at the end of each epoch."
    )
    doc.bullets(
        settings_lines(
            [
                (
                    "architecture",
                    f"{widths(st['sizes'])} ({len(st['sizes']) - 2} hidden layers of "
                    f"{', '.join(str(h) for h in st['sizes'][1:-1])} units), {thousands(st['n_params'])} parameters",
                ),
                ("nonlinearity", st["activation"]),
                (
                    "optimizer",
                    f"{st['optimizer']}, learning rate {st['lr']}, mini-batch size {st['batch_size']}",
                ),
                ("epochs", f"{st['epochs']}, seed {st['seed']}, {st['dtype']}"),
                (
                    "data",
                    f"{st['dataset']}: "
                    + ", ".join(f"{k} {thousands(v)}" for k, v in st["dataset_sizes"].items()),
                ),
                ("data order", st["data_order"]),
            ]
        )
    )
    rows = []
    for row in s["table"]:
        rows.append(
            [
                row["scheme"],
                num(row["initial_train_loss"]),
                num(row["first_train_loss"]),
                num(row["last_train_loss"]),
                num(row["last_val_loss"]),
                pct(row["last_val_accuracy"]),
                f"{row['wall_seconds']:.1f}",
            ]
        )
    doc.table(
        [
            "init",
            "loss at init",
            "loss epoch 1",
            f"loss epoch {st['epochs']}",
            "valid loss",
            "valid acc",
            "seconds",
        ],
        rows,
    )
    epochs = s["runs"][next(iter(s["runs"]))]["curves"]["epoch"]
    doc.paragraph("Average training loss at the end of each epoch:")
    doc.table(
        ["init"] + [str(e) for e in epochs],
        [[k] + [num(v, 3) for v in r["curves"]["train_loss"]] for k, r in s["runs"].items()],
        size=7.0,
    )
    for name in study_figures(s, folder):
        figure(doc, folder, name)
    doc.heading("Comments", 2)
    doc.bullets(init_comments(s))


# ------------------------------------------------------------ finite differences


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of log y against log x over the positive finite pairs."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y > 0 and math.isfinite(y)]
    if len(pairs) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx if sxx else None


def gradcheck_comments(s: Summary) -> list[str]:
    st, model = s["settings"], s["error_model"]
    head = st["headline_dtype"]
    curve = s["curves"][head]
    ns, diffs = curve["N"], curve["max_abs_diff"]
    notes: list[str] = []
    finite = [(d, n) for n, d in zip(ns, diffs) if d is not None and math.isfinite(d)]
    best_d, best_n = min(finite) if finite else (None, None)
    notes.append(
        f"In {head} the largest difference max_i |FD_i - dL/dtheta_i| falls from {sci(diffs[0])} at N = {ns[0]} "
        f"to its minimum {sci(best_d)} at N = {best_n}."
    )
    crossing = model["by_dtype"][head].get("crossing_N")
    smooth = [
        (n, d)
        for n, d, k in zip(ns, diffs, curve["n_kinks"])
        if not k and (crossing is None or n <= crossing)
    ]
    slope = loglog_slope([n for n, _ in smooth], [d for _, d in smooth])
    if slope is not None:
        near = "close to" if abs(slope + 2) < 0.5 else "not close to"
        notes.append(
            f"Where no ReLU kink is crossed and N is below the crossing, the error falls with a log-log slope of "
            f"{slope:.2f} against N ({len(smooth)} points), {near} the -2 of the central difference's truncation "
            f"error, proportional to eps^2 = 1/N^2; the constant |L'''|/6 = {sci(model['truncation_coef'])} comes "
            "from the third derivative, estimated independently."
        )
    if crossing is not None:
        if best_n == ns[-1]:
            notes.append(
                f"The error model puts the crossing of truncation and round-off at N* = {sci(crossing)}; "
                + (
                    "the tested range stops before it, so the error is still falling at the largest N."
                    if crossing > ns[-1]
                    else "the measured error is still smallest at the largest N tested, so the round-off constant "
                    "is an overestimate here."
                )
            )
        else:
            notes.append(
                f"Beyond N = {best_n} the error grows again: round-off, about sigma_L / eps with the loss's noise "
                f"sigma_L = {sci(model['by_dtype'][head]['loss_noise'])}, takes over; the error model puts the "
                f"crossing at N* = {sci(crossing)}."
            )
    other = [d for d in s["curves"] if d != head]
    for dt in other:
        c = s["curves"][dt]
        fin = [
            (d, n) for n, d in zip(c["N"], c["max_abs_diff"]) if d is not None and math.isfinite(d)
        ]
        if all(v == 0 for row in c["fd"] for v in row):
            notes.append(
                f"In {dt} every central difference is exactly 0 at every N: L(theta + eps) and L(theta - eps) round "
                f"to the same {dt} number (machine epsilon {sci(model['by_dtype'][dt]['machine_eps'])}), so the "
                f"error equals the gradient itself, {sci(c['max_abs_diff'][0])}; the loss is too small for {dt} to "
                "resolve its changes."
            )
        elif fin:
            d32, n32 = min(fin)
            notes.append(
                f"In {dt} the minimum is {sci(d32)} at N = {n32} (machine epsilon "
                f"{sci(model['by_dtype'][dt]['machine_eps'])} against {sci(model['by_dtype'][head]['machine_eps'])}): "
                "the round-off floor rises and moves to smaller N, as the error model predicts."
            )
    kinks = [(n, k) for n, k in zip(ns, curve["n_kinks"]) if k]
    if kinks:
        notes.append(
            "Perturbations that cross a ReLU kink (a hidden pre-activation changes sign between theta - eps and "
            "theta + eps) occur at N = "
            + ", ".join(f"{n} ({k} of {st['p']})" for n, k in kinks)
            + "; there the loss is not smooth, the Taylor argument fails and the difference can be far off."
        )
    else:
        notes.append(
            "No perturbation crossed a ReLU kink at any N, so every point is in the smooth regime."
        )
    return notes


def gradcheck_section(doc: Document, s: Summary, folder: Path) -> None:
    st, model = s["settings"], s["model"]
    doc.heading("3. Finite-difference gradients")
    doc.paragraph(
        f"The model: {model['source']} ({widths(model['sizes'])}, {thousands(model['n_params'])} parameters, "
        f"{model['activation']}). One training sample (index "
        f"{st['sample_index']}, label {st['sample_label']}). {st['theta']} For each N, eps = 1/N and "
        "FD_i = (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps), each perturbed model built with tree_map "
        "over a copy of the parameters; the reference is the hand-written backward gradient in float64."
    )
    head = st["headline_dtype"]
    rows = []
    for dt, c in s["curves"].items():
        for i, n in enumerate(c["N"]):
            rows.append(
                [
                    dt,
                    str(n),
                    sci(c["eps"][i]),
                    sci(c["max_abs_diff"][i]),
                    sci(c["relative_error"][i]),
                    str(c["n_kinks"][i]),
                ]
            )
    doc.table(
        ["dtype", "N", "eps", "max |FD - grad|", "relative", "kinks"],
        [r for r in rows if r[0] == head],
    )
    for name in study_figures(s, folder):
        figure(doc, folder, name)
    doc.heading("Comments", 2)
    doc.bullets(gradcheck_comments(s))


# ------------------------------------------------------------------ hyper-parameters

PUBLISHED_MLP: Final = 0.9838  # best result published by others for this exact setup


def hparam_comments(s: Summary) -> list[str]:
    from analyses.hparam_search import table_rows

    notes: list[str] = []
    best, sgd_best = s.get("best"), s.get("best_sgd")
    rows = table_rows(s["runs"])
    if best is None:
        return ["No configuration finished successfully, so no model was chosen."]
    acc = best["final_val_accuracy"]
    verdict = "meets" if acc >= 0.97 else "misses"
    notes.append(
        f"The best configuration ({best['architecture']}, {best['config']['activation']}, lr {best['config']['lr']}, "
        f"batch {best['config']['batch_size']}, {best['config']['optimizer']}, schedule {best['config']['schedule']}) "
        f"reaches r(valid) = {pct(acc)}, which {verdict} the 97% target and is "
        + (
            f"above the {pct(PUBLISHED_MLP)} published by others for this setup."
            if acc > PUBLISHED_MLP
            else f"below the {pct(PUBLISHED_MLP)} published by others for this setup."
        )
        + f" Its test accuracy, measured once after the choice, is {pct(best['test_accuracy'])}."
    )
    if sgd_best is not None and sgd_best["hash"] != best["hash"]:
        notes.append(
            f"With plain SGD at a constant learning rate the best is {pct(sgd_best['final_val_accuracy'])} "
            f"({sgd_best['architecture']}, {sgd_best['config']['activation']}, lr {sgd_best['config']['lr']}, batch "
            f"{sgd_best['config']['batch_size']}; test {pct(sgd_best['test_accuracy'])}): the extra dimensions "
            f"(momentum, schedules) add {100 * (acc - sgd_best['final_val_accuracy']):.2f} points."
        )
    by_act: dict[str, list[float]] = {}
    for r in rows:
        if math.isfinite(r["r_valid"]):
            by_act.setdefault(str(r["activation"]), []).append(r["r_valid"])
    if len(by_act) > 1:
        ranked = sorted(((max(v), k) for k, v in by_act.items()), reverse=True)
        notes.append(
            "Best r(valid) by nonlinearity: "
            + ", ".join(f"{k} {pct(v)}" for v, k in ranked)
            + f": within {s['grid']['base']['epochs']} epochs {ranked[0][1]} gets furthest."
        )
    spreads = []
    for block in s["grid"]["blocks"]:
        accs = [
            r["r_valid"]
            for r in rows
            if r["hash"] in block["hashes"] and math.isfinite(r["r_valid"])
        ]
        if len(accs) > 1:
            spreads.append((max(accs) - min(accs), block["name"]))
    if spreads:
        spreads.sort(reverse=True)
        notes.append(
            "Spread of r(valid) within each dimension searched (max - min): "
            + ", ".join(f"{name} {100 * d:.2f} points" for d, name in spreads)
            + f"; {spreads[0][1]} matters most here."
        )
    failed = s.get("failed", [])
    if failed:
        notes.append(
            f"{len(failed)} configuration(s) failed or diverged and are recorded as such: "
            + "; ".join(f"{f['hash']}: {f['error']}" for f in failed)
        )
    return notes


def hparam_section(doc: Document, s: Summary, folder: Path) -> None:
    from analyses.hparam_search import table_rows

    g = s["grid"]
    base = g["base"]
    doc.heading("2. Hyper-parameter search")
    doc.paragraph(
        f"Glorot initialization throughout; {g['n_configs']} configurations ({g['n_headline']} headline: plain SGD at "
        f"a constant learning rate, a model within {thousands(g['param_range'][0])}-{thousands(g['param_range'][1])} "
        f"parameters), each trained {base['epochs']} epochs on {s['dataset']} "
        f"({split_sizes(s)}), seed {base['seed']}, "
        f"{base['dtype']}. Around the base configuration ({widths([784, *base['hidden'], 10])}, {base['activation']}, lr "
        f"{base['lr']}, batch {base['batch_size']}) the search varies one group of settings at a time: "
        + "; ".join(f"{b['name']} ({', '.join(b['varies'])})" for b in g["blocks"])
        + ". "
        + s["selection"]
    )
    rows = table_rows(s["runs"])
    doc.table(
        [
            "#",
            "r(valid)",
            "best ep.",
            "architecture",
            "params",
            "act.",
            "lr",
            "batch",
            "optimizer",
            "schedule",
        ],
        [
            [
                str(t["rank"]),
                pct(t["r_valid"]),
                pct(t["max_r_valid"]),
                t["architecture"],
                thousands(t["n_params"]),
                t["activation"],
                f"{t['lr']:g}",
                str(t["batch_size"]),
                t["optimizer"],
                t["schedule"],
            ]
            for t in rows
        ],
        size=7.0,
    )
    best = s.get("best")
    if best is not None:
        c = best["config"]
        doc.paragraph(
            f"Chosen model: {best['architecture']} ({thousands(best['n_params'])} parameters), {c['activation']}, "
            f"lr {c['lr']}, batch {c['batch_size']}, {c['optimizer']}, schedule {c['schedule']}, {c['epochs']} epochs: "
            f"r(valid) {pct(best['final_val_accuracy'])}, test accuracy {pct(best['test_accuracy'])}."
        )
    for name in study_figures(s, folder):
        figure(doc, folder, name)
    doc.heading("Comments", 2)
    doc.bullets(hparam_comments(s))


# -------------------------------------------------------------------------- the CNN

PUBLISHED_CNN: Final = 0.9920  # best regularized CNN result published by others for this setup


def cnn_comments(s: Summary) -> list[str]:
    agg, mlp = s["aggregate"], s["mlp"]
    van, reg = agg["vanilla"], agg["dropout"]
    notes: list[str] = []
    notes.append(
        f"The CNN has {thousands(s['cnn_params'])} parameters against the MLP's {thousands(mlp['params'])} "
        f"(ratio {s['param_ratio']:.3f}), so the comparison is at equal size; the convolutions hold few of them "
        "and the fully connected head most."
    )
    mlp_err = mlp["curves"]["valid_error"][-1]
    v_err, v_sd = van["final_valid_error"]["mean"], van["final_valid_error"]["std"]
    r_err, r_sd = reg["final_valid_error"]["mean"], reg["final_valid_error"]["std"]
    notes.append(
        f"After {s['epochs']} epochs the vanilla CNN's validation error is {pct(v_err)} (sd {pct(v_sd)} over "
        f"{len(s['seeds'])} seeds) against the MLP's {pct(mlp_err)}: "
        + (
            f"the CNN makes {mlp_err / v_err:.1f} times fewer errors. Weight sharing and pooling build in "
            "translation equivariance that the MLP must learn from data."
            if v_err < mlp_err
            else "the CNN does not beat the MLP here."
        )
    )
    gap_v = van["valid_error"]["mean"][-1] - van["train_error"]["mean"][-1]
    gap_r = reg["valid_error"]["mean"][-1] - reg["train_error"]["mean"][-1]
    notes.append(
        f"Generalization gap (validation minus training error, last epoch): vanilla {pct(gap_v)}, with "
        f"{s['regularization']['technique']} (p = {s['regularization']['p']}) {pct(gap_r)}"
        + ("; dropout narrows it." if gap_r < gap_v else "; dropout does not narrow it.")
    )
    gain = v_err - r_err
    noise = max(v_sd, r_sd)
    if gain > 2 * noise:
        judged = f"larger than twice the seed-to-seed spread ({pct(noise)}): a real improvement."
    elif gain > 0:
        judged = (
            f"within twice the seed-to-seed spread ({pct(noise)}): not distinguishable from noise."
        )
    else:
        judged = "the regularized CNN is not better on average."
    notes.append(
        f"{s['regularization']['technique'].capitalize()} changes the mean final validation error from "
        f"{pct(v_err)} to {pct(r_err)}, a gain of {100 * gain:.2f} points, " + judged
    )
    r_acc = reg["final_valid_accuracy_mean"]
    notes.append(
        f"Targets: vanilla {pct(1 - v_err)} against 99.00% ({'met' if s['targets']['vanilla_met'] else 'missed'}); "
        f"regularized {pct(r_acc)} against the {pct(PUBLISHED_CNN)} published by others "
        f"({'above' if s['targets']['regularized_met'] else 'not above'}), aim 99.40% "
        f"({'met' if s['targets']['aim_met'] else 'missed'})."
    )
    notes.append(
        "Early stopping on the validation loss would have stopped at epoch(s) "
        f"{', '.join(str(e) for e in van['early_stop_epochs'])} (vanilla) and "
        f"{', '.join(str(e) for e in reg['early_stop_epochs'])} ({s['regularization']['technique']}), one per seed."
    )
    return notes


def cnn_section(doc: Document, s: Summary, folder: Path) -> None:
    arch = s["architecture"]
    train = s["train"]
    doc.heading("4. A convolutional network")
    doc.paragraph(
        f"PyTorch, on the same {s['dataset']} split as the MLP "
        f"({split_sizes(s)}); {s['epochs']} epochs; "
        f"optimizer {s['optimizer']}, mini-batch {train.get('batch_size')}; seeds {', '.join(map(str, s['seeds']))}; "
        f"device {s['device']}, {s['threads']} threads. Loss and error are measured on the full training and "
        f"validation sets after each epoch. The MLP compared with is {mlp_name(s)} ({mlp_source(s)})."
    )
    for name, a in vanilla_first(arch.items()):
        doc.paragraph(f"CNN {name}: {a['description']} ({thousands(a['params'])} parameters)")
    layers = arch["vanilla"]["layers"]
    doc.table(
        ["layer", "kind", "kernel", "in", "out", "output shape", "params"],
        [
            [
                r["name"],
                r["kind"],
                str(r.get("kernel", "")),
                str(r.get("in", "")),
                str(r.get("out", "")),
                "x".join(str(v) for v in r["output_shape"]),
                thousands(r["params"]),
            ]
            for r in layers
        ],
        size=7.5,
    )
    doc.table(
        ["model", "params", "seeds", "final train error", "final valid error", "sd over seeds"],
        [
            [
                r["model"],
                thousands(r["params"]),
                str(r["seeds"]),
                pct(r["final_train_error"]),
                pct(r["final_valid_error"]),
                pct(r["final_valid_error_std"]) if r["final_valid_error_std"] is not None else "-",
            ]
            for r in s["table"]
        ],
    )
    ep = list(range(1, s["epochs"] + 1))
    doc.paragraph("Validation error per epoch (mean over seeds, sd in brackets):")
    rows = [["MLP"] + [pct(v) for v in s["mlp"]["curves"]["valid_error"]]]
    for name, a in vanilla_first(s["aggregate"].items()):
        rows.append(
            [f"CNN {name}"]
            + [
                f"{pct(m)} ({100 * sd:.2f})"
                for m, sd in zip(a["valid_error"]["mean"], a["valid_error"]["std"])
            ]
        )
    doc.table(["model"] + [str(e) for e in ep], rows, size=5.5)
    for name in study_figures(s, folder):
        figure(doc, folder, name)
    doc.heading("Comments", 2)
    doc.bullets(cnn_comments(s))


def mlp_name(s: Summary) -> str:
    m = s["mlp"]
    return f"{widths(m['sizes'])} {m['config']['activation']} ({thousands(m['params'])} parameters)"


def mlp_source(s: Summary) -> str:
    return str(s["mlp"]["source"])


# ---------------------------------------------------------------- title and summary


def compute_seconds(ss: Mapping[str, Summary]) -> dict[str, float]:
    """Wall time each study spent computing its results, stable across resumed
    invocations (an invocation that reuses finished runs adds nothing): the sum of the
    study's run times, except for the search, whose runs ran side by side on the
    executor's workers; there, the wall time of the sweeps that computed runs (each
    such invocation is logged), or, for results without that log, the runs' total
    divided by the number of workers."""
    init = sum(float(r["wall_seconds"]) for r in ss["init_study"]["runs"].values())
    hp_summary = ss["hparam_search"]
    sweeps = [
        float(i["sweep_seconds"]) for i in hp_summary.get("invocations", []) if i.get("computed")
    ]
    if sweeps:
        hp = sum(sweeps)
    else:
        workers = int(hp_summary.get("executor", {}).get("workers") or 1)
        hp = float(hp_summary["wall_seconds"]["runs_total"]) / workers
    gc = float(ss["gradcheck_study"].get("runs_wall_seconds", 0.0))
    cnn = float(ss["cnn_study"]["wall_seconds"]["runs_total"])
    return {
        "initialization": init,
        "hyper-parameter search": hp,
        "finite differences": gc,
        "CNN": cnn,
    }


def duration(seconds: float) -> str:
    """'4 s' below a minute, else '10.2 min'."""
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def search_parallelism(hp: Summary) -> str:
    """' (the search ran N configurations at a time)' from the logged invocations that
    computed runs; empty when it ran one at a time or the log does not say."""
    logged = {
        int(i.get("executor", {}).get("workers") or 1)
        for i in hp.get("invocations", [])
        if i.get("computed")
    }
    if not logged or logged == {1}:
        return ""
    n = " or ".join(str(w) for w in sorted(logged))
    return f" (the search ran {n} configurations at a time)"


def headline_rows(ss: Mapping[str, Summary]) -> list[list[str]]:
    hp, gc, cnn = ss["hparam_search"], ss["gradcheck_study"], ss["cnn_study"]
    rows: list[list[str]] = []
    best = hp.get("best")
    if best is not None:
        rows.append(
            [
                "best MLP, validation accuracy r(valid)",
                pct(best["final_val_accuracy"]),
                f"{best['architecture']} {best['config']['activation']}",
            ]
        )
        rows.append(["best MLP, test accuracy (measured once)", pct(best["test_accuracy"]), ""])
    for name, a in vanilla_first(cnn["aggregate"].items()):
        rows.append(
            [
                f"CNN {name}, validation accuracy",
                pct(a["final_valid_accuracy_mean"]),
                f"mean of {len(cnn['seeds'])} seeds, sd {pct(a['final_valid_error']['std'])}",
            ]
        )
    head = gc["settings"]["headline_dtype"]
    c = gc["curves"][head]
    fin = [(d, n) for n, d in zip(c["N"], c["max_abs_diff"]) if d is not None and math.isfinite(d)]
    if fin:
        d, n = min(fin)
        rows.append(["finite differences, smallest max error", sci(d), f"at N = {n} ({head})"])
    return rows


def title_page(doc: Document, ss: Mapping[str, Summary], date: str) -> None:
    m = ss["hparam_search"]["machine"]
    blas = m.get("blas") or [{}]
    kernel = (
        ", ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')} kernel, "
            f"{b.get('num_threads')} threads)"
            for b in blas
        )
        or "unknown"
    )
    secs = compute_seconds(ss)
    doc.new_page()
    doc.space(1.2)
    doc.heading("fmlp: how a two-hidden-layer MLP learns MNIST", 0)
    doc.paragraph(
        "Initialization, hyper-parameters, finite-difference gradients, and a CNN of the same size. "
        "Every number, table, figure and comment below is generated from the measured results.",
        size=11,
    )
    doc.space(0.3)
    doc.bullets(
        [
            f"results produced: {date}",
            f"fmlp {m['fmlp']} (commit {m['fmlp_commit']}), Python {m['python']}, numpy {m['numpy']}, torch {m.get('torch')}",
            f"BLAS: {kernel}; OPENBLAS_CORETYPE {m.get('openblas_coretype') or 'unset'}",
            f"machine: {m['cores']} cores, {m['platform']}",
            "wall time spent computing these results: "
            + ", ".join(f"{k} {duration(v)}" for k, v in secs.items())
            + f"; total {sum(secs.values()) / 60:.1f} min{search_parallelism(ss['hparam_search'])}",
        ]
    )
    doc.heading("Summary", 1)
    doc.table(["figure", "value", "note"], headline_rows(ss), size=8.5)


def results_date(out: Path) -> str:
    """The UTC date of the newest run file: when the results were produced. Run files are
    never rewritten on resume, so a rebuild keeps the date (and the PDF's bytes)."""
    import datetime

    stamps = [p.stat().st_mtime for study in STUDIES for p in (out / study / "runs").glob("*.json")]
    if not stamps:
        return "unknown"
    return datetime.datetime.fromtimestamp(max(stamps), tz=datetime.UTC).strftime("%Y-%m-%d")


# ----------------------------------------------------------------------------- main


SECTIONS: Final[tuple[tuple[str, Callable[[Document, Summary, Path], None]], ...]] = (
    ("init_study", init_section),
    ("hparam_search", hparam_section),
    ("gradcheck_study", gradcheck_section),
    ("cnn_study", cnn_section),
)


def build(out: Path) -> tuple[Path, int]:
    """Write ``<out>/report.pdf`` from the results under ``out``; returns its path and
    page count. MissingResults when a study has not run."""
    ss = load_summaries(out)
    doc = Document("fmlp: four studies of an MLP on MNIST")
    title_page(doc, ss, results_date(out))
    for study, section in SECTIONS:
        doc.new_page()
        section(doc, ss[study], out / study)
    path = out / "report.pdf"
    atomic_write_bytes(path, doc.close())
    return path, doc.pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the PDF report from the results on disk (no training)."
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results)"
    )
    args = parser.parse_args(argv)
    try:
        path, pages = build(args.out)
    except MissingResults as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} ({pages} pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
