"""The main job on Fashion-MNIST, and a job whose study fails: each still writes a
report, titled with the dataset it ran on, whose sections say what could not be
answered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp
from fmlp import checkpoint

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

MAIN = [sys.executable, "-m", "analyses.main", "--quick", "--quiet", "--no-timings"]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick job on Fashion-MNIST (skipped where Debian's files are not installed)."""
    from fmlp import data as fdata

    try:
        fdata.load("fashion-mnist", dtype=np.float32)
    except fdata.DataNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST is not installed ({exc})")
    out = tmp_path_factory.mktemp("fashion") / "results"
    done = subprocess.run(
        [*MAIN, "--dataset", "fashion-mnist", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return out


def _section(source: str, label: str) -> str:
    """A top-level section of the Typst source, from its heading to the next one."""
    start = source.index(f" <{label}>\n")
    end = source.find("\n= ", start)
    return source[start : end if end >= 0 else len(source)]


def test_the_quick_job_on_fashion_mnist_writes_a_report_titled_with_it(fashion: Path) -> None:
    source = (fashion / "report.typ").read_text()
    assert "learns Fashion-MNIST" in source
    assert (fashion / "report.pdf").stat().st_size > 10_000
    gradcheck = json.loads((fashion / "gradcheck" / "summary.json").read_text())
    settings = gradcheck["settings"]
    # where the first elements of theta are dead, the section says so and names the ones used
    if settings["dead"] is not None:
        assert settings["elements"] and "exactly 0" in _section(source, "sec-gradcheck")
    search = json.loads((fashion / "search" / "summary.json").read_text())
    finalist = search["plain_sgd_finalist"]
    assert finalist is not None and len(finalist["val_accuracy"]) == search["rung_epochs"][-1]
    # the title page and the search's section give it beside the chosen model
    title = source[: source.index("#outline")]
    assert "the assignment's setting: plain SGD, r(valid)" in title
    assert "<tab-search-sgd>" in _section(source, "sec-search")


def test_a_study_that_fails_still_leaves_a_report_and_the_job_exits_1(
    fashion: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    shutil.copytree(fashion, out)
    shutil.rmtree(out / "gradcheck")
    # the search's chosen model on disk is no longer the one its summary names
    params_file = out / "search" / "chosen_params.npz"
    params = checkpoint.load(params_file)
    checkpoint.save(params_file, fmlp.tree_map(lambda a: a + 1, params))
    done = subprocess.run(
        [*MAIN, "--dataset", "fashion-mnist", "--only", "gradcheck", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stderr
    assert "gradcheck" in done.stderr
    error: Any = json.loads((out / "gradcheck" / "error.json").read_text())["error"]
    assert "rerun the search" in error
    source = (out / "report.typ").read_text()
    section = _section(source, "sec-gradcheck")
    assert "This study failed" in section and "rerun the search" in section
    assert "No results" in source[: source.index("#outline")]
    assert (out / "report.pdf").is_file()
