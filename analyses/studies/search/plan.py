"""The search's plan: successive halving over the configurations, the grid's best
continued to the last rung, and the choice of the model.

Ranking: within a rung, by r(valid) at the rung's last epoch (higher first), then the
validation loss, then the trial's name, so ties break the same way every time. The
table ranks every configuration by how far it got (the 10-epoch finalists first), then
by its r(valid) at its last rung. The chosen model is the best finalist; its test
accuracy is measured once, after the choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
from threadpoolctl import threadpool_limits

import fmlp
from analyses.datasets import DataSpec, load_data
from analyses.machine import machine_info
from analyses.mlp import MlpConfig, init_params, make_optimizer, params_digest
from analyses.pipeline.plan import StudyError, StudyPlan
from analyses.pipeline.store import StoredRun
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.search.halving import RankKey, SuccessiveHalving
from analyses.studies.search.options import (
    SearchOptions,
)
from analyses.studies.search.runs import STUDY, SearchRun, SegmentResult, trial_name
from analyses.studies.search.summary import (
    CHOSEN_PARAMS,
    SELECTION,
    PlainSgdFinalist,
    SearchSummary,
    Trial,
    csv_table,
    markdown_table,
    space_text,
)
from fmlp import checkpoint
from fmlp.atomic import atomic_write_text


def _rank_key(result: SegmentResult, name: str) -> RankKey | None:
    if result.status != "ok":
        return None
    acc, loss = result.val_accuracy[-1], result.val_loss[-1]
    if not (math.isfinite(acc) and math.isfinite(loss)):
        return None
    return (-acc, loss, name)


class SearchPlan(StudyPlan[SearchRun, SegmentResult, SearchSummary]):
    """Successive halving rung by rung, and the grid's best continued to the last rung
    once every grid configuration is settled."""

    def __init__(self, data: DataSpec, options: SearchOptions, out: Path) -> None:
        super().__init__()
        self.data = data
        self.options = options
        self.out = out
        self.configs = {trial_name(data, c): c for c in options.configs}
        self.grid = {trial_name(data, c) for c in options.grid}
        self.halving = SuccessiveHalving(list(self.configs), options.rungs)
        self.segments: dict[tuple[str, int], SegmentResult] = {}
        self.failed_segments: dict[tuple[str, int], str] = {}
        # The grid's best, continued from where successive halving stopped it to the
        # last rung; decided once every grid configuration is settled.
        self.grid_decided = not self.grid
        self.continuation: SearchRun | None = None
        self.continued: SegmentResult | str | None = None  # its result, or its error

    def _run(self, name: str, start: int, rung: int) -> SearchRun:
        stop = self.options.rungs.epochs[rung]
        return SearchRun(
            self.data, self.configs[name], start, stop, self.options.eval_subset, rung=rung
        )

    def more(self) -> None:
        rungs = self.options.rungs
        self.want(*(self._run(name, rungs.start(k), k) for name, k in self.halving.ready()))
        if not self.grid_decided and all(self.halving.settled(n) for n in self.grid):
            self.grid_decided = True
            self.continuation = self._continuation()
            if self.continuation is not None:
                self.want(self.continuation)

    def _continuation(self) -> SearchRun | None:
        """The run that takes the grid's best to the last rung, when successive halving
        stopped every grid configuration before it (None: a grid configuration reached
        the last rung anyway, or every one failed). The grid's best is the one that got
        furthest, then the best by its rank key there: a choice made only once every grid
        configuration is settled, so it never depends on the order results arrive in."""
        last = self.halving.last
        if any(n in self.halving.entrants(last) for n in self.grid):
            return None
        ranked = []
        for name in self.grid:
            k = self.halving.last_rung(name)
            seg = self.segments.get((name, k))
            key = None if seg is None else _rank_key(seg, name)
            if key is not None:
                ranked.append(((-k, key), name, k))
        if not ranked:
            return None
        _, name, k = min(ranked)
        return self._run(name, self.options.rungs.epochs[k], last)

    def received(self, task: SearchRun, run: StoredRun[SegmentResult]) -> None:
        result = self.results.get(task)
        if task == self.continuation:
            self.continued = result if result is not None else self.failures[task]
            return
        name = trial_name(task.data, task.config)
        if result is None:
            self.failed_segments[(name, task.rung)] = self.failures[task]
            self.halving.report(name, task.rung, None)
            return
        self.segments[(name, task.rung)] = result
        self.halving.report(name, task.rung, _rank_key(result, name))

    def settled(self) -> bool:
        return self.halving.done() and self.grid_decided

    # ------------------------------------------------------------------ finish

    def _trial(self, name: str) -> Trial:
        config = self.configs[name]
        last = self.halving.last_rung(name)
        segs = [self.segments.get((name, k)) for k in range(last + 1)]
        acc: list[float] = []
        loss: list[float] = []
        train_loss: list[float] = []
        train_error: list[float] = []
        running: list[float] = []
        for seg in segs:
            if seg is not None:
                acc += seg.val_accuracy
                loss += seg.val_loss
                train_loss += seg.train_loss
                train_error += seg.train_error
                running += seg.running_loss
        failure = self.failed_segments.get((name, last))
        final = segs[-1]
        status: Literal["ok", "diverged", "failed"]
        error: str | None
        if failure is not None or final is None:
            status, error = "failed", failure or "no result"
        elif final.status != "ok":
            status, error = "diverged", final.error
        else:
            status, error = "ok", None
        return Trial(
            name=name,
            config=config,
            source="grid" if name in self.grid else "sampled",
            n_params=config.n_params,
            rungs=last + 1,
            epochs=len(acc),
            val_accuracy=tuple(acc),
            val_loss=tuple(loss),
            train_loss=tuple(train_loss),
            train_error=tuple(train_error),
            running_loss=tuple(running),
            status=status,
            error=error,
            r_valid=acc[-1] if acc and status == "ok" else math.nan,
            promoted=tuple(name in self.halving.promoted(k) for k in range(last + 1)),
            rank=0,
        )

    def _final(self, config: MlpConfig, seg: SegmentResult) -> tuple[fmlp.MLP, fmlp.Evaluation]:
        """The parameters a run ended with, read from its checkpoint and checked against
        the digest it reported, and their test accuracy (measured here, once)."""
        d = load_data(self.data, config.dtype)
        template = fmlp.init_state(init_params(config), make_optimizer(config, len(d.y_train)))
        params = checkpoint.load_state(self.out / seg.checkpoint, like=template).params
        if params_digest(params) != seg.params_sha256:
            raise StudyError(
                f"the checkpoint {seg.checkpoint} does not hold the parameters its run reported; "
                f"delete {self.out / STUDY} and rerun the search"
            )
        with threadpool_limits(limits=1):
            return params, fmlp.evaluate(params, d.x_test, d.y_test)

    def _choose(self, best: Trial) -> ChosenMlp:
        """Copy the chosen model's parameters beside the summary and measure its test
        accuracy, once."""
        seg = self.segments[(best.name, best.rungs - 1)]
        config = best.config
        params, test = self._final(config, seg)
        checkpoint.save(self.out / CHOSEN_PARAMS, params)
        return ChosenMlp(
            config=config,
            n_params=fmlp.n_params(params),
            params_file=CHOSEN_PARAMS,
            params_sha256=seg.params_sha256,
            val_accuracy=best.val_accuracy,
            val_loss=best.val_loss,
            train_loss=best.train_loss,
            train_error=best.train_error,
            eval_subset=self.options.eval_subset,
            test_accuracy=test.accuracy,
            test_loss=test.loss,
        )

    def _plain_sgd_finalist(self, trials: Sequence[Trial]) -> PlainSgdFinalist | None:
        """The grid's best at the last rung: continued past successive halving when it
        stopped every grid configuration, else the best grid configuration that reached
        the last rung (``trials`` ranked). None without a grid, or when every grid
        configuration failed before the last rung."""
        last_epoch = self.options.rungs.epochs[-1]
        if self.continuation is None:
            best = next((t for t in trials if t.source == "grid"), None)
            if best is None or best.epochs != last_epoch:
                return None
            stopped_at, acc, loss = None, best.val_accuracy, best.val_loss
            status, error = best.status, best.error
            final = self.segments.get((best.name, best.rungs - 1)) if status == "ok" else None
        else:
            best = next(
                t for t in trials if t.name == trial_name(self.data, self.continuation.config)
            )
            stopped_at = self.continuation.start
            acc, loss = best.val_accuracy[:stopped_at], best.val_loss[:stopped_at]
            status, error, final = "failed", "no result", None
            if isinstance(self.continued, str):
                error = self.continued
            elif self.continued is not None:
                acc += self.continued.val_accuracy
                loss += self.continued.val_loss
                status, error = self.continued.status, self.continued.error
                final = self.continued if status == "ok" else None
        test_accuracy = test_loss = math.nan
        if final is not None:
            _, test = self._final(best.config, final)
            test_accuracy, test_loss = test.accuracy, test.loss
        return PlainSgdFinalist(
            name=best.name,
            config=best.config,
            stopped_at=stopped_at,
            val_accuracy=acc,
            val_loss=loss,
            status=status,
            error=error,
            r_valid=acc[-1] if acc and status == "ok" else math.nan,
            test_accuracy=test_accuracy,
            test_loss=test_loss,
        )

    def _drop_stale_checkpoints(self, finalists: set[str]) -> None:
        """Checkpoints of stopped trials can never be resumed: remove them, keep the
        finalists' last ones."""
        folder = self.out / STUDY / "checkpoints"
        last_epoch = self.options.rungs.epochs[-1]
        for name in self.configs:
            for path in sorted((folder / name).glob("epoch-*.npz")):
                if name in finalists and path.name == f"epoch-{last_epoch}.npz":
                    continue
                path.unlink(missing_ok=True)

    def finish(self, folder: Path) -> SearchSummary:
        trials = [self._trial(name) for name in self.configs]
        trials.sort(
            key=lambda t: (
                -t.rungs,
                t.status != "ok",
                -t.r_valid if t.status == "ok" else 0.0,
                t.val_loss[-1] if t.status == "ok" else math.inf,
                t.name,
            )
        )
        trials = [attrs.evolve(t, rank=i) for i, t in enumerate(trials, 1)]
        last = self.options.rungs.epochs[-1]
        finalists = [t for t in trials if t.epochs == last and t.status == "ok"]
        chosen = self._choose(finalists[0]) if finalists else None
        grid_finalist = self._plain_sgd_finalist(trials)
        plain = [t for t in trials if t.config.plain_sgd and t.status == "ok"]
        data = load_data(self.data, "float32")
        from analyses.studies.search.figures import plot_by_setting, plot_ladder

        rungs = self.options.rungs
        figures = plot_ladder(trials, rungs.epochs, folder) + plot_by_setting(trials, folder)
        atomic_write_text(folder / "table.md", markdown_table(trials))
        atomic_write_text(folder / "table.csv", csv_table(trials))
        kept = {t.name for t in finalists}
        self._drop_stale_checkpoints(kept | ({grid_finalist.name} if grid_finalist else set()))
        return SearchSummary(
            dataset=self.data.label,
            dataset_sizes=data.sizes,
            base=self.options.grid[0] if self.options.grid else self.options.configs[0],
            rung_epochs=rungs.epochs,
            eta=rungs.eta,
            rung_sizes=tuple(len(self.halving.entrants(k)) for k in range(len(rungs.epochs))),
            seed=self.options.seed,
            n_grid=len(self.grid),
            n_sampled=len(self.configs) - len(self.grid),
            space=space_text(self.options.seed)
            if self.options.sampled_from_space
            else self.options.sampled_note,
            selection=SELECTION,
            trials=tuple(trials),
            chosen=chosen,
            best_plain_sgd=plain[0].name if plain else None,
            plain_sgd_finalist=grid_finalist,
            epochs_trained=sum(t.epochs for t in trials)
            + (len(self.continued.epochs) if isinstance(self.continued, SegmentResult) else 0),
            epochs_without_halving=len(trials) * last,
            runs_resumed=sum(1 for (_, k), s in self.segments.items() if k > 0 and s.resumed),
            figures=tuple(figures),
            machine=machine_info(),
        )
