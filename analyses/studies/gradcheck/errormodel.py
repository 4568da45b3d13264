"""Why the finite-difference error has the shape it has: truncation against round-off.

FD_i - g_i ~ C_t eps^2 (truncation, C_t = |L'''| / 6) plus about C_r / eps (round-off,
C_r = sqrt(2) sigma_L, sigma_L the noise of the computed loss), capped at max_i |g_i| (a
difference that rounds to 0 errs by the gradient itself). C_t comes from a fit to the
headline curve where round-off is negligible, or else from L''' estimated per element
with a five-point stencil (both are recorded). The textbook round-off scale
machine_eps |L| is recorded beside sigma_L: it underestimates the noise when |L| << 1,
since a log-sum-exp near its minimum errs by about machine_eps, not machine_eps |L|. The
two terms cross at N* = (C_t / C_r)^(1/3); their sum is smallest at
N = (2 C_t / C_r)^(1/3).

Beside it, the textbook prediction of the best step, from machine_eps u alone
(:class:`Optimum`): the rule of thumb h* = u^(1/3) s with s = max(1, max_i |theta_i|)
the scale of theta, and an error floor u^(2/3) |L|^(2/3) |L'''|^(1/3); and the same
argument with the loss's own constants, minimizing |L'''| h^2 / 6 + u |L| / h: h* =
(3 u |L| / |L'''|)^(1/3), floor (9/8)^(1/3) u^(2/3) |L|^(2/3) |L'''|^(1/3). |L'''| is
max_i |L'''_i| from the stencil (elements without kinks), |L| the loss in that dtype.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs
import numpy as np

from analyses.datasets import DTypeName
from analyses.studies.gradcheck.finite import FdCurve, LossNoise, ThirdDerivatives


@attrs.frozen
class Truncation:
    """The truncation coefficient C_t (FD_i - g_i ~ C_t eps^2).

    stencil: max_i |L'''_i| / 6 over the elements without kinks (all of them when every
    element has one); fit: fitted to the headline curve (None when no N qualifies);
    coef: the one used, named by ``source``."""

    stencil: float
    fit: float | None
    coef: float
    source: Literal["fit", "stencil"]


@attrs.frozen
class DtypeErrorModel:
    """The error model in one dtype.

    roundoff_coef: C_r = sqrt(2) sigma_L (the expected max over p elements of
    |noise_+ - noise_-| / 2, about two standard deviations); roundoff_coef_textbook:
    machine_eps |L|; saturation: max_i |g_i|; crossing_eps / crossing_N: where
    C_t eps^2 = C_r / eps; optimal_N: where their sum is smallest (None without a
    round-off or truncation term); model: min(C_t eps^2 + C_r / eps, saturation) per N.
    """

    dtype: DTypeName
    machine_eps: float
    loss_noise: float
    loss_noise_source: Literal["measured", "resolution"]
    roundoff_coef: float
    roundoff_coef_textbook: float
    saturation: float
    crossing_eps: float | None
    crossing_N: float | None
    optimal_N: float | None
    model: tuple[float, ...]


def fit_truncation(curve: FdCurve, roundoff_coef: float) -> float | None:
    """C_t fitted to a measured curve: the geometric mean of max_diff * N^2 over the N
    without kink crossings where the round-off term C_r N is under a tenth of the
    measurement; None when there is no such N."""
    vals = [
        m * n**2
        for n, m, kink in zip(curve.ns, curve.max_abs_diff, curve.any_kink, strict=True)
        if not kink and m > 0 and math.isfinite(m) and roundoff_coef * n < 0.1 * m
    ]
    return float(np.exp(np.mean(np.log(vals)))) if vals else None


def third_max(third: ThirdDerivatives) -> float:
    """max_i |L'''_i| over the elements without a kink within the stencil (over all of
    them when every element has one); 0 when theta is empty."""
    l3 = np.abs(np.asarray(third.values, dtype=np.float64))
    smooth = ~np.asarray(third.kink, dtype=bool)
    pool = l3[smooth] if smooth.any() else l3
    return float(np.max(pool)) if pool.size else 0.0


def truncation(third: ThirdDerivatives, headline: FdCurve, roundoff: float) -> Truncation:
    """C_t from the stencil and from the headline curve; the fit is used when there is
    one (the stencil's own round-off, about 3 sigma_L / h^3, can swamp the tiny L''' of
    a confident model)."""
    stencil = third_max(third) / 6.0
    fitted = fit_truncation(headline, roundoff)
    if fitted is not None:
        return Truncation(stencil=stencil, fit=fitted, coef=fitted, source="fit")
    return Truncation(stencil=stencil, fit=None, coef=stencil, source="stencil")


def error_model(c_t: float, noise: LossNoise, curve: FdCurve) -> DtypeErrorModel:
    """min(C_t eps^2 + C_r / eps, max_i |g_i|) with C_r = sqrt(2) sigma_L, the N where
    the two terms cross and the N that minimizes their sum. The cap: once 2 eps |g_i| is
    far below the loss's rounding step, L(theta + eps) and L(theta - eps) round to the
    same number, the difference reads 0 and errs by |g_i|."""
    c_r = math.sqrt(2.0) * noise.loss_noise
    cap = max((abs(g) for g in curve.gradient), default=0.0)
    both = c_t > 0 and c_r > 0
    crossing = (c_r / c_t) ** (1 / 3) if both else None
    optimal = (c_r / (2 * c_t)) ** (1 / 3) if both else None
    return DtypeErrorModel(
        dtype=curve.dtype,
        machine_eps=noise.machine_eps,
        loss_noise=noise.loss_noise,
        loss_noise_source=noise.source,
        roundoff_coef=c_r,
        roundoff_coef_textbook=noise.machine_eps * abs(curve.loss),
        saturation=cap,
        crossing_eps=crossing,
        crossing_N=1.0 / crossing if crossing else None,
        optimal_N=1.0 / optimal if optimal else None,
        model=tuple(min(c_t / n**2 + c_r * n, cap) for n in curve.ns),
    )


@attrs.frozen
class Optimum:
    """The measured best N in one dtype against the textbook's prediction.

    measured_N / measured_error: where max_i |FD_i - g_i| is smallest over the N tried
    (ties: the smaller N) and its value; measured_kinks: kink crossings there.
    loss: |L| in this dtype; third: max_i |L'''_i| (stencil); theta_scale: max(1,
    max_i |theta_i|). rule_*: h* = u^(1/3) theta_scale, N* = 1 / h*, floor u^(2/3)
    |L|^(2/3) |L'''|^(1/3). tuned_*: h* = (3 u |L| / |L'''|)^(1/3), floor (9/8)^(1/3)
    u^(2/3) |L|^(2/3) |L'''|^(1/3) (None when L''' or L is 0). resolution: the smallest
    change of the loss this dtype resolves, u max(1, |L|); resolved_up_to_N: 2 max_i
    |g_i| / resolution, the N below which a step moves the loss by more than that;
    nonzero_N: how many N give at least one non-zero difference.
    """

    dtype: DTypeName
    machine_eps: float
    loss: float
    third: float
    theta_scale: float
    measured_N: int | None
    measured_error: float | None
    measured_kinks: int
    rule_h: float
    rule_N: float
    rule_floor: float
    tuned_h: float | None
    tuned_N: float | None
    tuned_floor: float | None
    resolution: float
    resolved_up_to_N: float | None
    nonzero_N: int


def optimum(
    curve: FdCurve, noise: LossNoise, third: ThirdDerivatives, theta: tuple[float, ...]
) -> Optimum:
    """Where the measured curve is lowest, and where the textbook puts the optimum."""
    u = noise.machine_eps
    loss = abs(curve.loss)
    l3max = third_max(third)
    scale = max([1.0, *(abs(t) for t in theta)])
    rule_h = u ** (1 / 3) * scale
    constant = loss ** (2 / 3) * l3max ** (1 / 3)
    tuned = l3max > 0 and loss > 0
    tuned_h = (3 * u * loss / l3max) ** (1 / 3) if tuned else None
    best = curve.minimum()
    j = curve.ns.index(best[1]) if best is not None else None
    gmax = max((abs(g) for g in curve.gradient), default=0.0)
    return Optimum(
        dtype=curve.dtype,
        machine_eps=u,
        loss=loss,
        third=l3max,
        theta_scale=scale,
        measured_N=None if best is None else best[1],
        measured_error=None if best is None else best[0],
        measured_kinks=0 if j is None else curve.n_kinks[j],
        rule_h=rule_h,
        rule_N=1.0 / rule_h,
        rule_floor=u ** (2 / 3) * constant,
        tuned_h=tuned_h,
        tuned_N=None if tuned_h is None else 1.0 / tuned_h,
        tuned_floor=(9 / 8) ** (1 / 3) * u ** (2 / 3) * constant if tuned else None,
        resolution=noise.loss_resolution,
        resolved_up_to_N=2 * gmax / noise.loss_resolution if gmax > 0 else None,
        nonzero_N=sum(1 for row in curve.fd if any(v != 0.0 for v in row)),
    )
