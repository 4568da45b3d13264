"""The finite-difference study's figure: the error against N with its model, and every
element's error."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from analyses.figures import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analyses.studies.gradcheck.summary import GradcheckSettings, SampleResult
    from fmlp.types import FloatArray

DTYPE_COLORS: Final = {"float64": "tab:blue", "float32": "tab:orange"}


def _mark_off_axis(ax: Axes, ns: FloatArray, values: FloatArray, color: str) -> None:
    """Values a log axis cannot show: exactly 0 (triangle at the bottom) and non-finite
    (cross at the top), so no point is silently dropped."""
    zero = np.isfinite(values) & (values <= 0)
    if zero.any():
        ax.plot(
            ns[zero],
            np.full(int(zero.sum()), 0.02),
            "v",
            color=color,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
    bad = ~np.isfinite(values)
    if bad.any():
        ax.plot(
            ns[bad],
            np.full(int(bad.sum()), 0.98),
            "x",
            color=color,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            mew=2,
        )


def _log_axes(ax: Axes, ns: FloatArray) -> None:
    ys = [
        np.asarray(line.get_ydata(), dtype=np.float64)
        for line in ax.get_lines()
        if line.get_transform() == ax.transData
    ]
    values = np.concatenate(ys) if ys else np.zeros(0)
    if not np.any(np.isfinite(values) & (values > 0)):
        ax.set_ylim(1e-17, 1.0)  # every difference is exactly 0: a log axis needs limits
    ax.set_xlim(float(ns.min()) / 2, float(ns.max()) * 2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N  (eps = 1/N)")
    ax.grid(True, which="both", alpha=0.3)


def plot_sample(
    settings: GradcheckSettings, result: SampleResult, folder: Path, name: str
) -> list[str]:
    """Left: max_i |FD_i - g_i| against N (log-log) per dtype with the error model and
    kink crossings; right: every element's |FD_i - g_i|, kink crossings in red."""
    from matplotlib.lines import Line2D

    fig = new_figure(figsize=(12, 4.8))
    ax, ax2 = fig.subplots(1, 2)
    ns = np.asarray(settings.ns, dtype=np.float64)
    for curve in result.curves:
        color = DTYPE_COLORS.get(curve.dtype, "k")
        mx = np.asarray(curve.max_abs_diff, dtype=np.float64)
        pos = np.isfinite(mx) & (mx > 0)
        ax.plot(ns[pos], mx[pos], "o-", color=color, label=f"{curve.dtype}: max |FD - g|", ms=5)
        _mark_off_axis(ax, ns, mx, color)
        kinked = np.asarray(curve.any_kink, dtype=bool) & pos
        if kinked.any():
            ax.plot(ns[kinked], mx[kinked], "o", mfc="none", mec="red", ms=11, mew=1.5)
        m = result.error_model(curve.dtype)
        if m is not None:
            crossing = "none" if m.crossing_N is None else f"{m.crossing_N:.3g}"
            ax.plot(
                ns,
                np.asarray(m.model),
                "-",
                color=color,
                alpha=0.45,
                lw=3,
                label=f"{curve.dtype} model, crossing N* = {crossing}",
            )
            ax.plot(ns, m.roundoff_coef * ns, "--", color=color, lw=1)
            if m.crossing_N is not None:
                ax.axvline(m.crossing_N, color=color, ls=":", lw=1)
        d = np.asarray(curve.abs_diff, dtype=np.float64)
        k = np.asarray(curve.kink, dtype=bool)
        shift = 1.08 if curve.dtype == "float32" else 1 / 1.08
        reps = np.repeat(ns[:, None], d.shape[1], axis=1) * shift
        ok = np.isfinite(d) & (d > 0)
        if np.any(ok & ~k):
            ax2.plot(reps[ok & ~k], d[ok & ~k], ".", color=color, alpha=0.7)
        if np.any(ok & k):
            ax2.plot(reps[ok & k], d[ok & k], "x", color="red", mew=1.2)
    ax.plot(ns, result.truncation.coef / ns**2, "k:", lw=1)
    for a in (ax, ax2):
        _log_axes(a, ns)
    ax.set_ylabel("max_i |FD_i - dL/dtheta_i|")
    s = result.sample
    theta = (
        f"layers[{settings.layer}].w.ravel()[:{settings.p}]"
        if settings.elements is None
        else f"the first {settings.p} live elements of layers[{settings.layer}].w"
    )
    ax.set_title(
        f"theta = {theta}, training sample {s.index} (label {s.label}, loss {s.loss:.3g})",
        fontsize=9,
    )
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], ls=":", color="k"),
        Line2D([], [], ls="--", color="gray"),
        Line2D([], [], marker="o", mfc="none", mec="red", ls="", ms=10),
        Line2D([], [], marker="v", color="k", ls=""),
    ]
    source = "fit to the curve" if result.truncation.source == "fit" else "stencil"
    labels += [
        f"truncation C_t eps^2 ({source})",
        "round-off C_r / eps",
        "a perturbation crosses a ReLU kink",
        "exactly 0 (bottom)",
    ]
    ax.legend(handles, labels, fontsize=7)
    ax2.set_ylabel("|FD_i - dL/dtheta_i| per element")
    ax2.set_title(
        "every element (dots; red x: crosses a ReLU kink); float32 shifted right", fontsize=9
    )
    fig.tight_layout()
    return save_figure(fig, folder, name)


