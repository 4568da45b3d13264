"""The initialization study on tiny synthetic data: result shapes, figures, the zero
initialization's symmetry, non-finite losses kept, determinism and resuming."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fmlp
from analyses import init_study
from analyses.common import ResultStore, StudyData, synthetic_data
from analyses.init_study import InitOptions

SIZES = (784, 32, 32, 10)


@pytest.fixture(scope="module")
def tiny() -> StudyData:
    return synthetic_data(200, 100, seed=1)


def small(**changes: Any) -> InitOptions:
    base = InitOptions(sizes=SIZES, lr=0.05, batch_size=32, epochs=2, n_diag=100)
    return attrs.evolve(base, **changes)


@pytest.fixture(scope="module")
def study(tiny: StudyData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("init")
    return out, init_study.run(tiny, out, small())


def _curves(summary: dict[str, Any]) -> dict[str, Any]:
    """Every run's results without timings or resume flags."""
    drop = {"seconds", "wall_seconds", "computed_now"}
    return {
        scheme: {
            k: ({kk: vv for kk, vv in v.items() if kk not in drop} if isinstance(v, dict) else v)
            for k, v in run.items()
            if k not in drop
        }
        for scheme, run in summary["runs"].items()
    }


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------- shapes


def test_result_shapes(study: tuple[Path, dict[str, Any]]) -> None:
    out, summary = study
    assert list(summary["runs"]) == ["zero", "normal", "glorot"]
    n_layers = len(SIZES) - 1
    for scheme, run in summary["runs"].items():
        curves = run["curves"]
        assert curves["epoch"] == [1, 2]
        for key in (
            "train_loss",
            "train_accuracy",
            "running_loss",
            "running_accuracy",
            "val_loss",
            "val_accuracy",
        ):
            assert len(curves[key]) == 2, (scheme, key)
            assert all(math.isfinite(v) for v in curves[key]), (scheme, key)
        diag = run["diagnostics"]
        assert diag["epoch"] == [0, 1, 2]
        for key in (
            "pre_activation_std",
            "grad_w_norm",
            "grad_b_norm",
            "change_w",
            "unit_spread_w",
        ):
            assert len(diag[key]) == 3 and all(len(row) == n_layers for row in diag[key]), (
                scheme,
                key,
            )
        assert all(len(row) == n_layers - 1 for row in diag["dead_fraction"])
        # at initialization nothing has moved yet
        assert diag["change_w"][0] == [0.0] * n_layers and diag["change_b"][0] == [0.0] * n_layers
        assert run["computed_now"] is True
    s = summary["settings"]
    assert s["n_params"] == fmlp.count_params(SIZES) == 26_506
    assert (s["lr"], s["batch_size"], s["epochs"], s["seed"], s["dtype"]) == (
        0.05,
        32,
        2,
        0,
        "float32",
    )
    assert s["dataset_sizes"] == {"train": 200, "valid": 100, "test": 100}
    assert [row["scheme"] for row in summary["table"]] == ["zero", "normal", "glorot"]
    assert "numpy" in summary["machine"]
    assert summary["runs_wall_seconds"] == pytest.approx(
        sum(r["wall_seconds"] for r in summary["runs"].values())
    )
    # the summary on disk is the one returned (NaN-safe comparison through JSON)
    on_disk = _read(out / "init_study" / "summary.json")
    assert (
        on_disk["runs"]["glorot"]["curves"]["train_loss"]
        == summary["runs"]["glorot"]["curves"]["train_loss"]
    )
    assert len(list((out / "init_study" / "runs").glob("*.json"))) == 3


def test_figures_written(study: tuple[Path, dict[str, Any]]) -> None:
    out, summary = study
    folder = out / "init_study"
    assert sorted(summary["figures"]) == sorted(
        ["init_loss.png", "init_loss.pdf", "init_diagnostics.png", "init_diagnostics.pdf"]
    )
    for name in summary["figures"]:
        data = (folder / name).read_bytes()
        assert data.startswith(b"\x89PNG" if name.endswith(".png") else b"%PDF"), name
        assert len(data) > 5000, name


