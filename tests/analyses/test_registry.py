"""One registry: a study of this test's own (how fast ``fmlp.evaluate`` runs, by chunk
size), declared with one entry and touching no other file, runs through the main job's
command line, the driver and the report, and is gone once removed.

The study is written as every study is: its options, its runs with their typed result,
a plan on :class:`StudyPlan`, a summary, a section of the report and its entry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import ClassVar, Final

import attrs
import numpy as np
import pytest

import fmlp
from analyses.datasets import DataSpec, load_data
from analyses.machine import MachineInfo, machine_info
from analyses.main import main, parser
from analyses.pipeline.plan import StudyPlan
from analyses.pipeline.records import JsonRecord
from analyses.pipeline.study import AnyKey, Artifacts, ArtifactValues
from analyses.pipeline.tasks import KeyedTask, RunContext
from analyses.report.markup import Document
from analyses.report.section import Section
from analyses.studies import SuiteOptions, entries, entry, registered, study_names, suite
from analyses.studies.registry import declare

NAME: Final = "throughput"

# ------------------------------------------------------------------ options


@attrs.frozen
class ThroughputOptions:
    """Chunk sizes of ``fmlp.evaluate`` to time, and how many times each."""

    chunks: tuple[int, ...] = (256, 2048)
    repeats: int = 3

    @classmethod
    def full(cls) -> ThroughputOptions:
        return cls()

    @classmethod
    def quick(cls) -> ThroughputOptions:
        return cls(repeats=1)


# ------------------------------------------------------------------ runs


@attrs.frozen
class Throughput:
    chunk: int
    samples: int
    samples_per_second: float
    accuracy: float


@attrs.frozen
class ThroughputRun(KeyedTask):
    """Time ``fmlp.evaluate`` on the validation split at one chunk size."""

    study: ClassVar[str] = NAME
    torch: ClassVar[bool] = False
    result_type: ClassVar[type[Throughput]] = Throughput
    KIND: ClassVar[str] = "throughput"
    VERSION: ClassVar[int] = 1

    data: DataSpec
    chunk: int
    repeats: int

    def label(self) -> str:
        return f"throughput chunk {self.chunk}"

    def run(self, ctx: RunContext) -> Throughput:
        d = load_data(self.data, "float32")
        params = fmlp.init((784, 64, 10), scheme="glorot", seed=0, dtype=np.float32)
        ev = fmlp.evaluate(params, d.x_valid, d.y_valid, chunk=self.chunk)
        best = float("inf")
        for _ in range(self.repeats):
            start = time.perf_counter()
            fmlp.evaluate(params, d.x_valid, d.y_valid, chunk=self.chunk)
            best = min(best, time.perf_counter() - start)
        n = len(d.y_valid)
        return Throughput(self.chunk, n, n / max(best, 1e-9), ev.accuracy)


# ------------------------------------------------------------------ summary


@attrs.frozen
class ThroughputSummary(JsonRecord):
    SCHEMA: ClassVar[int] = 1

    dataset: str
    runs: tuple[Throughput, ...]
    machine: MachineInfo


# ------------------------------------------------------------------ plan


class ThroughputPlan(StudyPlan[ThroughputRun, Throughput, ThroughputSummary]):
    def __init__(self, data: DataSpec, options: ThroughputOptions) -> None:
        self.data = data
        self.tasks = [ThroughputRun(data, c, options.repeats) for c in options.chunks]
        super().__init__(self.tasks)

    def finish(self, folder: Path) -> ThroughputSummary:
        error = self.failed()
        if error is not None:
            raise error
        runs = tuple(self.results[t] for t in self.tasks)
        return ThroughputSummary(self.data.label, runs, machine_info())


# ------------------------------------------------------------------ section


def render(doc: Document, s: ThroughputSummary, folder: Path) -> None:
    doc.paragraph(f"fmlp.evaluate on {s.runs[0].samples} samples, by chunk size.")
    doc.table(
        ["chunk", "samples/s"],
        [[str(r.chunk), f"{r.samples_per_second:,.0f}"] for r in s.runs],
        caption="How fast fmlp.evaluate runs.",
        label="tab-throughput",
    )


def headline(s: ThroughputSummary) -> list[list[str]]:
    best = max(s.runs, key=lambda r: r.samples_per_second)
    return [["evaluation throughput", f"{best.samples_per_second:,.0f}/s", f"chunk {best.chunk}"]]


SECTION: Final = Section(
    "Evaluation throughput", render, headline, lambda s: s.machine, lambda s: s.dataset
)


# ------------------------------------------------------------------ study


@attrs.frozen
class ThroughputStudy:
    data: DataSpec
    options: ThroughputOptions = attrs.field(factory=ThroughputOptions)

    name: ClassVar[str] = NAME
    priority: ClassVar[int] = 40
    needs: ClassVar[tuple[AnyKey, ...]] = ()
    provides: ClassVar[tuple[AnyKey, ...]] = ()
    summary_type: ClassVar[type[ThroughputSummary]] = ThroughputSummary

    def plan(self, artifacts: Artifacts, ctx: RunContext) -> ThroughputPlan:
        return ThroughputPlan(self.data, self.options)

    def artifacts(self, summary: ThroughputSummary) -> ArtifactValues:
        return {}


ENTRY: Final = declare(
    ThroughputStudy,
    ThroughputOptions,
    full=ThroughputOptions.full,
    quick=ThroughputOptions.quick,
    section=SECTION,
)


# ------------------------------------------------------------------ tests


def test_a_registered_study_runs_through_the_cli_the_driver_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    before = study_names()
    with registered(ENTRY):
        assert study_names() == (*before, NAME)
        assert entry(NAME) is ENTRY
        # the suite, full or quick, makes it with its own options
        assert [s.name for s in suite(SuiteOptions.quick("synthetic"))][-1] == NAME
        quick = SuiteOptions.quick("synthetic")
        assert quick.of(ENTRY) == ThroughputOptions.quick()
        args = ["--out", str(out), "--quick", "--dataset", "synthetic", "--only", NAME]
        code = main([*args, "--executor", "local", "--quiet", "--no-timings"])
        assert code == 0, capsys.readouterr().err
        summary = ThroughputSummary.from_json(json.loads((out / NAME / "summary.json").read_text()))
        assert [r.chunk for r in summary.runs] == [256, 2048]
        assert all(r.samples_per_second > 0 for r in summary.runs)
        source = (out / "report.typ").read_text()
        # its section, numbered among the others, its table, and its row on the title page
        assert "= Evaluation throughput <sec-throughput>" in source
        assert "<tab-throughput>" in source
        assert "#link(<sec-throughput>)[evaluation throughput]" in source
        # the other studies did not run: their sections say so
        assert source.count("This study has no results") == len(before)
        assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert study_names() == before
    assert NAME not in [e.name for e in entries()]
    with pytest.raises(SystemExit):
        parser().parse_args(["--only", NAME])
    assert "invalid choice" in capsys.readouterr().err


def test_a_study_cannot_be_registered_twice_and_options_are_checked() -> None:
    with (
        registered(ENTRY),
        pytest.raises(ValueError, match="registered already"),
        registered(ENTRY),
    ):
        pass
    with pytest.raises(ValueError, match="unknown study 'nope': expected one of init"):
        entry("nope")
    with pytest.raises(TypeError, match="takes ThroughputOptions, got int"):
        ENTRY.check(3)
