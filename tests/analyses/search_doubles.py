"""A stand-in for the search in the tests of the studies that need its chosen model: a
study that provides ``CHOSEN_MLP`` for a small MLP, trained with ``fmlp.fit`` as the
search trains it (one BLAS thread, the training subset measured after every epoch),
its parameters saved beside its summary."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import attrs
from threadpoolctl import threadpool_limits

import fmlp
from analyses.datasets import DataSpec, EvalSubset, floats, load_data
from analyses.mlp import MlpConfig, init_params, make_optimizer, params_digest
from analyses.pipeline.plan import StudyPlan
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import RunContext, Task
from analyses.studies.artifacts import CHOSEN_MLP, ChosenMlp
from fmlp import checkpoint

TINY_MLP = MlpConfig(hidden=(32, 16), lr=0.1, batch_size=32, epochs=2)


@attrs.frozen
class ChosenSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 1

    chosen: ChosenMlp


def choose(data: DataSpec, config: MlpConfig, out: Path, name: str) -> ChosenMlp:
    """Train ``config`` on ``data`` as the search would, save its parameters under
    ``out/name`` and describe it as the search's chosen model."""
    d = load_data(data, config.dtype)
    subset = EvalSubset()
    index = subset.indices(len(d.y_train))
    on_train: list[fmlp.Evaluation] = []

    def measure(epoch: int, params: fmlp.MLP) -> None:
        on_train.append(fmlp.evaluate(params, d.x_train[index], d.y_train[index]))

    with threadpool_limits(limits=1):
        state, m = fmlp.fit(
            init_params(config),
            d.x_train,
            d.y_train,
            epochs=config.epochs,
            batch_size=config.batch_size,
            optimizer=make_optimizer(config, len(d.y_train)),
            seed=config.seed,
            validation=(d.x_valid, d.y_valid),
            eval_train=False,
            params_callback=measure,
        )
        test = fmlp.evaluate(state.params, d.x_test, d.y_test)
    params_file = f"{name}/chosen_params.npz"
    checkpoint.save(out / params_file, state.params)
    return ChosenMlp(
        config=config,
        n_params=fmlp.n_params(state.params),
        params_file=params_file,
        params_sha256=params_digest(state.params),
        val_accuracy=floats(m.val_accuracy),
        val_loss=floats(m.val_loss),
        train_loss=tuple(e.loss for e in on_train),
        train_error=tuple(1.0 - e.accuracy for e in on_train),
        eval_subset=subset,
        test_accuracy=test.accuracy,
        test_loss=test.loss,
    )


class _ChosenPlan(StudyPlan[Task[object], object, ChosenSummary]):
    """No runs: the model is trained when the summary is made."""

    def __init__(self, data: DataSpec, config: MlpConfig, out: Path, name: str) -> None:
        super().__init__()
        self.data, self.config, self.out, self.name = data, config, out, name

    def finish(self, folder: Path) -> ChosenSummary:
        return ChosenSummary(choose(self.data, self.config, self.out, self.name))


@attrs.frozen
class FakeSearch:
    """Provides CHOSEN_MLP: ``config`` trained on ``data``."""

    data: DataSpec
    config: MlpConfig = TINY_MLP

    name: ClassVar[str] = "fake_search"
    priority: ClassVar[int] = 0
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = (CHOSEN_MLP,)
    summary_type: ClassVar[type[ChosenSummary]] = ChosenSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> _ChosenPlan:
        return _ChosenPlan(self.data, self.config, Path(ctx.out), self.name)

    def artifacts(self, summary: ChosenSummary) -> ArtifactValues:
        return {CHOSEN_MLP: summary.chosen}