def test_curves_agree_with_fit(tiny: StudyData, study: tuple[Path, dict[str, Any]]) -> None:
    """The end-of-epoch training loss is fmlp's own evaluation of the trained model."""
    _, summary = study
    opts = small()
    d = tiny.astype(np.float32)
    params0 = fmlp.init(SIZES, scheme="glorot", seed=0, dtype=np.float32)
    state, _ = fmlp.fit(params0, d.x_train, d.y_train, epochs=2, batch_size=32, lr=opts.lr, seed=0)
    ev = fmlp.evaluate(state.params, d.x_train, d.y_train)
    assert summary["runs"]["glorot"]["curves"]["train_loss"][-1] == ev.loss
    assert (
        summary["runs"]["glorot"]["initial"]["train_loss"]
        == fmlp.evaluate(params0, d.x_train, d.y_train).loss
    )


# ---------------------------------------------------------------- what explains it


def test_zero_init_symmetry_is_detected(study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = study
    zero = summary["runs"]["zero"]
    sym = zero["symmetry"]
    assert sym["hidden_units_identical"] is True and sym["max_hidden_unit_spread"] == 0.0
    assert sym["only_output_bias_moves"] is True
    assert sym["moved"] == {
        "w0": False,
        "b0": False,
        "w1": False,
        "b1": False,
        "w2": False,
        "b2": True,
    }
    diag = zero["diagnostics"]
    assert all(row == [1.0, 1.0] for row in diag["dead_fraction"])  # every ReLU sits at 0
    assert all(row[:-1] == [0.0, 0.0] for row in diag["grad_w_norm"])
    assert diag["change_b"][-1][-1] > 0
    # the zero model learns only the class frequencies: loss stays near log(10)
    assert all(abs(v - math.log(10)) < 0.1 for v in zero["curves"]["train_loss"])
    for scheme in ("normal", "glorot"):
        other = summary["runs"][scheme]["symmetry"]
        assert other["hidden_units_identical"] is False and other["only_output_bias_moves"] is False
        assert all(other["moved"].values())


def test_normal_init_has_huge_logits(study: tuple[Path, dict[str, Any]]) -> None:
    _, summary = study
    normal, glorot = summary["runs"]["normal"]["initial"], summary["runs"]["glorot"]["initial"]
    assert normal["logit_std"] > 50 * glorot["logit_std"]
    assert normal["logit_max_abs"] > 100
    assert normal["train_loss"] > 10 * glorot["train_loss"]
    assert summary["runs"]["zero"]["initial"]["logit_std"] == 0.0
    assert summary["runs"]["zero"]["initial"]["train_loss"] == pytest.approx(math.log(10))


def test_nonfinite_losses_are_kept(tiny: StudyData, tmp_path: Path) -> None:
    """A diverging setup keeps its NaN losses in the JSON and still gets its figures."""
    summary = init_study.run(tiny, tmp_path, small(schemes=("normal",), lr=1e4))
    run = summary["runs"]["normal"]
    assert run["nonfinite"]["train_loss"] == 2 and run["nonfinite"]["first_diverged_epoch"] == 1
    assert run["curves"]["diverged"] == [True, True]
    on_disk = _read(tmp_path / "init_study" / "summary.json")
    losses = on_disk["runs"]["normal"]["curves"]["train_loss"]
    assert len(losses) == 2 and all(math.isnan(v) for v in losses)
    assert "NaN" in (tmp_path / "init_study" / "summary.json").read_text()
    assert (tmp_path / "init_study" / "init_loss.png").stat().st_size > 5000


# ------------------------------------------------------- reproducibility and resume


def test_same_seed_same_results(tiny: StudyData, tmp_path: Path) -> None:
    opts = small(epochs=1, schemes=("glorot", "normal"))
    a = init_study.run(tiny, tmp_path / "a", opts, figures=False)
    b = init_study.run(tiny, tmp_path / "b", opts, figures=False)
    assert _curves(a) == _curves(b)
    c = init_study.run(tiny, tmp_path / "c", attrs.evolve(opts, seed=1), figures=False)
    assert a["figures"] == [] and not list((tmp_path / "a" / "init_study").glob("*.png"))
    assert _curves(c)["glorot"]["curves"] != _curves(a)["glorot"]["curves"]


def _count_fit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real_fit = fmlp.fit

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fmlp, "fit", counting)
    return calls


