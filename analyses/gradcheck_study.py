"""Finite-difference gradients: central differences of the loss on one training sample
against the hand-written backward gradient, for eps = 1/N and every N in
{k 10^i : i = 0..5, k in {1, 5}}.

    python -m analyses.gradcheck_study [--out results] [--quick] [--quiet] [--dataset mnist]
        [--sample auto|INDEX] [--p 10] [--model PATH] [--train-default] ...

theta is the first p = min(10, m) elements of the second layer's weight matrix
(``params.layers[1].w``, shape (h1, h2)) flattened in row-major order, so theta_i is
``w[i // h2, i % h2]``. Each perturbation is a new parameter tree built with
``fmlp.tree_map`` (``params + eps * e_i``); no array is modified. The headline curve is
in float64; the same curve in float32 shows where round-off takes over.

The model: by default the best model of the hyper-parameter search
(``<out>/hparam_search/best_params.npz``); ``--model PATH`` names another checkpoint; if
neither exists (or with ``--train-default``) a named default is trained and kept as a
checkpoint (784-512-512-10 relu glorot, SGD lr 0.1, batch 64, 3 epochs; 1 epoch with
``--quick``). The summary says which one was used.

Beyond the assignment, an error model: FD_i - g_i ~ C_t eps^2 (truncation, C_t =
|L'''| / 6) plus about C_r / eps (round-off, C_r = sqrt(2) sigma_L, sigma_L the noise of
the computed loss, measured as the scatter of L around a smooth polynomial on a small
window), capped at max |g_i| (a difference that rounds to 0). C_t comes from a fit to
the float64 curve where round-off is negligible, or else from L''' estimated per element
with a five-point stencil (both recorded). The textbook round-off scale machine_eps * |L|
is recorded beside sigma_L: it underestimates the noise when |L| << 1, since a
log-sum-exp near its minimum errs by about machine_eps, not machine_eps * |L|. The two
terms cross at N* = (C_t / C_r)^(1/3). A perturbation that crosses a ReLU kink (a hidden
pre-activation has different signs at theta - eps and theta + eps) is detected and
marked per (N, i).

``<out>/gradcheck_study/summary.json`` (what the report reads):

- ``study``; ``settings``: sample_index, sample_choice (how it was chosen: given, or
  "auto", the first training sample from 0 on where dL/dtheta is not identically 0,
  which ReLU makes possible), sample_label, layer (0-based: 1 is the second
  layer), theta (a sentence), p, m, ns, eps, dtypes, headline_dtype, third_h,
  noise_width, noise_width_max, noise_points.
- ``model``: source ("hparam_search best", "checkpoint", "trained default" or
  "given"), path, sha256 (of its parameters), sizes, n_params, activation, init,
  dtype, and for a trained default its ``training`` settings, metrics and wall time.
- ``theta``: ``index`` (row, column) pairs, ``value``, ``gradient`` (float64 backward),
  ``input_activation`` (the activation that multiplies these weights; 0 would make
  every gradient and difference exactly 0), ``loss`` at theta.
- ``curves``: per dtype, lists over N: ``N``, ``eps``, ``max_abs_diff`` (max_i
  |FD_i - g_i|, g the float64 backward gradient at the same point), ``argmax``,
  ``relative_error`` (max_abs_diff / max_i |g_i|), ``max_elementwise_relative_error``
  (max_i |FD_i - g_i| / max(|FD_i|, |g_i|), 0 where both are 0), ``any_kink``,
  ``n_kinks``, ``max_abs_diff_without_kinks`` (null when every element crossed one),
  ``max_abs_diff_own_backward`` (against the backward pass run in that dtype); and lists
  over N of lists over i: ``fd``, ``abs_diff``, ``kink``, ``kink_units``; plus ``loss``
  and ``backward_vs_reference`` (max |g_dtype - g_float64|).
- ``error_model``: ``third_derivative`` (per i), ``third_derivative_kink`` (per i: a
  kink within +-2h, estimate unreliable), ``h``, ``truncation_coef_stencil`` (max_i
  |L'''_i| / 6 over elements without kinks), ``truncation_coef_fit``,
  ``truncation_coef`` (the one used) and ``truncation_coef_source``; ``by_dtype``: per
  dtype ``machine_eps``, ``loss_noise`` (sigma_L), ``loss_noise_source`` ("measured",
  or the resolution fallback), ``loss_resolution`` (machine_eps max(1, |L|)),
  ``loss_noise_per_element``, ``noise_window_per_element``, ``roundoff_coef`` C_r =
  sqrt(2) sigma_L (the expected max over p elements of |noise_+ - noise_-| / 2, about
  two standard deviations), ``roundoff_coef_textbook`` machine_eps * |L|,
  ``saturation`` (max_i |g_i|), ``crossing_eps`` / ``crossing_N`` where
  C_t eps^2 = C_r / eps, ``optimal_N`` (the model's minimum), ``model``
  (min(C_t eps^2 + C_r / eps, saturation) over the ns).
- ``figures``, ``wall_seconds``, ``machine``.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, cast

import attrs
import numpy as np

import fmlp
from analyses.common import (
    ResultStore,
    StudyData,
    Timer,
    load_study_data,
    machine_info,
    progress,
    read_json,
    save_figure,
    study_parser,
    synthetic_data,
    use_agg,
)
from analyses.init_study import data_digest
from fmlp import checkpoint
from fmlp.params import check_sizes
from fmlp.types import (
    ACTIVATION_NAMES,
    ActivationName,
    FloatArray,
    IntArray,
    SchemeName,
    check_activation,
    check_dtype,
    is_int,
)

STUDY: Final = "gradcheck_study"
ALL_N: Final[tuple[int, ...]] = tuple(sorted(k * 10**i for i in range(6) for k in (1, 5)))
SEARCH_BEST: Final = Path("hparam_search") / "best_params.npz"
DTYPE_COLORS: Final = {"float64": "tab:blue", "float32": "tab:orange"}


@attrs.frozen
class DefaultModel:
    """The named model trained when no checkpoint is given or found."""

    sizes: tuple[int, ...] = (784, 512, 512, 10)
    activation: ActivationName = "relu"
    scheme: SchemeName = "glorot"
    lr: float = 0.1
    batch_size: int = 64
    epochs: int = 3
    seed: int = 0
    dtype: str = "float64"

    def __attrs_post_init__(self) -> None:
        check_sizes(self.sizes)
        check_activation(self.activation)
        check_dtype(self.dtype)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        for name in ("batch_size", "epochs"):
            if not is_int(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")

    @property
    def name(self) -> str:
        return (
            f"{'-'.join(map(str, self.sizes))} {self.activation} {self.scheme}, SGD lr {self.lr}, "
            f"batch {self.batch_size}, {self.epochs} epochs, seed {self.seed}, {self.dtype}"
        )


@attrs.frozen
class GradcheckOptions:
    """What the study computes, besides the model and the data."""

    sample_index: int | Literal["auto"] = "auto"
    layer: int = 1
    p: int = 10
    ns: tuple[int, ...] = ALL_N
    dtypes: tuple[str, ...] = ("float64", "float32")
    third_h: float = 1e-2
    noise_width: float = 1e-3
    noise_width_max: float = 0.25
    noise_points: int = 33
    model_path: Path | None = None
    use_search_best: bool = True
    default_model: DefaultModel = DefaultModel()

    def __attrs_post_init__(self) -> None:
        if self.sample_index != "auto" and (not is_int(self.sample_index) or self.sample_index < 0):
            raise ValueError(
                f"sample_index must be a non-negative integer or 'auto', got {self.sample_index!r}"
            )
        if not is_int(self.layer) or self.layer < 0:
            raise ValueError(f"layer must be a non-negative integer, got {self.layer!r}")
        if not is_int(self.p) or self.p <= 0:
            raise ValueError(f"p must be a positive integer, got {self.p!r}")
        if not self.ns or any(not is_int(n) or n <= 0 for n in self.ns):
            raise ValueError(f"ns must be positive integers (eps = 1/N), got {self.ns}")
        if not self.dtypes:
            raise ValueError("dtypes is empty: name float64 and/or float32")
        for dt in self.dtypes:
            check_dtype(dt)
        for name in ("third_h", "noise_width", "noise_width_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not is_int(self.noise_points) or self.noise_points < 9:
            raise ValueError(f"noise_points must be an integer >= 9, got {self.noise_points!r}")


DEFAULTS: Final = GradcheckOptions()


# -------------------------------------------------------------------- identities


def params_digest(params: fmlp.MLP) -> str:
    """sha256 of the parameters (dtype, shapes and bytes of every leaf) and activation."""
    h = hashlib.sha256(params.activation.encode())
    for leaf in fmlp.tree_leaves(params):
        h.update(f"{leaf.dtype}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


def describe(params: fmlp.MLP) -> dict[str, Any]:
    return {
        "sizes": list(params.sizes),
        "n_params": fmlp.n_params(params),
        "activation": params.activation,
        "dtype": str(params.dtype),
        "sha256": params_digest(params),
    }


# ------------------------------------------------------------------------- model


def train_default(
    data: StudyData, out: Path, model: DefaultModel, *, quiet: bool = True
) -> tuple[fmlp.MLP, dict[str, Any]]:
    """The default model, trained once and kept as a checkpoint beside its run record."""
    store = ResultStore(Path(out), STUDY)
    config = {
        "study": STUDY,
        "kind": "default_model",
        "version": 1,
        **attrs.asdict(model),
        "sizes": list(model.sizes),
        "dataset": data.name,
        "dataset_sizes": data.sizes,
        "data_digest": data_digest(data),
    }
    ckpt = store.folder / "models" / f"{store.path(config).stem}.npz"
    record = store.get(config)
    if record is not None and ckpt.exists():
        try:
            return checkpoint.load(ckpt), {**record, "checkpoint": str(ckpt), "computed_now": False}
        except ValueError:
            pass  # a corrupt checkpoint: train again
    dtype = check_dtype(model.dtype)
    d = data.astype(dtype)
    params0 = fmlp.init(
        model.sizes, scheme=model.scheme, activation=model.activation, seed=model.seed, dtype=dtype
    )
    bar = iter(
        progress(range(model.epochs), total=model.epochs, desc="default model epochs", quiet=quiet)
    )
    next(bar, None)

    def tick(epoch: int, metrics: fmlp.EpochMetrics) -> None:
        next(bar, None)

    with Timer() as timer:
        state, metrics = fmlp.fit(
            params0,
            d.x_train,
            d.y_train,
            epochs=model.epochs,
            batch_size=model.batch_size,
            lr=model.lr,
            seed=model.seed,
            validation=(d.x_valid, d.y_valid),
            callback=tick,
        )
    params = state.params
    checkpoint.save(ckpt, params)  # first the checkpoint, then the record that points at it
    result = {
        "name": model.name,
        "training": {**attrs.asdict(model), "sizes": list(model.sizes)},
        "wall_seconds": timer.seconds,
        "train_loss": metrics.train_loss.tolist(),
        "val_accuracy": metrics.val_accuracy.tolist(),
        "sha256": params_digest(params),
    }
    store.put(config, result)
    return params, {**result, "checkpoint": str(ckpt), "computed_now": True}


def resolve_model(
    data: StudyData,
    out: Path,
    opts: GradcheckOptions,
    *,
    params: fmlp.MLP | None = None,
    quiet: bool = True,
) -> tuple[fmlp.MLP, dict[str, Any]]:
    """The model to check and a record of where it came from: ``params`` if given, else
    ``opts.model_path``, else the search's best model if present, else the default."""
    if params is not None:
        return params, {"source": "given", "path": None, **describe(params)}
    if opts.model_path is not None:
        if not Path(opts.model_path).exists():
            raise FileNotFoundError(
                f"no checkpoint at {opts.model_path}: pass an existing .npz written by fmlp.checkpoint.save"
            )
        loaded = checkpoint.load(opts.model_path)
        return loaded, {"source": "checkpoint", "path": str(opts.model_path), **describe(loaded)}
    best = Path(out) / SEARCH_BEST
    if opts.use_search_best and best.exists():
        loaded = checkpoint.load(best)
        record: dict[str, Any] = {
            "source": "hparam_search best",
            "path": str(best),
            **describe(loaded),
        }
        summary_path = best.parent / "summary.json"
        if summary_path.exists():
            search = read_json(summary_path)
            if isinstance(search, dict) and isinstance(search.get("best"), dict):
                record["hparam_search_best"] = search["best"]
        return loaded, record
    trained, info = train_default(data, out, opts.default_model, quiet=quiet)
    return trained, {
        "source": "trained default",
        "path": info["checkpoint"],
        **describe(trained),
        "init": opts.default_model.scheme,
        "name": info["name"],
        "training": info["training"],
        "train_loss": info["train_loss"],
        "val_accuracy": info["val_accuracy"],
        "training_wall_seconds": info["wall_seconds"],
        "trained_now": info["computed_now"],
    }