def plot_precisions(
    settings: GradcheckSettings, result: SampleResult, folder: Path, name: str
) -> list[str]:
    """One panel per dtype, side by side on the same axes: max_i |FD_i - g_i| against N,
    the textbook's truncation |L'''| eps^2 / 6 and round-off u |L| / eps, its optimum
    (vertical lines: the rule of thumb and the tuned step) and error floor (horizontal
    lines), and the measured optimum (star)."""
    from matplotlib.lines import Line2D

    curves = result.curves
    fig = new_figure(figsize=(12, 4.8))
    axes = fig.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    ns = np.asarray(settings.ns, dtype=np.float64)
    s = result.sample
    for ax, curve in zip(axes, curves, strict=True):
        color = DTYPE_COLORS.get(curve.dtype, "k")
        mx = np.asarray(curve.max_abs_diff, dtype=np.float64)
        pos = np.isfinite(mx) & (mx > 0)
        ax.plot(ns[pos], mx[pos], "o-", color=color, ms=5, label="measured max_i |FD_i - g_i|")
        _mark_off_axis(ax, ns, mx, color)
        kinked = np.asarray(curve.any_kink, dtype=bool) & pos
        if kinked.any():
            ax.plot(ns[kinked], mx[kinked], "o", mfc="none", mec="red", ms=11, mew=1.5)
        o = result.optimum(curve.dtype)
        if o is not None:
            ax.plot(ns, o.third / 6 / ns**2, "k:", lw=1, label="truncation |L'''| eps^2 / 6")
            ax.plot(
                ns,
                o.machine_eps * o.loss * ns,
                "--",
                color="gray",
                lw=1,
                label="round-off u |L| / eps",
            )
            ax.axvline(
                o.rule_N,
                color="green",
                ls="--",
                lw=1.2,
                label=f"rule: N* = {o.rule_N:.3g}, floor {o.rule_floor:.2g}",
            )
            ax.axhline(o.rule_floor, color="green", ls="--", lw=0.8)
            if o.tuned_N is not None and o.tuned_floor is not None:
                ax.axvline(
                    o.tuned_N,
                    color="purple",
                    ls=":",
                    lw=1.5,
                    label=f"tuned: N* = {o.tuned_N:.3g}, floor {o.tuned_floor:.2g}",
                )
                ax.axhline(o.tuned_floor, color="purple", ls=":", lw=0.8)
            if o.measured_N is not None and o.measured_error is not None and o.measured_error > 0:
                ax.plot(
                    [o.measured_N],
                    [o.measured_error],
                    "*",
                    color="k",
                    ms=14,
                    label=f"measured best N = {o.measured_N}",
                )
        _log_axes(ax, ns)
        ax.set_title(
            f"{curve.dtype}: training sample {s.index} (label {s.label}, loss {s.loss:.3g})",
            fontsize=9,
        )
        handles, labels = ax.get_legend_handles_labels()
        if kinked.any():
            handles.append(Line2D([], [], marker="o", mfc="none", mec="red", ls="", ms=10))
            labels.append("a perturbation crosses a ReLU kink")
        ax.legend(handles, labels, fontsize=7, loc="lower left")
    axes[0].set_ylabel("max_i |FD_i - dL/dtheta_i|")
    fig.tight_layout()
    return save_figure(fig, folder, name)