def test_resume_recomputes_only_the_missing_run(
    tiny: StudyData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = small(epochs=1)
    first = init_study.run(tiny, tmp_path, opts, figures=False)
    store = ResultStore(tmp_path, "init_study")
    store.path(init_study.run_config(tiny, opts, "normal")).unlink()
    calls = _count_fit(monkeypatch)
    second = init_study.run(tiny, tmp_path, opts, figures=False)
    assert len(calls) == 1
    assert {s: r["computed_now"] for s, r in second["runs"].items()} == {
        "zero": False,
        "normal": True,
        "glorot": False,
    }
    assert _curves(first) == _curves(second)
    third = init_study.run(tiny, tmp_path, opts, figures=False)
    assert len(calls) == 1 and not any(r["computed_now"] for r in third["runs"].values())


def test_resume_after_an_interruption(
    tiny: StudyData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = small(epochs=1)
    real = init_study.train_setup

    def interrupted(
        data: StudyData, o: InitOptions, scheme: str, *, quiet: bool = True
    ) -> dict[str, Any]:
        if scheme == "normal":
            raise KeyboardInterrupt
        return real(data, o, scheme, quiet=quiet)  # type: ignore[arg-type]  # scheme comes from o.schemes

    monkeypatch.setattr(init_study, "train_setup", interrupted)
    with pytest.raises(KeyboardInterrupt):
        init_study.run(tiny, tmp_path, opts, figures=False)
    assert len(list((tmp_path / "init_study" / "runs").glob("*.json"))) == 1  # zero finished
    assert not list((tmp_path / "init_study" / "runs").glob(".*"))  # no temporary leftovers
    monkeypatch.setattr(init_study, "train_setup", real)
    calls = _count_fit(monkeypatch)
    summary = init_study.run(tiny, tmp_path, opts, figures=False)
    assert len(calls) == 2
    assert {s: r["computed_now"] for s, r in summary["runs"].items()} == {
        "zero": False,
        "normal": True,
        "glorot": True,
    }


def test_config_names_everything(tiny: StudyData) -> None:
    base = init_study.run_config(tiny, small(), "glorot")
    for key in (
        "sizes",
        "activation",
        "scheme",
        "lr",
        "batch_size",
        "epochs",
        "seed",
        "dtype",
        "dataset",
        "dataset_sizes",
    ):
        assert key in base
    assert init_study.run_config(tiny, small(lr=0.1), "glorot") != base
    assert init_study.run_config(tiny, small(), "zero") != base
    assert (
        init_study.run_config(synthetic_data(200, 100, seed=2), small(), "glorot")["data_digest"]
        != base["data_digest"]
    )


# ------------------------------------------------------------------- command line


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--dataset",
        "synthetic",
        "--quiet",
        "--sizes",
        "784",
        "16",
        "10",
        "--epochs",
        "1",
        "--n-diag",
        "50",
        "--schemes",
        "zero",
        "glorot",
    ]
    assert init_study.main(argv) == 0
    summary = _read(tmp_path / "init_study" / "summary.json")
    assert list(summary["runs"]) == ["glorot", "zero"]  # written with sorted keys
    assert summary["settings"]["sizes"] == [784, 16, 10]
    assert "glorot" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--lr", "-1"], "lr must be a positive"),
        (["--epochs", "0"], "epochs must be a positive"),
        (["--sizes", "784"], "sizes must list"),
    ],
)
def test_cli_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    assert (
        init_study.main(["--out", str(tmp_path), "--dataset", "synthetic", "--quiet", *args]) == 2
    )
    assert match in capsys.readouterr().err
    assert not (tmp_path / "init_study").exists()


def test_options_validate() -> None:
    with pytest.raises(ValueError, match="unknown init scheme"):
        InitOptions(schemes=("uniform",))  # type: ignore[arg-type]  # the bad name is the point
    with pytest.raises(ValueError, match="repeat"):
        InitOptions(schemes=("zero", "zero"))
    with pytest.raises(TypeError, match="dtype"):
        InitOptions(dtype="float16")


@pytest.mark.real_data
def test_quick_on_real_mnist(tmp_path: Path, real_mnist: Any) -> None:
    argv = [
        "--out",
        str(tmp_path),
        "--quick",
        "--quiet",
        "--sizes",
        "784",
        "32",
        "32",
        "10",
        "--epochs",
        "1",
    ]
    assert init_study.main(argv) == 0
    summary = _read(tmp_path / "init_study" / "summary.json")
    assert (
        summary["settings"]["dataset"] == "mnist[:600]"
        and summary["settings"]["dataset_sizes"]["train"] == 600
    )
    assert summary["runs"]["zero"]["symmetry"]["only_output_bias_moves"] is True