# ------------------------------------------------------------- finite differences


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
    return int(sum(np.count_nonzero((a != b) | (a != c)) for a, b, c in zip(sm, sp, s0)))


def theta_info(params: fmlp.MLP, layer: int, p: int) -> tuple[int, list[list[int]]]:
    """p_eff = min(p, m) and the (row, column) of each theta_i."""
    if layer >= len(params.layers):
        raise ValueError(
            f"layer {layer} does not exist: the model has {len(params.layers)} layers (0-based)"
        )
    w = params.layers[layer].w
    p_eff = min(p, int(w.size))
    return p_eff, [[int(i // w.shape[1]), int(i % w.shape[1])] for i in range(p_eff)]


def sample(data: StudyData, index: int) -> tuple[FloatArray, IntArray]:
    if not 0 <= index < len(data.y_train):
        raise ValueError(
            f"sample index {index} is out of range: the training set has {len(data.y_train)} samples"
        )
    return data.x_train[index : index + 1], data.y_train[index : index + 1]


def theta_gradient(
    params64: fmlp.MLP, data: StudyData, index: int, layer: int, p: int
) -> FloatArray:
    """dL/dtheta on training sample ``index`` (float64 backward)."""
    x, y = sample(data, index)
    g: FloatArray = (
        fmlp.grad(params64, np.asarray(x, dtype=np.float64), y)[1].layers[layer].w.ravel()[:p]
    )
    return g


def choose_sample(
    params64: fmlp.MLP, data: StudyData, requested: int | Literal["auto"], layer: int, p: int
) -> tuple[int, str]:
    """The sample to use and how it was chosen. ``"auto"``: the first training sample,
    from index 0 on, where dL/dtheta is not identically 0. With ReLU, theta_i = w[r, c]
    reaches the loss only when hidden unit r (its input) and unit c (its output) are both
    active on the sample; otherwise every gradient and every difference is exactly 0
    and the check says nothing."""
    if requested != "auto":
        sample(data, requested)
        return requested, "given"
    for index in range(min(len(data.y_train), 10_000)):
        if np.any(theta_gradient(params64, data, index, layer, p) != 0):
            skipped = (
                ""
                if index == 0
                else "; sample 0 gives dL/dtheta = 0 exactly"
                if index == 1
                else f"; samples 0..{index - 1} give dL/dtheta = 0 exactly"
            )
            return (
                index,
                f"auto: the first training sample where dL/dtheta is not identically 0{skipped}",
            )
    raise ValueError(
        "dL/dtheta is exactly 0 on the first 10,000 training samples (theta's units are dead): "
        "check another layer or model"
    )


def fd_curve(
    params64: fmlp.MLP,
    x64: FloatArray,
    y: IntArray,
    opts: GradcheckOptions,
    dtype: str,
    *,
    quiet: bool = True,
) -> dict[str, Any]:
    """The central differences of every theta_i for every N, in ``dtype``, against the
    float64 backward gradient at the same (rounded) point."""
    dt = check_dtype(dtype)
    params = fmlp.tree_map(lambda a: a.astype(dt), params64)
    point64 = fmlp.tree_map(lambda a: a.astype(np.float64), params)  # the same point, exactly
    x = x64.astype(dt)
    p, _ = theta_info(params, opts.layer, opts.p)
    g_ref = fmlp.grad(point64, x.astype(np.float64), y)[1].layers[opts.layer].w.ravel()[:p]
    g_own = fmlp.grad(params, x, y)[1].layers[opts.layer].w.ravel()[:p].astype(np.float64)
    directions = [unit_direction(params, opts.layer, i) for i in range(p)]
    fd_rows: list[list[float]] = []
    kink_rows: list[list[int]] = []
    for n in progress(opts.ns, total=len(opts.ns), desc=f"N ({dtype})", quiet=quiet):
        eps = 1.0 / n
        fds, kinks = [], []
        for e in directions:
            plus, minus = shifted(params, e, eps), shifted(params, e, -eps)
            fds.append((fmlp.loss(plus, x, y) - fmlp.loss(minus, x, y)) / (2 * eps))
            kinks.append(kink_units(params, minus, plus, x))
        fd_rows.append(fds)
        kink_rows.append(kinks)
    fd = np.asarray(fd_rows, dtype=np.float64)
    diff = np.abs(fd - g_ref[None, :])
    kink = np.asarray(kink_rows) > 0
    gmax = float(np.max(np.abs(g_ref)))
    denom = np.maximum(np.abs(fd), np.abs(g_ref)[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        elementwise = np.where(denom > 0, diff / np.where(denom > 0, denom, 1.0), 0.0)
    smooth = np.where(kink, np.nan, diff)
    return {
        "dtype": dtype,
        "N": list(opts.ns),
        "eps": [1.0 / n for n in opts.ns],
        "loss": fmlp.loss(params, x, y),
        "max_abs_diff": diff.max(axis=1).tolist(),
        "argmax": diff.argmax(axis=1).tolist(),
        "relative_error": (diff.max(axis=1) / gmax).tolist()
        if gmax > 0
        else [math.nan] * len(opts.ns),
        "max_elementwise_relative_error": elementwise.max(axis=1).tolist(),
        "any_kink": kink.any(axis=1).tolist(),
        "n_kinks": kink.sum(axis=1).tolist(),
        "max_abs_diff_without_kinks": [
            None if bool(np.all(kink[j])) else float(np.nanmax(smooth[j]))
            for j in range(len(opts.ns))
        ],
        "max_abs_diff_own_backward": np.abs(fd - g_own[None, :]).max(axis=1).tolist(),
        "backward_vs_reference": float(np.max(np.abs(g_own - g_ref))),
        "gradient": g_ref.tolist(),
        "fd": fd.tolist(),
        "abs_diff": diff.tolist(),
        "kink": kink.tolist(),
        "kink_units": kink_rows,
    }


def third_derivatives(
    params64: fmlp.MLP, x: FloatArray, y: IntArray, opts: GradcheckOptions
) -> dict[str, Any]:
    """L'''(theta_i) per element from the five-point stencil
    (L(+2h) - 2 L(+h) + 2 L(-h) - L(-2h)) / (2 h^3), in float64, and whether a ReLU kink
    lies within +-2h (then the estimate does not describe the smooth part)."""
    p, _ = theta_info(params64, opts.layer, opts.p)
    h = opts.third_h
    values, kinked = [], []
    for i in range(p):
        e = unit_direction(params64, opts.layer, i)
        l = {k: fmlp.loss(shifted(params64, e, k * h), x, y) for k in (-2, -1, 1, 2)}
        values.append((l[2] - 2 * l[1] + 2 * l[-1] - l[-2]) / (2 * h**3))
        kinked.append(
            kink_units(params64, shifted(params64, e, -2 * h), shifted(params64, e, 2 * h), x) > 0
        )
    return {"third_derivative": values, "third_derivative_kink": kinked, "h": h}


def loss_noise(
    params64: fmlp.MLP, x64: FloatArray, y: IntArray, opts: GradcheckOptions, dtype: str
) -> dict[str, Any]:
    """The round-off noise sigma_L of the loss computed in ``dtype``.

    For each theta_i that reaches the loss: L at theta_i + t for ``noise_points`` t evenly
    spaced in [-w_i, w_i], and the scatter (standard deviation, 5 degrees of freedom
    removed) around a degree-4 polynomial fitted in float64; pooled (root mean square)
    over the elements whose window crosses no kink and whose loss varies. The window is
    wide enough for the loss to move by about 1000 times its resolution,
    w_i = 1000 u max(1, |L|) / |g_i|, kept within [noise_width, noise_width_max]. When no
    element gives a measurement (the loss is constant on every window: it moves by less
    than one rounding step), sigma_L falls back to the loss's resolution u max(1, |L|):
    a log-sum-exp near its minimum computes log(1 + small) and errs by about u, not u |L|.
    """
    dt = check_dtype(dtype)
    params = fmlp.tree_map(lambda a: a.astype(dt), params64)
    x = x64.astype(dt)
    p, _ = theta_info(params, opts.layer, opts.p)
    u = float(np.finfo(dt).eps)
    resolution = u * max(1.0, abs(fmlp.loss(params, x, y)))
    point64 = fmlp.tree_map(lambda a: a.astype(np.float64), params)
    g = fmlp.grad(point64, x.astype(np.float64), y)[1].layers[opts.layer].w.ravel()[:p]
    per_element: list[float | None] = []
    windows: list[float | None] = []
    for i in range(p):
        if g[i] == 0:
            per_element.append(None)  # theta_i does not reach the loss: no signal, no noise
            windows.append(None)
            continue
        w = min(max(opts.noise_width, 1e3 * resolution / abs(float(g[i]))), opts.noise_width_max)
        windows.append(w)
        e = unit_direction(params, opts.layer, i)
        if kink_units(params, shifted(params, e, -w), shifted(params, e, w), x):
            per_element.append(None)
            continue
        ts = np.linspace(-w, w, opts.noise_points)
        ls = np.asarray([fmlp.loss(shifted(params, e, float(t)), x, y) for t in ts])
        if np.all(ls == ls[0]):
            per_element.append(None)
            continue
        coef = np.polynomial.polynomial.polyfit(ts / w, ls, 4)
        resid = ls - np.polynomial.polynomial.polyval(ts / w, coef)
        per_element.append(float(np.sqrt(np.sum(resid**2) / (len(ts) - 5))))
    used = [v for v in per_element if v is not None]
    return {
        "loss_noise": float(np.sqrt(np.mean(np.square(used)))) if used else resolution,
        "loss_noise_source": "measured" if used else "resolution u max(1, |L|) (not measurable)",
        "loss_resolution": resolution,
        "loss_noise_per_element": per_element,
        "noise_window_per_element": windows,
    }


def fit_truncation(curve: Mapping[str, Any], roundoff_coef: float) -> float:
    """C_t fitted to a measured curve: the geometric mean of max_diff * N^2 over the N
    without kink crossings where the round-off term C_r N is under a tenth of the
    measurement; NaN when there is no such N."""
    vals = [
        m * n**2
        for n, m, kink in zip(curve["N"], curve["max_abs_diff"], curve["any_kink"])
        if not kink and m > 0 and math.isfinite(m) and roundoff_coef * n < 0.1 * m
    ]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan


def truncation(
    third: Mapping[str, Any], curve64: Mapping[str, Any], roundoff64: float
) -> dict[str, Any]:
    """The truncation coefficient C_t (FD_i - g_i ~ C_t eps^2): from the stencil,
    max_i |L'''_i| / 6 over elements without kinks, and fitted to the float64 curve;
    the fit is used when there is one (the stencil's own round-off, about 3 sigma_L / h^3,
    can swamp a tiny L''' of a confident model)."""
    l3 = np.asarray(third["third_derivative"], dtype=np.float64)
    ok = ~np.asarray(third["third_derivative_kink"], dtype=bool)
    pool = l3[ok] if ok.any() else l3
    stencil = float(np.max(np.abs(pool))) / 6.0
    fitted = fit_truncation(curve64, roundoff64)
    use_fit = math.isfinite(fitted)
    return {
        "truncation_coef_stencil": stencil,
        "truncation_coef_fit": fitted,
        "truncation_coef": fitted if use_fit else stencil,
        "truncation_coef_source": "fit to the float64 curve" if use_fit else "stencil",
    }


def error_model(
    c_t: float, noise: Mapping[str, Any], curve: Mapping[str, Any], dtype: str
) -> dict[str, Any]:
    """min(C_t eps^2 + C_r / eps, max_i |g_i|) with C_r = sqrt(2) sigma_L, the N where
    the two terms cross and the N that minimizes their sum. The cap: once 2 eps |g_i| is
    far below the loss's rounding step, L(theta + eps) and L(theta - eps) round to the same
    number, the difference reads 0 and errs by |g_i|."""
    u = float(np.finfo(np.dtype(dtype)).eps)
    c_r = math.sqrt(2.0) * float(noise["loss_noise"])
    cap = float(np.max(np.abs(curve["gradient"])))
    crossing = (c_r / c_t) ** (1 / 3) if c_t > 0 and c_r > 0 else math.nan
    optimal = (c_r / (2 * c_t)) ** (1 / 3) if c_t > 0 and c_r > 0 else math.nan
    return {
        "machine_eps": u,
        **noise,
        "roundoff_coef": c_r,
        "roundoff_coef_textbook": u * abs(float(curve["loss"])),
        "saturation": cap,
        "crossing_eps": crossing,
        "crossing_N": 1.0 / crossing if crossing > 0 else math.nan,
        "optimal_N": 1.0 / optimal if optimal > 0 else math.nan,
        "model": [min(c_t / n**2 + c_r * n, cap) for n in curve["N"]],
    }


# ------------------------------------------------------------------------ figure


def plot(summary: Mapping[str, Any], folder: Path) -> list[Path]:
    """Left: max_i |FD_i - g_i| against N (log-log) per dtype with the error model and
    kink crossings; right: every element's |FD_i - g_i|, kink crossings in red."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    model = summary["error_model"]["by_dtype"]
    for dtype, curve in summary["curves"].items():
        color = DTYPE_COLORS.get(dtype, "k")
        ns = np.asarray(curve["N"], dtype=np.float64)
        mx = np.asarray(curve["max_abs_diff"], dtype=np.float64)
        pos = np.isfinite(mx) & (mx > 0)
        ax.plot(ns[pos], mx[pos], "o-", color=color, label=f"{dtype}: max |FD - g|", markersize=5)
        zero = np.isfinite(mx) & (mx <= 0)
        if zero.any():
            ax.plot(
                ns[zero],
                np.full(int(zero.sum()), 0.02),
                "v",
                color=color,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
            )
        bad = ~np.isfinite(mx)
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
        kinked = np.asarray(curve["any_kink"], dtype=bool) & pos
        if kinked.any():
            ax.plot(ns[kinked], mx[kinked], "o", mfc="none", mec="red", markersize=11, mew=1.5)
        m = model[dtype]
        eps = 1.0 / ns
        ax.plot(
            ns,
            np.asarray(m["model"]),
            "-",
            color=color,
            alpha=0.45,
            lw=3,
            label=f"{dtype} model, crossing N* = {m['crossing_N']:.3g}",
        )
        ax.plot(ns, m["roundoff_coef"] / eps, "--", color=color, lw=1)
        if math.isfinite(m["crossing_N"]):
            ax.axvline(m["crossing_N"], color=color, ls=":", lw=1)
        d = np.asarray(curve["abs_diff"], dtype=np.float64)
        k = np.asarray(curve["kink"], dtype=bool)
        reps = np.repeat(ns[:, None], d.shape[1], axis=1) * (
            1.08 if dtype == "float32" else 1 / 1.08
        )
        ok = np.isfinite(d) & (d > 0)
        if np.any(ok & ~k):
            ax2.plot(reps[ok & ~k], d[ok & ~k], ".", color=color, alpha=0.7)
        if np.any(ok & k):
            ax2.plot(reps[ok & k], d[ok & k], "x", color="red", mew=1.2)
    ns_all = np.asarray(next(iter(summary["curves"].values()))["N"], dtype=np.float64)
    c_t = summary["error_model"]["truncation_coef"]
    ax.plot(ns_all, c_t / ns_all**2, "k:", lw=1)
    for a in (ax, ax2):
        ys = np.concatenate(
            [
                np.asarray(line.get_ydata(), dtype=np.float64)
                for line in a.get_lines()
                if line.get_transform() == a.transData
            ]
            or [np.zeros(0)]
        )
        if not np.any(np.isfinite(ys) & (ys > 0)):
            a.set_ylim(
                1e-17, 1.0
            )  # every difference is exactly 0: a log axis needs explicit limits
        a.set_xlim(float(ns_all.min()) / 2, float(ns_all.max()) * 2)
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("N  (eps = 1/N)")
        a.grid(True, which="both", alpha=0.3)
    ax.set_ylabel("max_i |FD_i - dL/dtheta_i|")
    s = summary["settings"]
    ax.set_title(
        f"theta = layers[{s['layer']}].w.ravel()[:{s['p']}], training sample {s['sample_index']}",
        fontsize=9,
    )
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], ls=":", color="k"),
        Line2D([], [], ls="--", color="gray"),
        Line2D([], [], marker="o", mfc="none", mec="red", ls="", markersize=10),
        Line2D([], [], marker="v", color="k", ls=""),
    ]
    labels += [
        f"truncation C_t eps^2 ({summary['error_model']['truncation_coef_source']})",
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
    paths = save_figure(fig, folder, "gradcheck")
    plt.close(fig)
    return paths


# -------------------------------------------------------------------------- study


def run(
    data: StudyData,
    out: Path,
    opts: GradcheckOptions = DEFAULTS,
    *,
    params: fmlp.MLP | None = None,
    quiet: bool = True,
    figures: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the study on ``data``'s training sample ``opts.sample_index``,
    write the summary and (unless ``figures=False``) the figure into
    ``<out>/gradcheck_study/``, and return the summary."""
    store = ResultStore(Path(out), STUDY)
    with Timer() as timer:
        model, model_record = resolve_model(data, out, opts, params=params, quiet=quiet)
        if model.sizes[0] != data.x_train.shape[1]:
            raise ValueError(
                f"the model takes {model.sizes[0]} inputs but the data has {data.x_train.shape[1]} features"
            )
        params64 = fmlp.tree_map(lambda a: a.astype(np.float64), model)
        p, index = theta_info(params64, opts.layer, opts.p)
        sample_index, sample_choice = choose_sample(
            params64, data, opts.sample_index, opts.layer, p
        )
        x, y = sample(data, sample_index)
        x64 = np.ascontiguousarray(x, dtype=np.float64)
        base = {
            "study": STUDY,
            "version": 1,
            "model": params_digest(params64),
            "dataset": data.name,
            "dataset_sizes": data.sizes,
            "data_digest": data_digest(data),
            "sample_index": sample_index,
            "layer": opts.layer,
            "p": p,
        }
        run_configs: list[dict[str, Any]] = [
            {**base, "kind": "third_derivative", "h": opts.third_h}
        ]
        third, _ = store.run(run_configs[0], lambda: third_derivatives(params64, x64, y, opts))
        curves: dict[str, Any] = {}
        noises: dict[str, Any] = {}
        for dtype in opts.dtypes:
            dt = str(np.dtype(dtype))
            fd_config = {**base, "kind": "fd", "dtype": dt, "ns": list(opts.ns)}
            curve, _ = store.run(
                fd_config, lambda: fd_curve(params64, x64, y, opts, dt, quiet=quiet)
            )
            noise_config = {
                **base,
                "kind": "loss_noise",
                "dtype": dt,
                "width": opts.noise_width,
                "width_max": opts.noise_width_max,
                "points": opts.noise_points,
            }
            noise, _ = store.run(noise_config, lambda: loss_noise(params64, x64, y, opts, dt))
            run_configs += [fd_config, noise_config]
            curves[dt] = curve
            noises[dt] = noise
        head = "float64" if "float64" in curves else next(iter(curves))
        trunc = truncation(third, curves[head], math.sqrt(2.0) * float(noises[head]["loss_noise"]))
        models = {
            dt: error_model(trunc["truncation_coef"], noises[dt], curves[dt], dt) for dt in curves
        }
        _, cache = fmlp.forward_with_cache(params64, x64)
        a_in = cache.activations[opts.layer][0]
        rows = sorted({r for r, _ in index})
    summary: dict[str, Any] = {
        "study": STUDY,
        "settings": {
            "sample_index": sample_index,
            "sample_choice": sample_choice,
            "sample_label": int(y[0]),
            "layer": opts.layer,
            "theta": (
                f"the first p = min({opts.p}, m) = {p} elements of params.layers[{opts.layer}].w "
                f"(the {'second' if opts.layer == 1 else f'layer-{opts.layer}'} layer's weight matrix, "
                f"shape {tuple(model.layers[opts.layer].w.shape)}) flattened in row-major order, m = "
                f"{model.layers[opts.layer].w.size}"
            ),
            "p": p,
            "m": int(model.layers[opts.layer].w.size),
            "ns": list(opts.ns),
            "eps": [1.0 / n for n in opts.ns],
            "dtypes": [str(np.dtype(d)) for d in opts.dtypes],
            "headline_dtype": "float64",
            "third_h": opts.third_h,
            "noise_width": opts.noise_width,
            "noise_width_max": opts.noise_width_max,
            "noise_points": opts.noise_points,
            "dataset": data.name,
            "dataset_sizes": data.sizes,
        },
        "model": model_record,
        "theta": {
            "index": index,
            "value": params64.layers[opts.layer].w.ravel()[:p].tolist(),
            "gradient": curves.get("float64", next(iter(curves.values())))["gradient"],
            "input_activation": {str(r): float(a_in[r]) for r in rows},
            "loss": fmlp.loss(params64, x64, y),
        },
        "curves": curves,
        "error_model": {**third, **trunc, "by_dtype": models},
    }
    written: list[Path] = []
    if figures:
        use_agg()
        written = plot(summary, store.folder)
    summary["figures"] = [f.name for f in written]
    summary["wall_seconds"] = timer.seconds
    # stable across resumed invocations: the stored runs' own compute times
    summary["runs_wall_seconds"] = sum(store.seconds(c) for c in run_configs)
    summary["machine"] = machine_info()
    store.write_summary(summary)
    return summary


def _sample_arg(text: str) -> int | Literal["auto"]:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--sample takes a sample index or 'auto', got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0] if __doc__ else "finite-difference study")
    parser.add_argument(
        "--sample",
        default="auto",
        help="training sample index, or 'auto' (default): the first sample from 0 on where dL/dtheta is not all 0",
    )
    parser.add_argument(
        "--p", type=int, default=DEFAULTS.p, help="number of theta elements (default 10)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a checkpoint (.npz from fmlp.checkpoint.save) to check",
    )
    parser.add_argument(
        "--train-default",
        action="store_true",
        help="ignore <out>/hparam_search/best_params.npz and use the named default model",
    )
    parser.add_argument(
        "--default-epochs",
        type=int,
        default=None,
        help="epochs of the default model (3; 1 with --quick)",
    )
    parser.add_argument("--default-activation", choices=ACTIVATION_NAMES, default="relu")
    parser.add_argument(
        "--dtypes", nargs="+", choices=("float64", "float32"), default=list(DEFAULTS.dtypes)
    )
    args = parser.parse_args(argv)
    try:
        default = DefaultModel(
            activation=cast(ActivationName, args.default_activation),
            epochs=args.default_epochs
            if args.default_epochs is not None
            else (1 if args.quick else 3),
        )
        opts = GradcheckOptions(
            sample_index=_sample_arg(args.sample),
            p=args.p,
            dtypes=tuple(args.dtypes),
            model_path=args.model,
            use_search_best=not args.train_default,
            default_model=default,
        )
        if args.dataset == "synthetic":
            data = synthetic_data()
        else:
            data = load_study_data(args.dataset, quick=args.quick)
        summary = run(data, args.out, opts, quiet=args.quiet)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"gradcheck_study: {exc}", file=sys.stderr)
        return 2
    print(f"model: {summary['model']['source']} ({summary['model'].get('path')})")
    for dtype, curve in summary["curves"].items():
        em = summary["error_model"]["by_dtype"][dtype]
        print(f"{dtype}: crossing N* = {em['crossing_N']:.3g}")
        for n, mx, rel, kink in zip(
            curve["N"], curve["max_abs_diff"], curve["relative_error"], curve["n_kinks"]
        ):
            print(
                f"  N = {n:>6}: max |FD - g| = {mx:.3e}, relative {rel:.3e}, kink crossings {kink}"
            )
    print(f"gradcheck_study: {summary['wall_seconds']:.1f} s; results in {Path(args.out) / STUDY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
