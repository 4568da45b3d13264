"""The CNN study's summary, what the report reads, and the study the pipeline runs.

The study needs the search's chosen MLP (``CHOSEN_MLP``): the CNN's fully connected
width is chosen so that its parameter count is nearest the MLP's, and the MLP's curves,
measured by the search on the same training subset while it trained it, are compared
with the CNN's.

Its plan hands out its runs in two stages. First: every technique screened, one run
each at the screening seed; the vanilla CNN at every seed (its screening-seed run is
the screening's baseline). Once every screening run is in, the technique chosen
by ``SELECTION`` (a rule on the screening results alone, so the choice does not depend
on the order they arrive in) runs at the other seeds.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs
import numpy as np

from analyses.common import (
    DataSpec,
    EvalSubset,
    MachineInfo,
    MlpConfig,
    SplitSizes,
    load_data,
    machine_info,
)
from analyses.pipeline.driver import ArtifactKey, Artifacts, StudyError
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.store import StoredRun
from analyses.pipeline.tasks import RunContext, Task
from analyses.studies.artifacts import CHOSEN_MLP, ChosenMlp
from analyses.studies.cnn.models import (
    CNNSpec,
    Layer,
    count_params,
    describe,
    layer_table,
    match_params,
)
from analyses.studies.cnn.runs import (
    RUN_THREADS,
    STUDY,
    CnnOptions,
    CnnRun,
    CnnRunResult,
    Curves,
    Device,
    DeviceName,
    Technique,
    TrainConfig,
)
from fmlp.atomic import atomic_write_text

TARGET_VANILLA: Final = 0.990
"""Validation accuracy a plain CNN of this size should reach in 10 epochs."""
TARGET_REGULARIZED: Final = 0.9945
"""Validation accuracy (mean over seeds) the chosen regularizer aims at."""
SELECTION: Final = (
    "the technique with the highest validation accuracy after the last epoch at the "
    "screening seed (ties: the lower final validation loss, then the order listed)"
)


# ---------------------------------------------------------------------- records


@attrs.frozen
class Band:
    """One metric per epoch over seeds: mean, standard deviation (ddof 1; 0 for one
    seed), smallest and largest."""

    mean: tuple[float, ...]
    sd: tuple[float, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]


@attrs.frozen
class SeedRun:
    """One seed's run, and the epoch of its lowest validation loss (where early stopping
    on the validation loss would have stopped)."""

    seed: int
    result: CnnRunResult
    early_stop_epoch: int


@attrs.frozen
class Aggregate:
    """A variant over its seeds: per-epoch bands, and the last epoch's validation error
    (mean and sd), validation accuracy (mean) and test error (mean)."""

    train_loss: Band
    train_error: Band
    valid_loss: Band
    valid_error: Band
    final_valid_error: float
    final_valid_error_sd: float
    final_valid_accuracy: float
    final_test_error: float
    early_stop_epoch_of_mean: int


@attrs.frozen
class Variant:
    """One CNN trained over several seeds: its name, the technique in words, its network
    and training, and its runs."""

    name: str
    technique: str
    spec: CNNSpec
    train: TrainConfig
    description: str
    n_params: int
    layers: tuple[Layer, ...]
    runs: tuple[SeedRun, ...]
    aggregate: Aggregate

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.runs)


@attrs.frozen
class MlpReference:
    """The MLP compared with: the search's chosen model, its curves as the search
    measured them while training it (on the same training subset as the CNN runs), and
    its test loss and error, measured once after the choice."""

    config: MlpConfig
    description: str
    sizes: tuple[int, ...]
    n_params: int
    curves: Curves
    test_loss: float
    test_error: float


@attrs.frozen
class Screened:
    """One technique's screening run at the screening seed, and its rank by
    ``SELECTION`` (1: chosen); None when the run failed (then ``error`` says why)."""

    technique: Technique
    description: str
    train: str
    result: CnnRunResult | None
    error: str | None
    rank: int | None


@attrs.frozen
class Verdict:
    """The chosen technique against vanilla over the same seeds: the gain in mean final
    validation error (vanilla minus chosen; positive: better), the larger of the two
    seed sds, whether the gain exceeds twice it, and whether the chosen technique's mean
    validation accuracy reaches ``target``."""

    technique: str
    gain: float
    noise: float
    beyond_noise: bool
    target: float
    target_met: bool


@attrs.frozen
class CnnSummary(JsonRecord):
    """The study's results (no wall times: they live in the pipeline's log)."""

    SCHEMA: ClassVar[int] = 3

    dataset: str
    dataset_sizes: SplitSizes
    epochs: int
    seeds: tuple[int, ...]
    device: Device
    threads: int
    train: TrainConfig
    optimizer: str
    eval_subset: EvalSubset
    train_measured_on: str
    mlp: MlpReference
    cnn_params: int
    param_ratio: float
    screening_seed: int
    selection: str
    screening: tuple[Screened, ...]
    variants: tuple[Variant, ...]
    verdict: Verdict
    target_vanilla: float
    figures: tuple[str, ...]
    machine: MachineInfo

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    @property
    def vanilla(self) -> Variant:
        return self.variant("vanilla")

    @property
    def chosen(self) -> Variant:
        """The chosen technique over every seed."""
        return next(v for v in self.variants if v.name != "vanilla")


FIGURES: Final = ("cnn_screening", "cnn_errors", "cnn_vs_mlp_loss")


# ------------------------------------------------------------------ aggregation


def band(rows: Sequence[Sequence[float]]) -> Band:
    a = np.asarray(rows, dtype=np.float64)
    sd = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
    return Band(
        mean=tuple(float(v) for v in a.mean(axis=0)),
        sd=tuple(float(v) for v in sd),
        min=tuple(float(v) for v in a.min(axis=0)),
        max=tuple(float(v) for v in a.max(axis=0)),
    )


def early_stop_epoch(curves: Curves) -> int:
    """The epoch (1-based) of the lowest validation loss; the first of ties."""
    return int(np.argmin(np.asarray(curves.valid_loss))) + 1


def aggregate(runs: Sequence[SeedRun]) -> Aggregate:
    def metric(name: str) -> Band:
        return band([getattr(r.result.curves, name) for r in runs])

    valid_error = metric("valid_error")
    valid_loss = metric("valid_loss")
    final = np.asarray([r.result.curves.valid_error[-1] for r in runs], dtype=np.float64)
    return Aggregate(
        train_loss=metric("train_loss"),
        train_error=metric("train_error"),
        valid_loss=valid_loss,
        valid_error=valid_error,
        final_valid_error=float(final.mean()),
        final_valid_error_sd=float(final.std(ddof=1)) if len(final) > 1 else 0.0,
        final_valid_accuracy=1.0 - float(final.mean()),
        final_test_error=float(np.mean([r.result.test_error for r in runs])),
        early_stop_epoch_of_mean=int(np.argmin(np.asarray(valid_loss.mean))) + 1,
    )


def variant_of(
    name: str,
    technique: str,
    spec: CNNSpec,
    train: TrainConfig,
    results: Sequence[tuple[int, CnnRunResult]],
) -> Variant:
    runs = tuple(SeedRun(seed, r, early_stop_epoch(r.curves)) for seed, r in results)
    return Variant(
        name=name,
        technique=technique,
        spec=spec,
        train=train,
        description=describe(spec),
        n_params=count_params(spec),
        layers=layer_table(spec),
        runs=runs,
        aggregate=aggregate(runs),
    )


def verdict(vanilla: Variant, chosen: Variant) -> Verdict:
    a, b = vanilla.aggregate, chosen.aggregate
    gain = a.final_valid_error - b.final_valid_error
    noise = max(a.final_valid_error_sd, b.final_valid_error_sd)
    return Verdict(
        technique=chosen.name,
        gain=gain,
        noise=noise,
        beyond_noise=gain > 2 * noise,
        target=TARGET_REGULARIZED,
        target_met=b.final_valid_accuracy >= TARGET_REGULARIZED,
    )


def selection_key(result: CnnRunResult, order: int) -> tuple[float, float, int]:
    """``SELECTION`` as a sort key (lower first)."""
    c = result.curves
    return (c.valid_error[-1], c.valid_loss[-1], order)


def rank(results: dict[str, CnnRunResult], names: Sequence[str]) -> list[str]:
    """The techniques that ran, best first by ``SELECTION`` (``names``: the order listed)."""
    ran = [n for n in names if n in results]
    return sorted(ran, key=lambda n: selection_key(results[n], names.index(n)))


# ------------------------------------------------------------------------ device


def cuda_available() -> bool:
    """Whether torch sees a CUDA device on this machine, found out without importing
    torch into this process: from torch itself when it is already imported, False on a
    Linux machine without NVIDIA device files, otherwise by asking a short subprocess."""
    loaded = sys.modules.get("torch")
    if loaded is not None:
        return bool(loaded.cuda.is_available())
    if importlib.util.find_spec("torch") is None:
        return False
    if sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia[0-9]*")):
        return False
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(int(torch.cuda.is_available()))"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return probe.stdout.strip() == "1"


def resolve_device(requested: DeviceName) -> Device:
    """``cuda`` when asked for or (``auto``) available, else ``cpu``."""
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    return requested


# -------------------------------------------------------------------------- plan

VANILLA: Final = "vanilla"


class _CnnPlan:
    def __init__(
        self, data: DataSpec, options: CnnOptions, chosen: ChosenMlp, device: Device
    ) -> None:
        self.data = data
        self.options = options
        self.mlp = chosen
        self.device = device
        self.error: str | None = None
        self.setups: dict[str, tuple[CNNSpec, TrainConfig]] = {}
        try:
            vanilla = match_params(options.blocks, chosen.n_params)
        except ValueError as exc:
            self.error = f"no CNN of these convolutions matches the MLP's size: {exc}"
        else:
            self.setups[VANILLA] = (vanilla, options.train)
            for t in options.techniques:
                self.setups[t.name] = t.apply(vanilla, options.train)
        if chosen.eval_subset != options.eval_subset:
            self.error = (
                f"the search measured its MLP on the training subset {chosen.eval_subset}, "
                f"this study on {options.eval_subset}: give both the same"
            )
        self.names = [t.name for t in options.techniques]
        self.stage = 0
        self.chosen: str | None = None
        self.results: dict[tuple[str, int], CnnRunResult] = {}
        self.failures: dict[tuple[str, int], str] = {}

    def _task(self, name: str, seed: int) -> CnnRun:
        spec, train = self.setups[name]
        o = self.options
        return CnnRun(
            self.data, spec, train, seed, o.epochs, self.device, o.eval_subset, variant=name
        )

    def _screening_in(self) -> bool:
        seed = self.options.screening_seed
        return all((n, seed) in self.results or (n, seed) in self.failures for n in self.names)

    def _choose(self) -> str | None:
        seed = self.options.screening_seed
        screened = {n: self.results[(n, seed)] for n in self.names if (n, seed) in self.results}
        ranked = rank(screened, self.names)
        return ranked[0] if ranked else None

    def ready(self) -> Sequence[Task[Any]]:
        if self.error is not None:
            return ()
        o = self.options
        if self.stage == 0:
            self.stage = 1
            # the screening first: the second stage waits for it
            screening = [self._task(n, o.screening_seed) for n in self.names]
            vanilla = [self._task(VANILLA, seed) for seed in o.seeds]
            return [*screening, *vanilla]
        if self.stage == 1 and self._screening_in():
            self.stage = 2
            self.chosen = self._choose()
            if self.chosen is not None:
                return [self._task(self.chosen, seed) for seed in o.seeds[1:]]
        return ()

    def record(self, task: Task[Any], run: StoredRun) -> None:
        assert isinstance(task, CnnRun)
        if run.failure is not None:
            self.failures[(task.variant, task.seed)] = run.failure.error
        else:
            self.results[(task.variant, task.seed)] = run.result

    def _expected(self) -> set[tuple[str, int]]:
        o = self.options
        runs = {(n, o.screening_seed) for n in self.names}
        runs |= {(VANILLA, seed) for seed in o.seeds}
        if self.chosen is not None:
            runs |= {(self.chosen, seed) for seed in o.seeds}
        return runs

    def done(self) -> bool:
        if self.error is not None:
            return True
        if self.stage < 2:
            return False
        have = set(self.results) | set(self.failures)
        return self._expected() <= have

    # ------------------------------------------------------------------ finish

    def _variant(self, name: str, technique: str) -> Variant:
        spec, train = self.setups[name]
        runs = [(seed, self.results[(name, seed)]) for seed in self.options.seeds]
        return variant_of(name, technique, spec, train, runs)

    def _screening(self) -> tuple[Screened, ...]:
        seed = self.options.screening_seed
        screened = {n: self.results[(n, seed)] for n in self.names if (n, seed) in self.results}
        ranks = {n: i for i, n in enumerate(rank(screened, self.names), 1)}
        out = []
        for t in self.options.techniques:
            spec, train = self.setups[t.name]
            out.append(
                Screened(
                    technique=t,
                    description=describe(spec),
                    train=train.describe(),
                    result=screened.get(t.name),
                    error=self.failures.get((t.name, seed)),
                    rank=ranks.get(t.name),
                )
            )
        return tuple(out)

    def finish(self, folder: Path) -> CnnSummary:
        if self.error is not None:
            raise StudyError(self.error)
        if self.chosen is None:
            raise StudyError(
                "every screening run failed: "
                + "; ".join(f"{n}: {e}" for (n, _), e in sorted(self.failures.items()))
            )
        missing = [
            f"{n} seed {seed}: {self.failures[(n, seed)]}"
            for n, seed in sorted(self._expected())
            if (n, seed) in self.failures and (n == VANILLA or n == self.chosen)
        ]
        if missing:
            raise StudyError("runs the comparison needs failed: " + "; ".join(missing))
        opts = self.options
        technique = next(t for t in opts.techniques if t.name == self.chosen)
        vanilla = self._variant(VANILLA, "none (vanilla)")
        chosen = self._variant(technique.name, technique.text)
        mlp = self._mlp_reference()
        data = load_data(self.data, "float32")
        cnn_params = vanilla.n_params
        summary = CnnSummary(
            dataset=self.data.label,
            dataset_sizes=data.sizes,
            epochs=opts.epochs,
            seeds=opts.seeds,
            device=self.device,
            threads=RUN_THREADS,
            train=opts.train,
            optimizer=opts.train.describe(),
            eval_subset=opts.eval_subset,
            train_measured_on=opts.eval_subset.describe(len(data.y_train)),
            mlp=mlp,
            cnn_params=cnn_params,
            param_ratio=cnn_params / mlp.n_params,
            screening_seed=opts.screening_seed,
            selection=SELECTION,
            screening=self._screening(),
            variants=(vanilla, chosen),
            verdict=verdict(vanilla, chosen),
            target_vanilla=TARGET_VANILLA,
            figures=(),
            machine=machine_info(),
        )
        from analyses.studies.cnn.figures import plot_errors, plot_losses, plot_screening

        written = (
            plot_screening(summary, folder)
            + plot_errors(summary, folder)
            + plot_losses(summary, folder)
        )
        atomic_write_text(folder / "table.md", markdown_table(summary))
        return attrs.evolve(summary, figures=tuple(written))

    def _mlp_reference(self) -> MlpReference:
        chosen = self.mlp
        config = chosen.config
        return MlpReference(
            config=config,
            description=config.describe(),
            sizes=config.sizes,
            n_params=chosen.n_params,
            curves=Curves(
                epoch=tuple(range(1, len(chosen.val_loss) + 1)),
                train_loss=chosen.train_loss,
                train_error=chosen.train_error,
                valid_loss=chosen.val_loss,
                valid_error=tuple(1.0 - a for a in chosen.val_accuracy),
            ),
            test_loss=chosen.test_loss,
            test_error=1.0 - chosen.test_accuracy,
        )


# ------------------------------------------------------------------------- table


def table_rows(s: CnnSummary) -> list[tuple[str, int, int, float, float, float | None, float]]:
    """(model, parameters, seeds, final train error, final valid error, its sd over
    seeds (None for the single MLP run), test error) per model: the MLP, then the CNNs."""
    m = s.mlp
    rows: list[tuple[str, int, int, float, float, float | None, float]] = [
        (
            f"MLP {s.mlp.config.architecture} {s.mlp.config.activation}",
            s.mlp.n_params,
            1,
            m.curves.train_error[-1],
            m.curves.valid_error[-1],
            None,
            m.test_error,
        )
    ]
    for v in s.variants:
        a = v.aggregate
        rows.append(
            (
                f"CNN {v.name}",
                v.n_params,
                len(v.runs),
                a.train_error.mean[-1],
                a.final_valid_error,
                a.final_valid_error_sd,
                a.final_test_error,
            )
        )
    return rows


def markdown_table(s: CnnSummary) -> str:
    """The last epoch per model (errors in %; CNNs: mean over seeds, valid +- sd)."""

    def pct(v: float) -> str:
        return f"{100 * v:.3f}"

    lines = [
        "| model | params | seeds | train error % | valid error % | test error % |",
        "|---|---|---|---|---|---|",
    ]
    for name, params, seeds, train, valid, sd, test in table_rows(s):
        shown = pct(valid) + ("" if sd is None else f" +- {pct(sd)}")
        lines.append(f"| {name} | {params:,} | {seeds} | {pct(train)} | {shown} | {pct(test)} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- study


@attrs.frozen
class CnnStudy:
    """A CNN of the chosen MLP's size: CNN against MLP; regularizers screened, and the
    best against the vanilla CNN over several seeds."""

    data: DataSpec
    options: CnnOptions = attrs.field(factory=CnnOptions)

    name: ClassVar[str] = STUDY
    needs: ClassVar[tuple[ArtifactKey[Any], ...]] = (CHOSEN_MLP,)
    provides: ClassVar[tuple[ArtifactKey[Any], ...]] = ()
    summary_type: ClassVar[type[CnnSummary]] = CnnSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _CnnPlan:
        return _CnnPlan(
            self.data, self.options, artifacts[CHOSEN_MLP], resolve_device(self.options.device)
        )

    def artifacts(self, summary: CnnSummary) -> dict[ArtifactKey[Any], object]:
        return {}
