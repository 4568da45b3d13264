"""The finite-difference study's runs.

The study checks the model the search chose (its parameters file in the results
folder, named and fingerprinted by the ``search.chosen_mlp`` artifact). Its runs, each
a task that loads the model itself in its worker:

- ``ChooseSamples``: which training samples to check, by the stated rules (the
  assignment's sample: the first where dL/dtheta is not identically 0; and the sample
  of largest loss, whose loss float32 can resolve), each with its loss, dL/dtheta and
  the activations that multiply theta;
- then, for each chosen sample: ``ThirdDerivativeRun`` (L''' per element, float64),
  ``FdCurveRun`` per dtype (every central difference at every N) and ``LossNoiseRun``
  per dtype (the round-off noise of the computed loss).

Every task's key names the data, the model's parameters file and sha256, the sample
and what it measures, so a different model or sample never reuses a stored result.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeAlias

import attrs

import fmlp
from analyses.datasets import DataSpec, DTypeName, SplitSizes, load_data
from analyses.mlp import params_digest
from analyses.pipeline.tasks import UNLESS_DEFAULT, KeyedTask, RunContext
from analyses.studies.gradcheck.finite import (
    FIRST_RULE,
    WORST_RULE,
    ChosenSample,
    DeadTheta,
    Elements,
    FdCurve,
    LossNoise,
    ThirdDerivatives,
    as_dtype,
    describe_sample,
    fd_curve,
    first_live_sample,
    live_elements,
    loss_noise,
    row,
    theta_layout,
    third_derivatives,
    worst_live_sample,
)
from analyses.studies.gradcheck.options import STUDY, GradcheckOptions
from fmlp import checkpoint
from fmlp.types import FloatArray, IntArray


@attrs.frozen
class ModelRef:
    """The model to check: its parameters file (``fmlp.checkpoint``, relative to the
    results folder) and the sha256 of its parameters (``analyses.datasets.params_digest``)."""

    params_file: str
    params_sha256: str

    def load(self, out: Path) -> fmlp.MLP:
        """The parameters as float64 (values unchanged); ValueError when the file holds
        other parameters than the artifact named."""
        path = out / self.params_file
        if not path.exists():
            raise FileNotFoundError(
                f"the model's parameters file {self.params_file} is not in the results folder"
            )
        params = checkpoint.load(path)
        digest = params_digest(params)
        if digest != self.params_sha256:
            raise ValueError(
                f"{self.params_file} holds parameters with sha256 {digest}, not the "
                f"{self.params_sha256} the chosen model names: rerun the search"
            )
        return as_dtype(params, "float64")


# ------------------------------------------------------------------- results


@attrs.frozen
class SampleChoice:
    """The samples the study checks, and theta.

    n_train: training samples. theta_index: (row, column) of each theta_i;
    theta_value: float64. w_shape: the shape of the weight matrix theta is taken from.
    first: the assignment's sample. worst: the sample of largest loss where dL/dtheta
    is not identically 0; max_loss_index / max_loss: the sample of largest loss of all
    (the same one unless the rule passed over it).

    elements: None when theta is the first p elements of the layer. When those are dead
    (dL/dtheta exactly 0 on every sample the first rule looked at), ``dead`` says so and
    theta is instead the first p elements of the same layer whose gradient is not zero
    on those samples, by their flat (row-major) indices.
    """

    n_train: int
    dataset_sizes: SplitSizes
    w_shape: tuple[int, int]
    theta_index: tuple[tuple[int, int], ...]
    theta_value: tuple[float, ...]
    first: ChosenSample
    worst: ChosenSample
    max_loss_index: int
    max_loss: float
    elements: Elements | None = None
    dead: str | None = None


# --------------------------------------------------------------------- tasks


def _training_set(data: DataSpec) -> tuple[FloatArray, IntArray, SplitSizes]:
    """The training inputs as the model was trained on them (float32) and the labels."""
    d = load_data(data, "float32")
    return d.x_train, d.y_train, d.sizes


@attrs.frozen
class _Run(KeyedTask):
    """What every run of the study depends on: the data, the model, theta."""

    study: ClassVar[str] = STUDY
    torch: ClassVar[bool] = False
    VERSION: ClassVar[int] = 1

    data: DataSpec
    model: ModelRef
    layer: int
    p: int
    elements: Elements | None = attrs.field(default=None, kw_only=True, metadata=UNLESS_DEFAULT)
    """theta's flat indices when not the first p elements (see SampleChoice); theta as
    the first p elements keeps the keys it had before this field."""

    def _sample(self, ctx: RunContext, index: int) -> tuple[fmlp.MLP, FloatArray, IntArray]:
        params64 = self.model.load(Path(ctx.out))
        x, y, _ = _training_set(self.data)
        xi, yi = row(x, y, index)
        return params64, xi, yi


@attrs.frozen
class ChooseSamples(_Run):
    """Choose the samples by the stated rules and describe them."""

    result_type: ClassVar[type[SampleChoice]] = SampleChoice
    KIND: ClassVar[str] = "samples"
    VERSION: ClassVar[int] = 3

    scan_limit: int

    def label(self) -> str:
        return "gradcheck choose the samples"

    def run(self, ctx: RunContext) -> SampleChoice:
        params64 = self.model.load(Path(ctx.out))
        x, y, sizes = _training_set(self.data)
        layer, limit = self.layer, self.scan_limit
        p, _ = theta_layout(params64, layer, self.p)
        elements: Elements | None = None
        dead: str | None = None
        try:
            first = first_live_sample(params64, x, y, layer, p, limit)
        except DeadTheta as exc:
            elements = live_elements(params64, x, y, layer, p, limit)
            if not elements:
                raise DeadTheta(
                    f"every element of params.layers[{layer}].w has a zero gradient on the "
                    f"first {min(len(y), limit):,} training samples (the whole layer is dead): "
                    "check another layer or model"
                ) from exc
            p = len(elements)
            dead = (
                f"the first {p} elements of params.layers[{layer}].w have dL/dtheta exactly 0 on "
                f"each of the first {min(len(y), limit):,} training samples (their units are "
                "dead), so the check instead uses the first elements of that layer whose "
                "gradient is not zero on those samples"
            )
            first = first_live_sample(params64, x, y, layer, p, limit, elements)
        worst, passed, top, top_loss = worst_live_sample(
            params64, x, y, layer, p, limit, elements=elements
        )
        _, cells = theta_layout(params64, layer, p, elements)
        w = params64.layers[layer].w
        flat = w.ravel()
        return SampleChoice(
            n_train=len(y),
            dataset_sizes=sizes,
            w_shape=(int(w.shape[0]), int(w.shape[1])),
            theta_index=cells,
            theta_value=tuple(float(flat[r * w.shape[1] + c]) for r, c in cells),
            first=describe_sample(
                params64, x, y, first, layer, p, rule=FIRST_RULE, skipped=first, elements=elements
            ),
            worst=describe_sample(
                params64, x, y, worst, layer, p, rule=WORST_RULE, skipped=passed, elements=elements
            ),
            max_loss_index=top,
            max_loss=top_loss,
            elements=elements,
            dead=dead,
        )


@attrs.frozen
class ThirdDerivativeRun(_Run):
    """L'''(theta_i) on one sample, float64."""

    result_type: ClassVar[type[ThirdDerivatives]] = ThirdDerivatives
    KIND: ClassVar[str] = "third_derivative"

    sample: int
    h: float

    def label(self) -> str:
        return f"gradcheck sample {self.sample} third derivatives"

    def run(self, ctx: RunContext) -> ThirdDerivatives:
        params64, x, y = self._sample(ctx, self.sample)
        return third_derivatives(
            params64, x, y, layer=self.layer, p=self.p, h=self.h, elements=self.elements
        )


@attrs.frozen
class FdCurveRun(_Run):
    """Every central difference at every N on one sample, in one dtype."""

    result_type: ClassVar[type[FdCurve]] = FdCurve
    KIND: ClassVar[str] = "fd"

    sample: int
    dtype: DTypeName
    ns: tuple[int, ...]

    def label(self) -> str:
        return f"gradcheck sample {self.sample} differences {self.dtype}"

    def run(self, ctx: RunContext) -> FdCurve:
        params64, x, y = self._sample(ctx, self.sample)
        return fd_curve(
            params64,
            x,
            y,
            layer=self.layer,
            p=self.p,
            ns=self.ns,
            dtype=self.dtype,
            elements=self.elements,
        )


@attrs.frozen
class LossNoiseRun(_Run):
    """The round-off noise of the loss on one sample, in one dtype."""

    result_type: ClassVar[type[LossNoise]] = LossNoise
    KIND: ClassVar[str] = "loss_noise"

    sample: int
    dtype: DTypeName
    width: float
    width_max: float
    points: int

    def label(self) -> str:
        return f"gradcheck sample {self.sample} loss noise {self.dtype}"

    def run(self, ctx: RunContext) -> LossNoise:
        params64, x, y = self._sample(ctx, self.sample)
        return loss_noise(
            params64,
            x,
            y,
            layer=self.layer,
            p=self.p,
            dtype=self.dtype,
            width=self.width,
            width_max=self.width_max,
            points=self.points,
            elements=self.elements,
        )


GradcheckRun: TypeAlias = "ChooseSamples | ThirdDerivativeRun | FdCurveRun | LossNoiseRun"
"""Every kind of run of the study."""
GradcheckResult: TypeAlias = "SampleChoice | ThirdDerivatives | FdCurve | LossNoise"
"""What its runs return."""


@attrs.frozen
class SampleRuns:
    """Every run on one sample: the third derivatives, and per dtype the curve and the
    loss noise."""

    third: ThirdDerivativeRun
    curves: dict[DTypeName, FdCurveRun]
    noises: dict[DTypeName, LossNoiseRun]

    def all(self) -> list[GradcheckRun]:
        """In the order they are handed out: the third derivatives, then per dtype the
        curve and the loss noise."""
        runs: list[GradcheckRun] = [self.third]
        for dt, curve in self.curves.items():
            runs += [curve, self.noises[dt]]
        return runs


def sample_runs(
    data: DataSpec,
    model: ModelRef,
    options: GradcheckOptions,
    sample: int,
    elements: Elements | None = None,
) -> SampleRuns:
    """Every run on one sample (``elements``: theta's, when not the first p)."""
    layer, p, th = options.layer, options.p, elements
    return SampleRuns(
        third=ThirdDerivativeRun(data, model, layer, p, sample, options.third_h, elements=th),
        curves={
            dt: FdCurveRun(data, model, layer, p, sample, dt, options.ns, elements=th)
            for dt in options.dtypes
        },
        noises={
            dt: LossNoiseRun(
                data,
                model,
                layer,
                p,
                sample,
                dt,
                options.noise_width,
                options.noise_width_max,
                options.noise_points,
                elements=th,
            )
            for dt in options.dtypes
        },
    )
