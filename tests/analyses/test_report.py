"""The main job end to end on a small subset of real MNIST, and the report builder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analyses import main as main_job
from analyses import report


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every study run with --quick on the first few hundred MNIST samples, then the PDF."""
    data = pytest.importorskip("fmlp.data")
    try:
        data.load("mnist", split=("test",))
    except data.DataNotFoundError:
        pytest.skip("the real MNIST is not in the cache: python -m fmlp.data fetch mnist")
    out = tmp_path_factory.mktemp("results")
    assert main_job.main(["--out", str(out), "--quick", "--quiet"]) == 0
    return out


def pdf_text(path: Path) -> tuple[int, str]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


@pytest.mark.real_data
def test_quick_main_job_writes_a_report_with_every_section(quick_results: Path) -> None:
    pdf = quick_results / "report.pdf"
    assert pdf.exists()
    pages, text = pdf_text(pdf)
    _, expected_pages = report.build(quick_results)
    assert pages == expected_pages >= 6  # title + four sections, figures spill over
    for heading in (
        "Summary",
        "1. Initialization",
        "2. Hyper-parameter search",
        "3. Finite-difference gradients",
        "4. A convolutional network",
        "Comments",
    ):
        assert heading in text, heading
    timings = json.loads((quick_results / "main" / "timings.json").read_text())
    assert set(timings) == {"init_study", "hparam_search", "gradcheck_study", "cnn_study", "report"}


@pytest.mark.real_data
def test_report_numbers_come_from_the_results(quick_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    shutil.copytree(quick_results, out)
    summary_path = out / "hparam_search" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["best"]["test_accuracy"] = 0.123456
    summary_path.write_text(json.dumps(summary))
    path, _ = report.build(out)
    _, text = pdf_text(path)
    assert "12.35%" in text


@pytest.mark.real_data
def test_rebuilding_gives_identical_bytes(quick_results: Path) -> None:
    first = (quick_results / "report.pdf").read_bytes()
    report.build(quick_results)
    assert (quick_results / "report.pdf").read_bytes() == first


@pytest.mark.real_data
def test_rerunning_the_main_job_reuses_every_run(
    quick_results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fmlp

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(fmlp, "fit", no_training)
    before = (quick_results / "report.pdf").read_bytes()
    assert main_job.main(["--out", str(quick_results), "--quick", "--quiet"]) == 0
    assert (quick_results / "report.pdf").read_bytes() == before


def test_missing_results_name_the_study_and_its_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(report.MissingResults, match=r"init_study.*python -m analyses\.init_study"):
        report.build(tmp_path)
    assert report.main(["--out", str(tmp_path)]) == 2
    assert "init_study" in capsys.readouterr().err


def _summaries(
    invocations: list[dict[str, object]], runs_total: float = 100.0
) -> dict[str, dict[str, object]]:
    return {
        "init_study": {"runs": {"zero": {"wall_seconds": 10.0}, "glorot": {"wall_seconds": 20.0}}},
        "hparam_search": {
            "wall_seconds": {"runs_total": runs_total},
            "executor": {"workers": 4},
            "invocations": invocations,
        },
        "gradcheck_study": {"runs_wall_seconds": 3.0},
        "cnn_study": {"wall_seconds": {"runs_total": 500.0, "this_invocation": 1.0}},
    }


def test_compute_seconds_counts_the_search_sweeps_that_computed_runs() -> None:
    ss = _summaries(
        [
            {"computed": 20, "sweep_seconds": 40.0, "executor": {"workers": 2}},
            {
                "computed": 0,
                "sweep_seconds": 999.0,
                "executor": {"workers": 1},
            },  # a reuse: adds nothing
            {"computed": 8, "sweep_seconds": 15.0, "executor": {"workers": 2}},
        ]
    )
    secs = report.compute_seconds(ss)
    assert secs == {
        "initialization": 30.0,
        "hyper-parameter search": 55.0,
        "finite differences": 3.0,
        "CNN": 500.0,
    }
    assert (
        report.search_parallelism(ss["hparam_search"])
        == " (the search ran 2 configurations at a time)"
    )


def test_compute_seconds_without_a_sweep_log_divides_the_runs_by_the_workers() -> None:
    ss = _summaries([], runs_total=100.0)
    assert report.compute_seconds(ss)["hyper-parameter search"] == 25.0
    assert report.search_parallelism(ss["hparam_search"]) == ""
    assert report.duration(4.0) == "4 s" and report.duration(612.0) == "10.2 min"
