"""The CNN study's plan.

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

from pathlib import Path
from typing import Final

import attrs

from analyses.datasets import DataSpec, load_data
from analyses.machine import machine_info
from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.pipeline.store import StoredRun
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.cnn.models import CNNSpec, describe, match_params
from analyses.studies.cnn.options import CnnOptions, Device, TrainConfig
from analyses.studies.cnn.runs import RUN_THREADS, CnnRun, CnnRunResult, Curves
from analyses.studies.cnn.stats import rank, variant_of, verdict
from analyses.studies.cnn.summary import (
    SELECTION,
    TARGET_VANILLA,
    CnnSummary,
    MlpReference,
    Screened,
    Variant,
)
from analyses.studies.cnn.tables import markdown_table
from fmlp.atomic import atomic_write_text

VANILLA: Final = "vanilla"


class CnnPlan(StudyPlan[CnnRun, CnnRunResult, CnnSummary]):
    """First every technique screened at the screening seed and the vanilla CNN at
    every seed; once the screening is in, the chosen technique at the other seeds."""

    def __init__(
        self, data: DataSpec, options: CnnOptions, chosen: ChosenMlp, device: Device
    ) -> None:
        super().__init__()
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
        self.by_run: dict[tuple[str, int], CnnRunResult] = {}
        self.failed_runs: dict[tuple[str, int], str] = {}

    def _task(self, name: str, seed: int) -> CnnRun:
        spec, train = self.setups[name]
        o = self.options
        return CnnRun(
            self.data, spec, train, seed, o.epochs, self.device, o.eval_subset, variant=name
        )

    def _screening_in(self) -> bool:
        seed = self.options.screening_seed
        return all((n, seed) in self.by_run or (n, seed) in self.failed_runs for n in self.names)

    def _choose(self) -> str | None:
        seed = self.options.screening_seed
        screened = {n: self.by_run[(n, seed)] for n in self.names if (n, seed) in self.by_run}
        ranked = rank(screened, self.names)
        return ranked[0] if ranked else None

    def more(self) -> None:
        if self.error is not None:
            return
        o = self.options
        if self.stage == 0:
            self.stage = 1
            # the screening first: the second stage waits for it
            self.want(*(self._task(n, o.screening_seed) for n in self.names))
            self.want(*(self._task(VANILLA, seed) for seed in o.seeds))
        elif self.stage == 1 and self._screening_in():
            self.stage = 2
            self.chosen = self._choose()
            if self.chosen is not None:
                self.want(*(self._task(self.chosen, seed) for seed in o.seeds[1:]))

    def received(self, task: CnnRun, run: StoredRun[CnnRunResult]) -> None:
        result = self.results.get(task)
        if result is None:
            self.failed_runs[(task.variant, task.seed)] = self.failures[task]
        else:
            self.by_run[(task.variant, task.seed)] = result

    def _expected(self) -> set[tuple[str, int]]:
        o = self.options
        runs = {(n, o.screening_seed) for n in self.names}
        runs |= {(VANILLA, seed) for seed in o.seeds}
        if self.chosen is not None:
            runs |= {(self.chosen, seed) for seed in o.seeds}
        return runs

    def settled(self) -> bool:
        return self.error is not None or self.stage == 2

    # ------------------------------------------------------------------ finish

    def _variant(self, name: str, technique: str) -> Variant:
        spec, train = self.setups[name]
        runs = [(seed, self.by_run[(name, seed)]) for seed in self.options.seeds]
        return variant_of(name, technique, spec, train, runs)

    def _screening(self) -> tuple[Screened, ...]:
        seed = self.options.screening_seed
        screened = {n: self.by_run[(n, seed)] for n in self.names if (n, seed) in self.by_run}
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
                    error=self.failed_runs.get((t.name, seed)),
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
                + "; ".join(f"{n}: {e}" for (n, _), e in sorted(self.failed_runs.items()))
            )
        missing = [
            f"{n} seed {seed}: {self.failed_runs[(n, seed)]}"
            for n, seed in sorted(self._expected())
            if (n, seed) in self.failed_runs and (n == VANILLA or n == self.chosen)
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
