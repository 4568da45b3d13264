"""The finite-difference study's summary: what the report reads."""

from __future__ import annotations

from typing import ClassVar, Final

import attrs

from analyses.datasets import DataSpec, DTypeName, SplitSizes
from analyses.machine import MachineInfo
from analyses.mlp import MlpConfig
from analyses.pipeline.records import JsonRecord
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.gradcheck.errormodel import (
    DtypeErrorModel,
    Optimum,
    Truncation,
    error_model,
    optimum,
    truncation,
)
from analyses.studies.gradcheck.finite import ChosenSample, FdCurve, LossNoise, ThirdDerivatives
from analyses.studies.gradcheck.options import GradcheckOptions
from analyses.studies.gradcheck.runs import SampleChoice

FIGURE: Final = "gradcheck"
WORST_FIGURE: Final = "gradcheck_worst"


@attrs.frozen
class CheckedModel:
    """The model whose gradient is checked: the search's choice, by its parameters file
    (relative to the results folder) and sha256, its configuration and accuracies."""

    params_file: str
    params_sha256: str
    config: MlpConfig
    n_params: int
    val_accuracy: float | None
    test_accuracy: float


@attrs.frozen
class GradcheckSettings:
    """What the study measured and how (the report's settings).

    theta: a sentence; theta_index: (row, column) of each theta_i; theta_value: its
    float64 value. headline_dtype: the precision of the headline curve. dead: None, or
    why theta is not the first p elements (they never reach the loss on the samples
    looked at); elements: then theta's flat indices.
    """

    layer: int
    p: int
    m: int
    w_shape: tuple[int, int]
    theta: str
    theta_index: tuple[tuple[int, int], ...]
    theta_value: tuple[float, ...]
    ns: tuple[int, ...]
    eps: tuple[float, ...]
    dtypes: tuple[DTypeName, ...]
    headline_dtype: DTypeName
    third_h: float
    noise_width: float
    noise_width_max: float
    noise_points: int
    dataset: str
    dataset_sizes: SplitSizes
    inputs: str
    dead: str | None = None
    elements: tuple[int, ...] | None = None


@attrs.frozen
class SampleResult:
    """Everything measured on one sample: the differences per dtype (in the settings'
    order), the third derivatives, the loss noise per dtype, the error model, and per
    dtype the measured best N against the textbook's prediction."""

    sample: ChosenSample
    curves: tuple[FdCurve, ...]
    third: ThirdDerivatives
    noise: tuple[LossNoise, ...]
    truncation: Truncation
    error_models: tuple[DtypeErrorModel, ...]
    optima: tuple[Optimum, ...]

    def curve(self, dtype: str) -> FdCurve | None:
        return next((c for c in self.curves if c.dtype == dtype), None)

    def error_model(self, dtype: str) -> DtypeErrorModel | None:
        return next((m for m in self.error_models if m.dtype == dtype), None)

    def optimum(self, dtype: str) -> Optimum | None:
        return next((o for o in self.optima if o.dtype == dtype), None)


@attrs.frozen
class GradcheckSummary(JsonRecord):
    """The study's results: settings, the model, the two samples' measurements (first:
    the assignment's sample; second: the sample of largest loss where dL/dtheta is not
    identically 0), the sample of largest loss of all (max_loss_index, max_loss), the
    figure files written beside it, and the machine. No wall times: the same results
    give the same summary (the pipeline's log keeps the timings)."""

    SCHEMA: ClassVar[int] = 3

    settings: GradcheckSettings
    model: CheckedModel
    first: SampleResult
    second: SampleResult
    max_loss_index: int
    max_loss: float
    figures: tuple[str, ...]
    machine: MachineInfo

    @property
    def headline(self) -> FdCurve:
        curve = self.first.curve(self.settings.headline_dtype)
        assert curve is not None  # the plan records every dtype of the settings
        return curve


def theta_sentence(
    layer: int,
    p: int,
    requested: int,
    w_shape: tuple[int, int],
    elements: tuple[int, ...] | None = None,
) -> str:
    which = "second" if layer == 1 else f"layer-{layer}"
    m = w_shape[0] * w_shape[1]
    matrix = f"params.layers[{layer}].w (the {which} layer's weight matrix, shape {w_shape})"
    if elements is not None:
        return (
            f"theta is the first p = {p} elements of {matrix} whose gradient is not zero on "
            f"the training samples looked at, flattened in row-major order: elements "
            f"{', '.join(map(str, elements))} of m = {m}"
        )
    return (
        f"theta is the first p = min({requested}, m) = {p} elements of {matrix} flattened in "
        f"row-major order, m = {m}"
    )


def settings_of(
    data: DataSpec, options: GradcheckOptions, choice: SampleChoice
) -> GradcheckSettings:
    p = len(choice.theta_index)
    return GradcheckSettings(
        layer=options.layer,
        p=p,
        m=choice.w_shape[0] * choice.w_shape[1],
        w_shape=choice.w_shape,
        theta=theta_sentence(options.layer, p, options.p, choice.w_shape, choice.elements),
        theta_index=choice.theta_index,
        theta_value=choice.theta_value,
        ns=options.ns,
        eps=tuple(1.0 / n for n in options.ns),
        dtypes=options.dtypes,
        headline_dtype=options.headline_dtype,
        third_h=options.third_h,
        noise_width=options.noise_width,
        noise_width_max=options.noise_width_max,
        noise_points=options.noise_points,
        dataset=data.label,
        dataset_sizes=choice.dataset_sizes,
        inputs=(
            "the sample's pixels as stored (float32 values), so both precisions see the same "
            "input exactly"
        ),
        dead=choice.dead,
        elements=choice.elements,
    )


def checked_model(chosen: ChosenMlp) -> CheckedModel:
    return CheckedModel(
        params_file=chosen.params_file,
        params_sha256=chosen.params_sha256,
        config=chosen.config,
        n_params=chosen.n_params,
        val_accuracy=chosen.val_accuracy[-1] if chosen.val_accuracy else None,
        test_accuracy=chosen.test_accuracy,
    )


def sample_result(
    sample: ChosenSample,
    options: GradcheckOptions,
    third: ThirdDerivatives,
    curves: dict[DTypeName, FdCurve],
    noises: dict[DTypeName, LossNoise],
    theta: tuple[float, ...],
) -> SampleResult:
    """One sample's measurements with their error model (C_t from the headline curve)
    and, per dtype, the measured and predicted optimum (theta: its float64 values)."""
    head = options.headline_dtype
    roundoff = 2**0.5 * noises[head].loss_noise
    trunc = truncation(third, curves[head], roundoff)
    return SampleResult(
        sample=sample,
        curves=tuple(curves[dt] for dt in options.dtypes),
        third=third,
        noise=tuple(noises[dt] for dt in options.dtypes),
        truncation=trunc,
        error_models=tuple(
            error_model(trunc.coef, noises[dt], curves[dt]) for dt in options.dtypes
        ),
        optima=tuple(optimum(curves[dt], noises[dt], third, theta) for dt in options.dtypes),
    )
