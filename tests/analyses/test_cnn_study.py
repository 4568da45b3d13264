"""The CNN study through the pipeline on tiny data: the screening and the comparison
write their results and figures, a rerun reuses every run, the same options give the
same choice and curves bit for bit, the staged plan's choice does not depend on the
order results arrive in, the MLP reference reproduces the search's model, the summary
round-trips through JSON and the report section renders."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from analyses.datasets import DataSpec, EvalSubset, SplitSizes, quick_data
from analyses.pipeline.plan import StudyError
from analyses.pipeline.records import to_json
from analyses.pipeline.store import ResultStore, StoredRun
from analyses.pipeline.study import Study
from analyses.pipeline.tasks import Failure, RunContext
from analyses.pipeline.timings import PipelineReport
from analyses.report.markup import Document
from analyses.studies.artifacts import ChosenMlp
from analyses.studies.cnn import (
    CnnOptions,
    CnnRun,
    CnnRunResult,
    CnnStudy,
    CnnSummary,
    TrainConfig,
)
from analyses.studies.cnn import section as cnn_report
from analyses.studies.cnn.device import resolve_device
from analyses.studies.cnn.models import DEFAULT_BLOCKS, QUICK_BLOCKS, count_params
from analyses.studies.cnn.options import Technique
from analyses.studies.cnn.plan import CnnPlan
from analyses.studies.cnn.runs import Curves
from analyses.studies.cnn.summary import FIGURES
from tests.analyses.local import run_local
from tests.analyses.search_doubles import TINY_MLP, ChosenSummary, FakeSearch

DATA = DataSpec("synthetic", 300, 100)
OPTIONS = CnnOptions(
    blocks=QUICK_BLOCKS,
    train=TrainConfig(batch_size=64),
    epochs=2,
    seeds=(0, 1),
    device="cpu",
    techniques=(
        Technique("smoothing", "label smoothing 0.1", label_smoothing=0.1),
        Technique("shifts", "random shifts of up to 1 pixel", shift=1),
        Technique("both", "shifts and smoothing", shift=1, label_smoothing=0.1),
    ),
)


def run(out: Path, options: CnnOptions = OPTIONS, data: DataSpec = DATA) -> PipelineReport:
    studies: list[Study[Any]] = [FakeSearch(data), CnnStudy(data, options)]
    report = run_local(out, studies)
    assert report.errors == {}
    return report


def summary_of(report: PipelineReport) -> CnnSummary:
    s = report.summaries["cnn"]
    assert isinstance(s, CnnSummary)
    return s


def curves(s: CnnSummary) -> dict[str, Any]:
    return {v.name: [to_json(r.result) for r in v.runs] for v in s.variants}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PipelineReport]:
    out = tmp_path_factory.mktemp("cnn")
    return out, run(out)


def test_the_study_writes_its_results_and_figures(first: tuple[Path, PipelineReport]) -> None:
    out, report = first
    s = summary_of(report)
    folder = out / "cnn"
    n_techniques = len(OPTIONS.techniques)
    # the screening, vanilla at every seed, the chosen technique at the other seed (the
    # MLP's curves come with the artifact: nothing is retrained)
    assert report.timings["cnn"].computed == n_techniques + 2 + 1
    assert len(list((folder / "runs").glob("*.json"))) == n_techniques + 3
    for name in FIGURES:
        assert (folder / f"{name}.svg").stat().st_size > 1000
    assert set(s.figures) == {f"{n}.svg" for n in FIGURES}
    table = (folder / "table.md").read_text()
    assert table.count("\n") == 2 + 3 and f"| CNN {s.chosen.name} | " in table
    assert [v.name for v in s.variants] == ["vanilla", s.chosen.name]
    assert s.vanilla.spec.dropout == 0 and s.vanilla.train == OPTIONS.train
    assert s.device == "cpu" and s.threads == 1 and s.seeds == (0, 1) and s.epochs == 2
    assert s.dataset_sizes == SplitSizes(300, 100, 100)
    assert s.train_measured_on == "all 300 training samples"
    for v in s.variants:
        assert v.n_params == s.cnn_params == count_params(v.spec)
        assert sum(layer.params for layer in v.layers) == v.n_params
        assert v.seeds == (0, 1)
        for r in v.runs:
            assert r.result.n_params == v.n_params and r.result.threads == 1
            c = r.result.curves
            assert c.epoch == (1, 2)
            assert all(0.0 <= e <= 1.0 for e in c.train_error + c.valid_error)
            assert c.valid_loss[r.early_stop_epoch - 1] == min(c.valid_loss)
        mean = [sum(r.result.curves.valid_error[e] for r in v.runs) / 2 for e in range(2)]
        assert v.aggregate.valid_error.mean == pytest.approx(mean)
        assert v.aggregate.final_valid_accuracy == pytest.approx(1 - mean[-1])
    # the CNN matches the MLP's size; the convolutions cannot fit it closer than this
    assert abs(s.cnn_params - s.mlp.n_params) <= (128 + 1 + 10) / 2
    assert s.param_ratio == s.cnn_params / s.mlp.n_params
    # The study learns something even on 300 samples: the loss falls below ln(10).
    assert s.vanilla.aggregate.train_loss.mean[-1] < 2.302
    assert "cores" in json.loads((folder / "summary.json").read_text())["machine"]


def test_the_screening_ranks_every_technique_and_the_best_is_chosen(
    first: tuple[Path, PipelineReport],
) -> None:
    _, report = first
    s = summary_of(report)
    assert [x.technique for x in s.screening] == list(OPTIONS.techniques)
    assert sorted(x.rank for x in s.screening if x.rank is not None) == [1, 2, 3]
    best = min(
        s.screening,
        key=lambda x: (
            (x.result.curves.valid_error[-1], x.result.curves.valid_loss[-1])
            if x.result is not None
            else (2.0, 0.0)
        ),
    )
    assert best.rank == 1 and s.chosen.name == best.technique.name
    # the chosen technique's screening run is its first seed's run, not trained twice
    assert s.chosen.runs[0].seed == s.screening_seed == 0
    assert s.chosen.runs[0].result == best.result
    technique = best.technique
    assert s.chosen.spec.dropout == technique.dropout
    assert s.chosen.train.shift == technique.shift
    assert s.chosen.train.weight_decay == technique.weight_decay
    gain = s.vanilla.aggregate.final_valid_error - s.chosen.aggregate.final_valid_error
    assert s.verdict.gain == gain and s.verdict.technique == s.chosen.name
    assert s.verdict.beyond_noise == (gain > 2 * s.verdict.noise)


def test_the_mlp_reference_is_the_searchs_model(first: tuple[Path, PipelineReport]) -> None:
    _, report = first
    s = summary_of(report)
    stand_in = report.summaries["fake_search"]
    assert isinstance(stand_in, ChosenSummary)
    chosen = stand_in.chosen
    assert isinstance(chosen, ChosenMlp)
    assert s.mlp.curves.valid_error == tuple(1.0 - a for a in chosen.val_accuracy)
    assert s.mlp.curves.valid_loss == chosen.val_loss
    assert s.mlp.curves.train_loss == chosen.train_loss
    assert s.mlp.curves.train_error == chosen.train_error
    assert s.mlp.config == TINY_MLP and s.mlp.sizes == (784, 32, 16, 10)
    assert s.mlp.test_error == pytest.approx(1 - chosen.test_accuracy)
    assert len(s.mlp.curves.train_loss) == TINY_MLP.epochs


def test_a_rerun_reuses_every_run_and_writes_the_same_summary(
    first: tuple[Path, PipelineReport],
) -> None:
    out, _ = first
    before = (out / "cnn" / "summary.json").read_bytes()
    again = run(out)
    assert (
        again.timings["cnn"].computed == 0
        and again.timings["cnn"].reused == len(OPTIONS.techniques) + 3
    )
    assert (out / "cnn" / "summary.json").read_bytes() == before


def test_the_same_options_give_the_same_choice_and_curves_bit_for_bit(
    first: tuple[Path, PipelineReport], tmp_path: Path
) -> None:
    _, report = first
    other = run(tmp_path / "same")
    a, b = summary_of(report), summary_of(other)
    assert a.screening == b.screening and a.variants == b.variants and a.mlp == b.mlp
    for v in a.variants:
        assert v.runs[0].result.curves != v.runs[1].result.curves  # seeds differ


def test_the_summary_round_trips_through_json(first: tuple[Path, PipelineReport]) -> None:
    out, report = first
    s = summary_of(report)
    assert CnnSummary.from_json(json.loads(json.dumps(s.to_json()))) == s
    stored = ResultStore(out).read_summary("cnn", CnnSummary)
    assert stored == s


def test_no_absolute_path_in_the_summary_or_the_comments(
    first: tuple[Path, PipelineReport],
) -> None:
    out, report = first
    s = summary_of(report)
    text = (out / "cnn" / "summary.json").read_text()
    assert str(out) not in text and "/tmp" not in text
    assert "seconds" not in text
    for line in cnn_report.comments(s):
        assert "/" not in line.replace("n/a", "")


def test_the_report_section_renders(first: tuple[Path, PipelineReport]) -> None:
    out, report = first
    s = summary_of(report)
    doc = Document(out)
    cnn_report.section(doc, s, out / "cnn")
    text = doc.source()
    assert "<tab-cnn-epochs>" in text and 'image("cnn/cnn_errors.svg"' in text
    rows = cnn_report.headline(s)
    assert [r[0] for r in rows] == [
        "CNN vanilla, validation accuracy",
        f"CNN {s.chosen.name}, validation accuracy",
        f"CNN regularization: {s.chosen.name} against vanilla",
    ]
    assert all(len(r) == 3 for r in rows)
    assert ("beyond noise" in rows[2][2]) == s.verdict.beyond_noise
    notes = " ".join(cnn_report.comments(s))
    assert "twice the larger sd" in notes
    assert f"{s.chosen.name} is chosen" in notes


def test_a_cnn_that_cannot_match_the_mlp_is_a_study_error(tmp_path: Path) -> None:
    chosen = ChosenMlp(
        config=TINY_MLP,
        n_params=1_000,
        params_file="x.npz",
        params_sha256="0",
        val_accuracy=(0.5, 0.6),
        val_loss=(1.0, 0.9),
        train_loss=(1.0, 0.8),
        train_error=(0.5, 0.4),
        eval_subset=EvalSubset(),
        test_accuracy=0.6,
        test_loss=0.9,
    )
    plan = CnnPlan(DATA, attrs.evolve(OPTIONS, blocks=DEFAULT_BLOCKS), chosen, "cpu")
    assert not plan.ready() and plan.done()
    with pytest.raises(StudyError, match="matches the MLP's size"):
        plan.finish(tmp_path)


def test_a_failed_run_fails_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: CnnRun, ctx: RunContext) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(CnnRun, "run", broken)
    studies: list[Study[Any]] = [FakeSearch(DATA), CnnStudy(DATA, OPTIONS)]
    report = run_local(tmp_path, studies)
    assert "cnn" in report.errors and "out of memory" in report.errors["cnn"]


def test_the_run_key_names_everything_the_result_depends_on() -> None:
    from analyses.studies.cnn.models import match_params

    spec = match_params(QUICK_BLOCKS, 20_000)
    task = CnnRun(DATA, spec, TrainConfig(), 0, 2, "cpu", EvalSubset(), variant="vanilla")
    key = task.key()
    for field in (
        "data",
        "spec",
        "train",
        "seed",
        "epochs",
        "device",
        "threads",
        "version",
        "eval_subset",
    ):
        assert field in key
    assert key["threads"] == 1
    assert attrs.evolve(task, variant="other").key() == key
    assert attrs.evolve(task, seed=1).key() != key


def test_device_choice() -> None:
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        CnnOptions(device="tpu")  # type: ignore[arg-type]  # a wrong name on purpose


@pytest.mark.real_data
def test_quick_options_on_real_mnist(tmp_path: Path, real_mnist: Any) -> None:
    s = summary_of(
        run(tmp_path, attrs.evolve(CnnOptions.quick(), seeds=(0,), epochs=1), quick_data())
    )
    assert s.dataset_sizes.train == 600 and s.epochs == 1


# ------------------------------------------------------------------- the staged plan


def _fake_result(final_error: float, final_loss: float) -> CnnRunResult:
    return CnnRunResult(
        curves=Curves(
            epoch=(1, 2),
            train_loss=(0.5, 0.4),
            train_error=(0.1, 0.05),
            valid_loss=(0.6, final_loss),
            valid_error=(0.2, final_error),
        ),
        lr=(2e-3, 1.5e-3),
        n_params=1,
        test_loss=0.5,
        test_error=0.1,
        device="cpu",
        threads=1,
    )


NAMES = [t.name for t in OPTIONS.techniques]
SCREENED = {
    NAMES[0]: _fake_result(0.30, 0.9),
    NAMES[1]: _fake_result(0.25, 0.8),  # ties with the third on error, lower loss: chosen
    NAMES[2]: _fake_result(0.25, 0.85),
}


def _ok(result: CnnRunResult) -> StoredRun[CnnRunResult]:
    return StoredRun(result=result, failure=None, wall_seconds=0.0, cpu_seconds=0.0)


def _runs(tasks: Sequence[CnnRun]) -> list[tuple[str, int]]:
    """(variant, seed) of the CNN runs ``tasks``."""
    return [(t.variant, t.seed) for t in tasks]


@pytest.mark.parametrize("order", list(itertools.permutations(SCREENED)))
def test_the_second_stage_waits_for_the_screening_and_not_on_its_order(
    order: tuple[str, ...], first: tuple[Path, PipelineReport]
) -> None:
    _, report = first
    stand_in = report.summaries["fake_search"]
    assert isinstance(stand_in, ChosenSummary)
    plan = CnnPlan(DATA, OPTIONS, stand_in.chosen, "cpu")
    stage1 = list(plan.ready())
    cnn = list(stage1)
    assert [(t.variant, t.seed) for t in cnn] == [
        (NAMES[0], 0),
        (NAMES[1], 0),
        (NAMES[2], 0),
        ("vanilla", 0),
        ("vanilla", 1),
    ]
    assert all(t.priority() == 0 for t in cnn)
    assert CnnStudy.priority == 10  # between the search (0) and the finite differences (20)
    by_name = {t.variant: t for t in cnn if t.seed == 0}
    # vanilla first: nothing new until the screening is in
    first_stage = [t for t in cnn if t.variant == "vanilla"]
    for t in first_stage:
        plan.record(t, _ok(_fake_result(0.3, 1.0)))
    assert not plan.ready() and not plan.done()
    for name in order[:-1]:
        plan.record(by_name[name], _ok(SCREENED[name]))
        assert not plan.ready() and not plan.done()
    plan.record(by_name[order[-1]], _ok(SCREENED[order[-1]]))
    stage2 = plan.ready()
    assert _runs(stage2) == [(NAMES[1], 1)] and len(stage2) == 1
    assert not plan.ready() and not plan.done()
    plan.record(stage2[0], _ok(_fake_result(0.2, 0.7)))
    assert plan.done()


def test_a_failed_screening_run_is_not_chosen(first: tuple[Path, PipelineReport]) -> None:
    _, report = first
    stand_in = report.summaries["fake_search"]
    assert isinstance(stand_in, ChosenSummary)
    plan = CnnPlan(DATA, OPTIONS, stand_in.chosen, "cpu")
    for t in plan.ready():
        if t.variant == NAMES[1]:
            plan.record(t, StoredRun(None, Failure("boom"), 0.0, 0.0))
        elif t.variant in SCREENED:
            plan.record(t, _ok(SCREENED[t.variant]))
        else:
            plan.record(t, _ok(_fake_result(0.3, 1.0)))
    assert _runs(plan.ready()) == [(NAMES[2], 1)]
