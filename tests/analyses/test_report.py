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
    for heading in ("Summary", "1. Initialization", "2. Hyper-parameter search",
                    "3. Finite-difference gradients", "4. A convolutional network", "Comments"):
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
def test_rerunning_the_main_job_reuses_every_run(quick_results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fmlp

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(fmlp, "fit", no_training)
    before = (quick_results / "report.pdf").read_bytes()
    assert main_job.main(["--out", str(quick_results), "--quick", "--quiet"]) == 0
    assert (quick_results / "report.pdf").read_bytes() == before


def test_missing_results_name_the_study_and_its_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(report.MissingResults, match=r"init_study.*python -m analyses\.init_study"):
        report.build(tmp_path)
    assert report.main(["--out", str(tmp_path)]) == 2
    assert "init_study" in capsys.readouterr().err
