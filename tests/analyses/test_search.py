"""The hyper-parameter search: its space, a paused and resumed run equal to an
uninterrupted one bit for bit, and a quick search through the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fmlp
from analyses.datasets import DataSpec, load_data
from analyses.mlp import MlpConfig, init_params, make_optimizer
from analyses.studies.search import (
    SearchOptions,
    SearchStudy,
    SearchSummary,
    train_segment,
)
from analyses.studies.search.halving import Rungs
from analyses.studies.search.runs import checkpoint_file
from fmlp import checkpoint
from tests.analyses.local import run_local

DATA = DataSpec("synthetic", 240, 80)


def _state(out: Path, config: MlpConfig, epoch: int) -> fmlp.TrainState[object]:
    like = fmlp.init_state(
        init_params(config), make_optimizer(config, len(load_data(DATA, config.dtype).y_train))
    )
    return checkpoint.load_state(out / checkpoint_file(DATA, config, epoch), like=like)


@pytest.mark.parametrize(
    "config",
    [
        MlpConfig(hidden=(32, 16), lr=0.2, schedule="cosine", batch_size=32, epochs=4),
        MlpConfig(
            hidden=(32, 16), optimizer="nesterov", lr=0.05, schedule="step", batch_size=16, epochs=4
        ),
        MlpConfig(
            hidden=(24, 24),
            activation="tanh",
            optimizer="adamw",
            lr=0.003,
            weight_decay=0.05,
            schedule="cosine",
            batch_size=32,
            epochs=4,
        ),
        MlpConfig(
            hidden=(24, 24),
            optimizer="adam",
            lr=0.003,
            weight_decay=1e-3,
            epochs=4,
            dtype="float64",
        ),
    ],
    ids=["sgd-cosine", "nesterov-step", "adamw-cosine", "adam-l2-f64"],
)
def test_a_paused_and_resumed_run_equals_the_uninterrupted_one_bit_for_bit(
    config: MlpConfig, tmp_path: Path
) -> None:
    whole = train_segment(DATA, config, 0, 4, tmp_path / "whole")
    a = train_segment(DATA, config, 0, 1, tmp_path / "paused")
    b = train_segment(DATA, config, 1, 3, tmp_path / "paused")
    c = train_segment(DATA, config, 3, 4, tmp_path / "paused")
    assert b.resumed and c.resumed
    assert a.val_accuracy + b.val_accuracy + c.val_accuracy == whole.val_accuracy
    assert a.val_loss + b.val_loss + c.val_loss == whole.val_loss
    assert a.running_loss + b.running_loss + c.running_loss == whole.running_loss
    assert c.params_sha256 == whole.params_sha256
    s1, s2 = _state(tmp_path / "whole", config, 4), _state(tmp_path / "paused", config, 4)
    assert s1.step == s2.step
    for x, y in zip(fmlp.tree_leaves(s1), fmlp.tree_leaves(s2), strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


def test_a_missing_or_corrupt_checkpoint_is_retrained_to_the_same_state(tmp_path: Path) -> None:
    config = MlpConfig(hidden=(32, 16), optimizer="momentum", lr=0.05, schedule="cosine", epochs=3)
    whole = train_segment(DATA, config, 0, 3, tmp_path / "whole")
    out = tmp_path / "paused"
    train_segment(DATA, config, 0, 1, out)
    path = out / checkpoint_file(DATA, config, 1)
    path.write_bytes(path.read_bytes()[:100])  # cut short by a crash
    rest = train_segment(DATA, config, 1, 3, out)
    assert not rest.resumed
    assert rest.params_sha256 == whole.params_sha256
    assert rest.val_accuracy == whole.val_accuracy[1:]


def test_a_diverging_configuration_is_marked_not_raised(tmp_path: Path) -> None:
    config = MlpConfig(hidden=(32, 16), lr=1e4, epochs=2)
    result = train_segment(DATA, config, 0, 1, tmp_path)
    assert result.status == "diverged" and result.error


def test_the_full_space_is_wide_distinct_in_range_and_drawn_from_its_seed() -> None:
    options = SearchOptions.full()
    configs = options.configs
    assert len(configs) >= 48 and len(set(configs)) == len(configs)
    assert all(c.in_range and c.epochs == 10 and c.init == "glorot" for c in configs)
    for field in ("hidden", "activation", "optimizer", "schedule", "batch_size"):
        assert len({getattr(c, field) for c in configs}) >= 2, field
    assert {c.optimizer for c in configs} >= {"sgd", "momentum", "nesterov", "adam", "adamw"}
    assert sum(c.plain_sgd for c in configs) >= 9
    assert SearchOptions.full().configs == configs
    assert SearchOptions.full(seed=1).configs != configs
    assert options.rungs.sizes(len(configs))[1] == len(configs) // 3


def test_options_refuse_what_the_search_cannot_do() -> None:
    small = MlpConfig(hidden=(64, 32))
    with pytest.raises(ValueError, match="needs two hidden layers and 500,000-1,000,000"):
        SearchOptions(grid=(small,), sampled=())
    with pytest.raises(ValueError, match="spans the last rung's 10 epochs"):
        SearchOptions(grid=(attrs.evolve(MlpConfig(hidden=(512, 512)), epochs=5),), sampled=())
    with pytest.raises(ValueError, match="no configurations"):
        SearchOptions(grid=(), sampled=())


def _quick_search(out: Path) -> SearchSummary:
    options = SearchOptions.quick()
    study = SearchStudy(DATA, options)
    report = run_local(out, [study])
    assert report.errors == {}
    summary = report.summaries["search"]
    assert isinstance(summary, SearchSummary)
    return summary


def test_a_quick_search_chooses_resumes_and_cleans_up(tmp_path: Path) -> None:
    s = _quick_search(tmp_path)
    n = len(SearchOptions.quick().configs)
    assert s.rung_sizes == (n, n // 3)
    assert len(s.trials) == n and [t.rank for t in s.trials] == list(range(1, n + 1))
    assert s.chosen is not None
    best = s.trials[0]
    assert best.epochs == 2 and best.promoted == (True, False)
    assert s.chosen.val_accuracy == best.val_accuracy
    f = s.plain_sgd_finalist
    assert f is not None and len(f.val_accuracy) == 2
    continued = 0 if f.stopped_at is None else 2 - f.stopped_at
    assert s.epochs_trained == n + n // 3 + continued and s.epochs_without_halving == 2 * n
    assert s.runs_resumed == n // 3
    saved = checkpoint.load(tmp_path / s.chosen.params_file)
    assert saved.sizes == best.config.sizes
    # only the finalists' last checkpoints are kept (the grid's finalist's among them)
    kept = sorted(p.name for p in (tmp_path / "search" / "checkpoints").rglob("*.npz"))
    assert kept == ["epoch-2.npz"] * (n // 3 + (f.stopped_at is not None))
    for name in ("table.md", "table.csv", "search_ladder.svg", "search_by_setting.svg"):
        assert (tmp_path / "search" / name).is_file()
    assert SearchSummary.from_json(s.to_json()).to_json() == s.to_json()
    again = _quick_search(tmp_path)
    assert again.to_json() == s.to_json()


def _search(out: Path, options: SearchOptions) -> SearchSummary:
    report = run_local(out, [SearchStudy(DATA, options)])
    assert report.errors == {}
    summary = report.summaries["search"]
    assert isinstance(summary, SearchSummary)
    return summary


SLOW_GRID: Final = tuple(
    MlpConfig(hidden=(24, 16), activation="sigmoid", lr=lr, batch_size=32, epochs=3)
    for lr in (0.001, 0.002, 0.004)
)
FAST_SAMPLE: Final = tuple(
    MlpConfig(hidden=(24, 16), optimizer="adam", lr=lr, schedule="cosine", batch_size=32, epochs=3)
    for lr in (0.003, 0.005, 0.01)
)


def test_the_grids_best_continues_to_the_last_rung_when_halving_stopped_it(
    tmp_path: Path,
) -> None:
    options = SearchOptions(
        grid=SLOW_GRID, sampled=FAST_SAMPLE, rungs=Rungs((1, 3), 3), check_range=False
    )
    s = _search(tmp_path, options)
    grid = [t for t in s.trials if t.source == "grid"]
    assert all(t.epochs == 1 for t in grid), "the slow grid must be stopped at the first rung"
    f = s.plain_sgd_finalist
    assert f is not None and f.status == "ok"
    assert f.name == grid[0].name and f.config.plain_sgd
    assert f.stopped_at == 1
    # its first epoch is the trial's; the continuation equals an uninterrupted run
    assert f.val_accuracy[:1] == grid[0].val_accuracy
    with threadpool_limits(limits=1):  # as every run of the pipeline
        whole = train_segment(DATA, f.config, 0, 3, tmp_path / "whole")
    assert f.val_accuracy == whole.val_accuracy and f.val_loss == whole.val_loss
    assert f.r_valid == whole.val_accuracy[-1]
    assert 0.0 <= f.test_accuracy <= 1.0 and np.isfinite(f.test_loss)
    # the continuation's epochs are counted, and its last checkpoint is kept
    assert s.epochs_trained == sum(t.epochs for t in s.trials) + 2
    kept = (tmp_path / "search" / "checkpoints" / f.name / "epoch-3.npz").is_file()
    assert kept
    # a rerun reads everything back
    assert _search(tmp_path, options).to_json() == s.to_json()


def test_the_grids_finalist_is_its_best_finisher_when_halving_kept_one(tmp_path: Path) -> None:
    options = SearchOptions(
        grid=FAST_SAMPLE[:1] + SLOW_GRID[:2],
        sampled=SLOW_GRID[2:],
        rungs=Rungs((1, 3), 3),
        check_range=False,
    )
    s = _search(tmp_path, options)
    f = s.plain_sgd_finalist
    # the grid's Adam configuration is not plain SGD, but it is the grid's (the grid is
    # what the options call it): the finalist is the best grid configuration
    best = next(t for t in s.trials if t.source == "grid")
    assert best.epochs == 3
    assert f is not None and f.stopped_at is None and f.name == best.name
    assert f.val_accuracy == best.val_accuracy and f.r_valid == best.r_valid
    assert s.epochs_trained == sum(t.epochs for t in s.trials)
