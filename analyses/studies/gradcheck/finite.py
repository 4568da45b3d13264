"""The finite-difference measurements on one training sample, as pure functions of the
model (float64), the sample and what to measure; each returns a typed record.

theta is the first p = min(p, m) elements of ``params.layers[layer].w`` (shape
(fan_in, fan_out)) flattened in row-major order, so theta_i is ``w[i // fan_out,
i % fan_out]``; or, where those elements never reach the loss (their units are dead),
other elements of the same matrix named by their flat indices (``elements``). Each
perturbation is a new parameter tree built with ``fmlp.tree_map`` (``params + eps *
e_i``); no array is modified.

The sample is given in float64 holding float32 values (the data as the model was
trained on it), so it is the same input, exactly, in both precisions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import attrs
import numpy as np

import fmlp
from analyses.datasets import DTypeName
from fmlp.types import FloatArray, IntArray

# --------------------------------------------------------------------- records


@attrs.frozen
class FdCurve:
    """The central differences of every theta_i for every N, in one dtype.

    gradient: the float64 backward gradient at the same (rounded) point, the reference.
    Lists over N: ``max_abs_diff`` (max_i |FD_i - g_i|), ``argmax`` (that i),
    ``relative_error`` (max_abs_diff / max_i |g_i|; None when g = 0),
    ``max_elementwise_relative_error`` (max_i |FD_i - g_i| / max(|FD_i|, |g_i|), 0 where
    both are 0), ``any_kink`` / ``n_kinks`` (perturbations that cross a ReLU kink),
    ``max_abs_diff_without_kinks`` (None when every element crossed one),
    ``max_abs_diff_own_backward`` (against the backward pass run in this dtype). Lists
    over N of lists over i: ``fd``, ``abs_diff``, ``kink``, ``kink_units`` (how many
    hidden units change sign). ``backward_vs_reference``: max_i |g_dtype,i - g_i|.
    """

    dtype: DTypeName
    ns: tuple[int, ...]
    eps: tuple[float, ...]
    loss: float
    gradient: tuple[float, ...]
    max_abs_diff: tuple[float, ...]
    argmax: tuple[int, ...]
    relative_error: tuple[float | None, ...]
    max_elementwise_relative_error: tuple[float, ...]
    any_kink: tuple[bool, ...]
    n_kinks: tuple[int, ...]
    max_abs_diff_without_kinks: tuple[float | None, ...]
    max_abs_diff_own_backward: tuple[float, ...]
    backward_vs_reference: float
    fd: tuple[tuple[float, ...], ...]
    abs_diff: tuple[tuple[float, ...], ...]
    kink: tuple[tuple[bool, ...], ...]
    kink_units: tuple[tuple[int, ...], ...]

    @property
    def all_zero(self) -> bool:
        """Every central difference is exactly 0 (the loss did not resolve any step)."""
        return all(v == 0.0 for row in self.fd for v in row)

    @property
    def zero_ns(self) -> tuple[int, ...]:
        """The N at which every central difference is exactly 0."""
        return tuple(
            n for n, row in zip(self.ns, self.fd, strict=True) if all(v == 0.0 for v in row)
        )

    def minimum(self) -> tuple[float, int] | None:
        """The smallest finite max_abs_diff and its N (ties: the smaller N)."""
        pairs = [
            (d, n) for n, d in zip(self.ns, self.max_abs_diff, strict=True) if math.isfinite(d)
        ]
        return min(pairs) if pairs else None


@attrs.frozen
class ThirdDerivatives:
    """L'''(theta_i) per element from a five-point stencil of step h in float64, and
    whether a ReLU kink lies within +-2h (the estimate then does not describe the
    smooth part)."""

    h: float
    values: tuple[float, ...]
    kink: tuple[bool, ...]


@attrs.frozen
class LossNoise:
    """The round-off noise sigma_L of the loss computed in one dtype (see
    :func:`loss_noise`). ``source``: ``measured``, or ``resolution`` when no element
    gave a measurement and sigma_L is the loss's resolution u max(1, |L|)."""

    dtype: DTypeName
    machine_eps: float
    loss_noise: float
    source: Literal["measured", "resolution"]
    loss_resolution: float
    per_element: tuple[float | None, ...]
    window_per_element: tuple[float | None, ...]


@attrs.frozen
class ChosenSample:
    """A training sample the study checks, and why it was chosen.

    rule: the rule, in words. skipped: how many samples the rule passed over before it
    (they give dL/dtheta = 0 exactly). loss: float64, at the model. gradient: dL/dtheta
    (float64 backward). input_activation: per theta_i, the activation that multiplies
    it (0 makes its gradient and every difference exactly 0).
    """

    index: int
    label: int
    rule: str
    skipped: int
    loss: float
    gradient: tuple[float, ...]
    input_activation: tuple[float, ...]


# ----------------------------------------------------------------- perturbations


Elements = tuple[int, ...]
"""theta's elements as flat (row-major) indices into ``params.layers[layer].w``."""


class DeadTheta(ValueError):
    """dL/dtheta is exactly 0 on every sample a rule looked at: theta's units are dead."""


def theta_elements(
    params: fmlp.MLP, layer: int, p: int, elements: Elements | None = None
) -> Elements:
    """theta's flat indices: the first p = min(p, m) elements of the layer's weight
    matrix, or ``elements`` when given (distinct, within the matrix)."""
    if not 0 <= layer < len(params.layers):
        raise ValueError(
            f"layer {layer} does not exist: the model has {len(params.layers)} layers (0-based)"
        )
    m = int(params.layers[layer].w.size)
    if elements is None:
        return tuple(range(min(p, m)))
    if not elements or len(set(elements)) != len(elements):
        raise ValueError(f"theta's elements must be distinct and not empty, got {elements}")
    if any(not 0 <= i < m for i in elements):
        raise ValueError(
            f"theta's elements {elements} must lie in 0..{m - 1} (the layer has m = {m})"
        )
    return elements


def theta_layout(
    params: fmlp.MLP, layer: int, p: int, elements: Elements | None = None
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """p_eff (how many elements theta has) and the (row, column) of each theta_i."""
    idx = theta_elements(params, layer, p, elements)
    cols = int(params.layers[layer].w.shape[1])
    return len(idx), tuple((i // cols, i % cols) for i in idx)


def unit_direction(params: fmlp.MLP, layer: int, i: int) -> fmlp.MLP:
    """e_i: a tree of zeros shaped like ``params`` with a 1 at element i (row-major) of
    ``params.layers[layer].w``."""

    def onehot(w: FloatArray) -> FloatArray:
        e: FloatArray = (np.arange(w.size) == i).reshape(w.shape).astype(w.dtype)
        return e

    layers = tuple(
        fmlp.Dense(w=onehot(l.w) if k == layer else np.zeros_like(l.w), b=np.zeros_like(l.b))
        for k, l in enumerate(params.layers)
    )
    return fmlp.MLP(layers=layers, activation=params.activation)


def shifted(params: fmlp.MLP, direction: fmlp.MLP, step: float) -> fmlp.MLP:
    """params + step * direction, a new tree (tree_map over copies; nothing mutated)."""
    return fmlp.tree_map(lambda a, v: a + a.dtype.type(step) * v, params, direction)


def as_dtype(params: fmlp.MLP, dtype: DTypeName) -> fmlp.MLP:
    dt = np.dtype(dtype)
    return fmlp.tree_map(lambda a: a.astype(dt), params)


def hidden_signs(params: fmlp.MLP, x: FloatArray) -> list[FloatArray]:
    """sign(z_l) of every hidden pre-activation (the ReLU kinks sit at z = 0)."""
    _, cache = fmlp.forward_with_cache(params, x)
    return [np.sign(z) for z in cache.pre_activations[:-1]]


def kink_units(params: fmlp.MLP, minus: fmlp.MLP, plus: fmlp.MLP, x: FloatArray) -> int:
    """How many hidden ReLU units change sign between ``minus`` and ``plus`` (or against
    ``params`` in between); 0 for smooth activations."""
    if params.activation != "relu":
        return 0
    s0, sm, sp = hidden_signs(params, x), hidden_signs(minus, x), hidden_signs(plus, x)
    return int(
        sum(np.count_nonzero((a != b) | (a != c)) for a, b, c in zip(sm, sp, s0, strict=True))
    )


# ------------------------------------------------------------------- the samples


def theta_gradient(
    params64: fmlp.MLP,
    x: FloatArray,
    y: IntArray,
    layer: int,
    p: int,
    elements: Elements | None = None,
) -> FloatArray:
    """dL/dtheta on the sample (x, y) of one row (in the parameters' dtype)."""
    idx = list(theta_elements(params64, layer, p, elements))
    g: FloatArray = fmlp.grad(params64, x, y)[1].layers[layer].w.ravel()[idx]
    return g


def live_elements(
    params64: fmlp.MLP, x: FloatArray, y: IntArray, layer: int, p: int, limit: int
) -> Elements:
    """The first p elements (row-major) of the layer's weight matrix whose gradient over
    the first ``limit`` training samples is not zero: elements that reach the loss on
    at least one of them. Empty when the whole layer is dead on those samples."""
    n = min(len(y), limit)
    total = np.zeros(params64.layers[layer].w.size, dtype=np.float64)
    for start in range(0, n, LOSS_CHUNK):
        stop = min(n, start + LOSS_CHUNK)
        xs = np.asarray(x[start:stop], dtype=np.float64)
        g = fmlp.grad(params64, xs, y[start:stop])[1].layers[layer].w.ravel()
        total += np.abs(g)  # |.|: no two samples' gradients can cancel
    return tuple(int(i) for i in np.flatnonzero(total)[:p])


def row(x: FloatArray, y: IntArray, index: int) -> tuple[FloatArray, IntArray]:
    """Training sample ``index`` as a batch of one, its input in float64."""
    if not 0 <= index < len(y):
        raise ValueError(
            f"sample index {index} is out of range: the training set has {len(y)} samples"
        )
    return np.asarray(x[index : index + 1], dtype=np.float64), y[index : index + 1]


def describe_sample(
    params64: fmlp.MLP,
    x: FloatArray,
    y: IntArray,
    index: int,
    layer: int,
    p: int,
    *,
    rule: str,
    skipped: int,
    elements: Elements | None = None,
) -> ChosenSample:
    xi, yi = row(x, y, index)
    _, cells = theta_layout(params64, layer, p, elements)
    _, cache = fmlp.forward_with_cache(params64, xi)
    a_in = cache.activations[layer][0]
    return ChosenSample(
        index=index,
        label=int(yi[0]),
        rule=rule,
        skipped=skipped,
        loss=fmlp.loss(params64, xi, yi),
        gradient=tuple(float(v) for v in theta_gradient(params64, xi, yi, layer, p, elements)),
        input_activation=tuple(float(a_in[r]) for r, _ in cells),
    )


def live(
    params64: fmlp.MLP,
    x: FloatArray,
    y: IntArray,
    index: int,
    layer: int,
    p: int,
    elements: Elements | None = None,
) -> bool:
    """Whether dL/dtheta is not identically 0 on training sample ``index``."""
    xi, yi = row(x, y, index)
    return bool(np.any(theta_gradient(params64, xi, yi, layer, p, elements) != 0))


def first_live_sample(
    params64: fmlp.MLP,
    x: FloatArray,
    y: IntArray,
    layer: int,
    p: int,
    limit: int,
    elements: Elements | None = None,
) -> int:
    """The first training sample, from index 0 on, where dL/dtheta is not identically 0.

    With ReLU, theta_i = w[r, c] reaches the loss only when hidden unit r (its input)
    and unit c (its output) are both active on the sample; otherwise every gradient and
    every difference is exactly 0 and the check says nothing. DeadTheta when none of
    the first ``limit`` samples qualifies."""
    for index in range(min(len(y), limit)):
        if live(params64, x, y, index, layer, p, elements):
            return index
    raise DeadTheta(
        f"dL/dtheta is exactly 0 on the first {min(len(y), limit):,} training samples "
        "(theta's units are dead): check another layer or model"
    )


FIRST_RULE: Final = "the first training sample from index 0 on where dL/dtheta is not identically 0"
WORST_RULE: Final = (
    "the training sample with the largest loss (float64; ties: the lowest index) among those "
    "where dL/dtheta is not identically 0"
)
LOSS_CHUNK: Final = 1000
"""Training samples per forward pass when every sample's loss is evaluated."""


def sample_losses(
    params64: fmlp.MLP, x: FloatArray, y: IntArray, *, chunk: int = LOSS_CHUNK
) -> FloatArray:
    """Every training sample's cross-entropy, in float64, ``chunk`` samples per forward
    pass (the same chunks every time, so the same losses bit for bit). Shape (N,)."""
    losses = np.empty(len(y), dtype=np.float64)
    for start in range(0, len(y), chunk):
        xs = np.asarray(x[start : start + chunk], dtype=np.float64)
        ys = y[start : start + chunk]
        z = fmlp.logits(params64, xs)
        losses[start : start + len(ys)] = fmlp.cross_entropy(z, ys, reduction="none")
    return losses


def loss_order(losses: FloatArray) -> IntArray:
    """Sample indices by loss, largest first; ties by the lowest index; non-finite
    losses last."""
    key = np.where(np.isfinite(losses), -losses, np.inf)
    order: IntArray = np.lexsort((np.arange(len(losses)), key))
    return order


def worst_live_sample(
    params64: fmlp.MLP,
    x: FloatArray,
    y: IntArray,
    layer: int,
    p: int,
    limit: int,
    *,
    chunk: int = LOSS_CHUNK,
    elements: Elements | None = None,
) -> tuple[int, int, int, float]:
    """The training sample of largest loss (float64; ties: the lowest index) where
    dL/dtheta is not identically 0, as (index, skipped, index of the largest loss,
    largest loss): ``skipped`` samples of larger loss give dL/dtheta = 0 exactly (with
    ReLU, theta's units can be inactive on them). DeadTheta when none of the ``limit``
    samples of largest loss qualifies."""
    losses = sample_losses(params64, x, y, chunk=chunk)
    order = loss_order(losses)
    if len(order) == 0:
        raise ValueError("the training set is empty")
    top = int(order[0])
    for rank, index in enumerate(order[:limit]):
        if not math.isfinite(float(losses[index])):
            break
        if live(params64, x, y, int(index), layer, p, elements):
            return int(index), rank, top, float(losses[top])
    raise DeadTheta(
        f"dL/dtheta is exactly 0 on the {min(len(y), limit):,} training samples of largest "
        "loss (theta's units are dead): check another layer or model"
    )


# ------------------------------------------------------------------ measurements


def fd_curve(
    params64: fmlp.MLP,
    x64: FloatArray,
    y: IntArray,
    *,
    layer: int,
    p: int,
    ns: Sequence[int],
    dtype: DTypeName,
    elements: Elements | None = None,
) -> FdCurve:
    """The central differences (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps) of
    every theta_i for eps = 1/N, every N in ``ns``, computed in ``dtype``, against the
    float64 backward gradient at the same (rounded) point."""
    params = as_dtype(params64, dtype)
    point64 = as_dtype(params, "float64")  # the same point, exactly
    x = x64.astype(dtype)
    idx = theta_elements(params, layer, p, elements)
    g_ref = theta_gradient(point64, x.astype(np.float64), y, layer, p, idx)
    g_own = theta_gradient(params, x, y, layer, p, idx).astype(np.float64)
    directions = [unit_direction(params, layer, i) for i in idx]
    fd_rows: list[list[float]] = []
    kink_rows: list[tuple[int, ...]] = []
    for n in ns:
        eps = 1.0 / n
        fds, kinks = [], []
        for e in directions:
            plus, minus = shifted(params, e, eps), shifted(params, e, -eps)
            fds.append((fmlp.loss(plus, x, y) - fmlp.loss(minus, x, y)) / (2 * eps))
            kinks.append(kink_units(params, minus, plus, x))
        fd_rows.append(fds)
        kink_rows.append(tuple(kinks))
    fd = np.asarray(fd_rows, dtype=np.float64)
    diff = np.abs(fd - g_ref[None, :])
    kink = np.asarray(kink_rows, dtype=np.int64).astype(bool)  # a unit changed sign
    gmax = float(np.max(np.abs(g_ref)))
    denom = np.maximum(np.abs(fd), np.abs(g_ref)[None, :])
    elementwise = np.divide(diff, denom, out=np.zeros_like(diff), where=denom > 0)
    worst = diff.max(axis=1)
    return FdCurve(
        dtype=dtype,
        ns=tuple(ns),
        eps=tuple(1.0 / n for n in ns),
        loss=fmlp.loss(params, x, y),
        gradient=tuple(float(v) for v in g_ref),
        max_abs_diff=tuple(float(v) for v in worst),
        argmax=tuple(int(v) for v in diff.argmax(axis=1)),
        relative_error=tuple(float(v) / gmax if gmax > 0 else None for v in worst),
        max_elementwise_relative_error=tuple(float(v) for v in elementwise.max(axis=1)),
        any_kink=tuple(bool(np.any(k)) for k in kink),
        n_kinks=tuple(int(np.count_nonzero(k)) for k in kink),
        max_abs_diff_without_kinks=tuple(
            None if bool(np.all(k)) else float(np.max(d[~k]))
            for d, k in zip(diff, kink, strict=True)
        ),
        max_abs_diff_own_backward=tuple(float(v) for v in np.abs(fd - g_own[None, :]).max(axis=1)),
        backward_vs_reference=float(np.max(np.abs(g_own - g_ref))),
        fd=tuple(tuple(float(v) for v in r) for r in fd),
        abs_diff=tuple(tuple(float(v) for v in r) for r in diff),
        kink=tuple(tuple(bool(v) for v in r) for r in kink),
        kink_units=tuple(kink_rows),
    )


def third_derivatives(
    params64: fmlp.MLP,
    x64: FloatArray,
    y: IntArray,
    *,
    layer: int,
    p: int,
    h: float,
    elements: Elements | None = None,
) -> ThirdDerivatives:
    """L'''(theta_i) per element from the five-point stencil
    (L(+2h) - 2 L(+h) + 2 L(-h) - L(-2h)) / (2 h^3), in float64."""
    values, kinked = [], []
    for i in theta_elements(params64, layer, p, elements):
        e = unit_direction(params64, layer, i)
        l = {k: fmlp.loss(shifted(params64, e, k * h), x64, y) for k in (-2, -1, 1, 2)}
        values.append((l[2] - 2 * l[1] + 2 * l[-1] - l[-2]) / (2 * h**3))
        minus, plus = shifted(params64, e, -2 * h), shifted(params64, e, 2 * h)
        kinked.append(kink_units(params64, minus, plus, x64) > 0)
    return ThirdDerivatives(h=h, values=tuple(values), kink=tuple(kinked))


def loss_noise(
    params64: fmlp.MLP,
    x64: FloatArray,
    y: IntArray,
    *,
    layer: int,
    p: int,
    dtype: DTypeName,
    width: float,
    width_max: float,
    points: int,
    elements: Elements | None = None,
) -> LossNoise:
    """The round-off noise sigma_L of the loss computed in ``dtype``.

    For each theta_i that reaches the loss: L at theta_i + t for ``points`` t evenly
    spaced in [-w_i, w_i], and the scatter (standard deviation, 5 degrees of freedom
    removed) around a degree-4 polynomial fitted in float64; pooled (root mean square)
    over the elements whose window crosses no kink and whose loss varies. The window is
    wide enough for the loss to move by about 1000 times its resolution,
    w_i = 1000 u max(1, |L|) / |g_i|, kept within [width, width_max]. When no element
    gives a measurement (the loss is constant on every window: it moves by less than
    one rounding step), sigma_L falls back to the loss's resolution u max(1, |L|): a
    log-sum-exp near its minimum computes log(1 + small) and errs by about u, not u |L|.
    """
    params = as_dtype(params64, dtype)
    x = x64.astype(dtype)
    idx = theta_elements(params, layer, p, elements)
    u = float(np.finfo(np.dtype(dtype)).eps)
    resolution = u * max(1.0, abs(fmlp.loss(params, x, y)))
    g = theta_gradient(as_dtype(params, "float64"), x.astype(np.float64), y, layer, p, idx)
    per_element: list[float | None] = []
    windows: list[float | None] = []
    for k, i in enumerate(idx):
        if g[k] == 0:
            per_element.append(None)  # theta_i does not reach the loss: no signal, no noise
            windows.append(None)
            continue
        w = min(max(width, 1e3 * resolution / abs(float(g[k]))), width_max)
        windows.append(w)
        e = unit_direction(params, layer, i)
        if kink_units(params, shifted(params, e, -w), shifted(params, e, w), x):
            per_element.append(None)
            continue
        ts = np.linspace(-w, w, points)
        ls = np.asarray([fmlp.loss(shifted(params, e, float(t)), x, y) for t in ts])
        if np.all(ls == ls[0]):
            per_element.append(None)
            continue
        coef = np.polynomial.polynomial.polyfit(ts / w, ls, 4)
        resid = ls - np.polynomial.polynomial.polyval(ts / w, coef)
        per_element.append(float(np.sqrt(np.sum(resid**2) / (len(ts) - 5))))
    used = [v for v in per_element if v is not None]
    return LossNoise(
        dtype=dtype,
        machine_eps=u,
        loss_noise=float(np.sqrt(np.mean(np.square(used)))) if used else resolution,
        source="measured" if used else "resolution",
        loss_resolution=resolution,
        per_element=tuple(per_element),
        window_per_element=tuple(windows),
    )
