"""The CNN study: parameter matching, a quick smoke run on synthetic data, determinism
of two runs with one seed, resuming, and the MLP reference read from the search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from analyses import cnn_study
from analyses.cnn_models import (
    CNNSpec,
    ConvBlock,
    build_cnn,
    count_params,
    describe,
    fc_width_for,
    layer_table,
    match_params,
    module_param_count,
)
from analyses.common import StudyData, synthetic_data

MLP_PARAMS = 669_706  # 784-512-512-10


@pytest.fixture(scope="module")
def tiny() -> StudyData:
    return synthetic_data(300, 100, dtype=np.float32, seed=3)


def _curves(summary: dict[str, Any]) -> dict[str, Any]:
    """Every run's curves without its timings."""
    return {
        name: [{k: v for k, v in r["curves"].items() if "seconds" not in k} for r in runs]
        for name, runs in summary["runs"].items()
    }


# ------------------------------------------------------------------- parameter counting


@pytest.mark.parametrize(
    "blocks",
    [
        (ConvBlock(16), ConvBlock(32)),
        (ConvBlock(16, padding=2), ConvBlock(32, padding=2)),
        (ConvBlock(8, kernel=3, padding=1, pool=1), ConvBlock(12, kernel=3, pool=2)),
        (ConvBlock(6, kernel=7),),
    ],
)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_count_matches_torch(blocks: tuple[ConvBlock, ...], dropout: float) -> None:
    spec = CNNSpec(blocks=blocks, fc=37, dropout=dropout, conv_dropout=dropout / 2)
    assert count_params(spec) == module_param_count(build_cnn(spec))
    assert sum(r["params"] for r in layer_table(spec)) == count_params(spec)


def test_layer_table_of_the_default_cnn() -> None:
    spec = match_params(cnn_study.DEFAULT_BLOCKS, MLP_PARAMS)
    rows = {r["name"]: r for r in layer_table(spec)}
    assert rows["conv1"]["params"] == (1 * 25 + 1) * 16
    assert rows["conv1"]["output_shape"] == [16, 24, 24]
    assert rows["pool1"]["output_shape"] == [16, 12, 12]
    assert rows["conv2"]["params"] == (16 * 25 + 1) * 32
    assert rows["pool2"]["output_shape"] == [32, 4, 4]
    assert rows["fc1"]["in"] == 512 and rows["fc1"]["params"] == 513 * spec.fc
    assert rows["fc2"]["params"] == (spec.fc + 1) * 10
    assert "conv5x5(1->16)+pool2" in describe(spec)


def test_torch_forward_shape() -> None:
    import torch

    spec = match_params((ConvBlock(4), ConvBlock(8)), 50_000)
    z = build_cnn(spec)(torch.zeros(3, 1, 28, 28))
    assert tuple(z.shape) == (3, 10)


def test_pool_before_relu_is_relu_before_pool() -> None:
    """build_cnn puts the max-pool before the ReLU: the same outputs and gradients as the
    textbook order, checked against a copy with the layers swapped back."""
    import torch
    from torch import nn

    spec = CNNSpec((ConvBlock(4), ConvBlock(6, kernel=3)), fc=12)
    ours = build_cnn(spec).double()
    layers: list[Any] = []
    for layer in ours:
        if isinstance(layer, nn.ReLU) and isinstance(layers[-1], nn.MaxPool2d):
            layers.insert(len(layers) - 1, nn.ReLU())
        else:
            layers.append(nn.ReLU() if isinstance(layer, nn.ReLU) else layer)
    textbook = nn.Sequential(*layers)
    kinds = [type(m).__name__ for m in textbook]
    assert kinds[:3] == ["Conv2d", "ReLU", "MaxPool2d"] and kinds[3:6] == [
        "Conv2d",
        "ReLU",
        "MaxPool2d",
    ]
    assert [type(m).__name__ for m in ours][:3] == ["Conv2d", "MaxPool2d", "ReLU"]
    x = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    y = torch.arange(5) % 10
    out = []
    for model in (ours, textbook):
        model.zero_grad()
        z = model(x)
        torch.autograd.backward(cnn_study.mean_cross_entropy(z, y))
        out.append(
            (z.detach().clone(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
        )
    assert torch.equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1]):
        assert torch.equal(a, b)


def test_dropout_layer() -> None:
    import torch

    spec = CNNSpec((ConvBlock(2),), fc=8, dropout=0.25)
    drop = next(m for m in build_cnn(spec) if type(m).__name__ == "Dropout")
    x = torch.ones(400, 50)
    drop.train()
    y = drop(x)
    kept = y != 0
    assert torch.all(y[kept] == 1 / 0.75)
    assert 0.70 < kept.double().mean().item() < 0.80
    drop.eval()
    assert torch.equal(drop(x), x)


def test_mean_cross_entropy_matches_torch() -> None:
    import torch
    import torch.nn.functional as F

    z = torch.randn(33, 10, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 10, (33,))
    ours = cnn_study.mean_cross_entropy(z, y)
    (g1,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y)
    (g2,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("target", [20_000, MLP_PARAMS, 1_000_000, 534_010])
def test_fc_width_is_the_nearest(target: int) -> None:
    blocks = (ConvBlock(16), ConvBlock(32))
    fc = fc_width_for(blocks, target)
    best = abs(count_params(CNNSpec(blocks, fc)) - target)
    for other in (fc - 1, fc + 1):
        if other >= 1:
            assert best <= abs(count_params(CNNSpec(blocks, other)) - target)


def test_match_params_within_ten_percent_of_the_mlp() -> None:
    spec = match_params(cnn_study.DEFAULT_BLOCKS, MLP_PARAMS)
    n = count_params(spec)
    assert abs(n - MLP_PARAMS) <= 0.10 * MLP_PARAMS
    # One more FC unit adds 512 + 1 + 10 parameters, so the nearest width is within half.
    assert abs(n - MLP_PARAMS) <= (512 + 1 + 10) / 2


def test_match_params_refuses_when_the_convs_alone_are_too_big() -> None:
    with pytest.raises(ValueError, match="fewer or smaller conv channels"):
        match_params((ConvBlock(64), ConvBlock(256)), 100_000)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"blocks": (), "fc": 10}, "at least one conv block"),
        ({"blocks": (ConvBlock(4),), "fc": 0}, "fc width"),
        ({"blocks": (ConvBlock(4),), "fc": 10, "dropout": 1.0}, "probability"),
        ({"blocks": (ConvBlock(4, kernel=9),) * 3, "fc": 10}, "does not fit"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CNNSpec(**kwargs)


def test_bad_block_is_refused() -> None:
    with pytest.raises(ValueError, match="conv channels"):
        ConvBlock(0)


def test_spec_round_trips_through_dict() -> None:
    spec = CNNSpec((ConvBlock(3, kernel=3, padding=1), ConvBlock(5)), fc=7, dropout=0.2)
    assert CNNSpec.from_dict(json.loads(json.dumps(spec.as_dict()))) == spec


def test_non_mnist_shapes_are_refused() -> None:
    data = synthetic_data(20, 10, n_features=100, dtype=np.float32)
    with pytest.raises(ValueError, match="784"):
        cnn_study.to_tensors(data)


# ------------------------------------------------------------------------ study runs


def test_quick_study_smoke(tmp_path: Path, tiny: StudyData) -> None:
    summary = cnn_study.run_study(
        tmp_path, tiny, seeds=(0, 1), epochs=2, quick=True, quiet=True, threads=1
    )
    folder = tmp_path / "cnn_study"
    assert len(list((folder / "runs").glob("*.json"))) == 2 * 2 + 1  # variants x seeds + MLP
    assert sorted(summary["computed"]) == sorted(
        ["vanilla/seed0", "vanilla/seed1", "dropout/seed0", "dropout/seed1", "mlp"]
    )
    for name in ("cnn_errors", "cnn_vs_mlp_loss"):
        for ext in ("png", "pdf"):
            assert (folder / f"{name}.{ext}").stat().st_size > 1000
    table_md = (folder / "table.md").read_text()
    assert table_md.count("\n") == 2 + 3 and "| CNN dropout | " in table_md
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["cnn_params"] == summary["cnn_params"]
    assert on_disk["mlp"]["params"] == MLP_PARAMS and on_disk["mlp"]["sizes"] == [784, 512, 512, 10]
    assert on_disk["mlp"]["curve_source"].startswith("retrained")
    assert abs(on_disk["param_ratio"] - 1) <= 0.10
    assert on_disk["device"] in ("cpu", "cuda") and on_disk["threads"] == 1
    for name in ("vanilla", "dropout"):
        arch = on_disk["architecture"][name]
        assert arch["params"] == on_disk["cnn_params"]
        assert sum(r["params"] for r in arch["layers"]) == arch["params"]
        runs = on_disk["runs"][name]
        assert [r["seed"] for r in runs] == [0, 1]
        for r in runs:
            for key in (*cnn_study.METRICS, "epoch_seconds", "train_seconds", "eval_seconds"):
                assert len(r["curves"][key]) == 2
            for key in ("train_error", "valid_error"):
                assert all(0.0 <= e <= 1.0 for e in r["curves"][key])
            assert all(np.isfinite(r["curves"]["train_loss"]))
            assert 1 <= r["early_stop_epoch"] <= 2
            assert r["curves"]["valid_loss"][r["early_stop_epoch"] - 1] == min(
                r["curves"]["valid_loss"]
            )
        agg = on_disk["aggregate"][name]
        errs = np.array([r["curves"]["valid_error"] for r in runs])
        np.testing.assert_allclose(agg["valid_error"]["mean"], errs.mean(axis=0))
        np.testing.assert_allclose(agg["valid_error"]["std"], errs.std(axis=0, ddof=1))
    assert on_disk["architecture"]["dropout"]["spec"]["dropout"] > 0
    assert on_disk["architecture"]["vanilla"]["spec"]["dropout"] == 0
    assert [row["model"].split()[0] for row in on_disk["table"]] == ["MLP", "CNN", "CNN"]
    for row in on_disk["table"]:
        for key in ("final_train_error", "final_valid_error", "final_test_error"):
            assert 0.0 <= row[key] <= 1.0
    assert "cores" in on_disk["machine"]
    # The study learns something even on 300 samples: the loss falls from ln(10).
    assert on_disk["aggregate"]["vanilla"]["train_loss"]["mean"][-1] < np.log(10)


def test_same_seed_same_curves_bit_for_bit(tmp_path: Path, tiny: StudyData) -> None:
    a = cnn_study.run_study(
        tmp_path / "a", tiny, seeds=(5,), epochs=2, quick=True, quiet=True, threads=1, figures=False
    )
    b = cnn_study.run_study(
        tmp_path / "b", tiny, seeds=(5,), epochs=2, quick=True, quiet=True, threads=1, figures=False
    )
    assert _curves(a) == _curves(b)
    c = cnn_study.run_study(
        tmp_path / "c", tiny, seeds=(6,), epochs=2, quick=True, quiet=True, threads=1, figures=False
    )
    assert _curves(c) != _curves(a)


def test_training_leaves_torch_global_state_alone(tiny: StudyData) -> None:
    import torch

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    spec = match_params(cnn_study.QUICK_BLOCKS, 20_000)
    cnn_study.train_cnn(
        spec,
        cnn_study.to_tensors(tiny.head(64, 32)),
        cnn_study.TrainConfig(batch_size=32),
        seed=0,
        epochs=1,
        threads=1,
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det


def test_resume_skips_finished_runs(
    tmp_path: Path, tiny: StudyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cnn_study.run_study(
        tmp_path, tiny, seeds=(0,), epochs=1, quick=True, quiet=True, threads=1, figures=False
    )
    # Lose one run, as if the study had been interrupted before writing it.
    runs = sorted((tmp_path / "cnn_study" / "runs").glob("*.json"))
    victim = next(
        p for p in runs if json.loads(p.read_text())["config"].get("variant") == "dropout"
    )
    victim.unlink()
    trained: list[str] = []
    real_train = cnn_study.train_cnn

    def spy(spec: CNNSpec, *args: Any, **kwargs: Any) -> dict[str, Any]:
        trained.append("dropout" if spec.dropout else "vanilla")
        return real_train(spec, *args, **kwargs)

    def no_mlp(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the MLP was retrained although its run is stored")

    monkeypatch.setattr(cnn_study, "train_cnn", spy)
    monkeypatch.setattr(cnn_study, "train_mlp", no_mlp)
    second = cnn_study.run_study(
        tmp_path, tiny, seeds=(0,), epochs=1, quick=True, quiet=True, threads=1, figures=False
    )
    assert trained == ["dropout"]
    assert second["computed"] == ["dropout/seed0"]
    assert _curves(second) == _curves(first)
    third = cnn_study.run_study(
        tmp_path, tiny, seeds=(0,), epochs=1, quick=True, quiet=True, threads=1, figures=False
    )
    assert third["computed"] == [] and trained == ["dropout"]


def test_mlp_reference_fallback(tmp_path: Path) -> None:
    ref = cnn_study.mlp_reference(tmp_path, epochs=10)
    assert ref.params == MLP_PARAMS
    assert ref.config["hidden"] == [512, 512] and ref.config["activation"] == "relu"
    assert ref.source.startswith("fallback") and ref.curves is None


def _write_search(out: Path, best: dict[str, Any]) -> None:
    path = out / "hparam_search" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"best": best}))


def test_mlp_reference_from_the_search(
    tmp_path: Path, tiny: StudyData, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyses.hparam_search import HParamConfig

    config = HParamConfig(
        hidden=(300, 100),
        activation="tanh",
        lr=0.05,
        batch_size=32,
        seed=4,
        optimizer="momentum",
        schedule="cosine",
        epochs=2,
        dataset="synthetic",
    )
    # The search records validation curves only: the MLP must be retrained.
    _write_search(
        tmp_path, {"config": config.to_dict(), "val_accuracy": [0.5, 0.6], "val_loss": [1.0, 0.9]}
    )
    ref = cnn_study.mlp_reference(tmp_path, epochs=2)
    assert ref.params == (784 + 1) * 300 + (300 + 1) * 100 + (100 + 1) * 10
    assert ref.config["activation"] == "tanh" and ref.config["optimizer"] == "momentum"
    assert ref.source.startswith("hparam_search") and ref.curves is None
    assert ref.search_val_accuracy == [0.5, 0.6]

    # With full-set train curves of the study's length, they are used as they are.
    curves = {
        "train_loss": [0.3, 0.2],
        "val_loss": [0.35, 0.3],
        "train_accuracy": [0.9, 0.95],
        "val_accuracy": [0.89, 0.93],
    }
    _write_search(tmp_path, {"config": config.to_dict(), **curves})
    ref = cnn_study.mlp_reference(tmp_path, epochs=2)
    assert ref.curves is not None
    np.testing.assert_allclose(ref.curves["valid_error"], [0.11, 0.07])
    assert cnn_study.mlp_reference(tmp_path, epochs=3).curves is None

    def no_mlp(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("the MLP was retrained although the search has its curves")

    monkeypatch.setattr(cnn_study, "train_mlp", no_mlp)
    summary = cnn_study.run_study(
        tmp_path, tiny, seeds=(0,), epochs=2, quick=True, quiet=True, threads=1, figures=False
    )
    assert summary["mlp"]["curve_source"] == "hparam_search"
    assert summary["mlp"]["params"] == ref.params
    assert summary["table"][0]["params"] == ref.params
    assert abs(summary["param_ratio"] - 1) <= 0.10


def test_mlp_retrain_reproduces_the_search(tmp_path: Path) -> None:
    """The retrained MLP follows the search's own run bit for bit (same optimizer,
    schedule, seed, dtype and BLAS threads), so its curves are the search's model's."""
    from analyses.hparam_search import HParamConfig, run_config

    config = HParamConfig(
        hidden=(32, 16),
        lr=0.1,
        batch_size=50,
        epochs=2,
        schedule="step",
        dataset="synthetic",
        n_train=300,
        n_eval=100,
    )
    record = run_config(config)
    _write_search(tmp_path, {"config": config.to_dict(), **record})
    data = synthetic_data(300, 100, dtype=np.float32)  # what the search's "synthetic" loads
    ref = cnn_study.mlp_reference(tmp_path, epochs=2)
    result = cnn_study.train_mlp(ref, data, quiet=True)
    assert result["val_accuracy"] == record["val_accuracy"]
    assert result["curves"]["valid_loss"] == record["val_loss"]
    assert len(result["curves"]["train_loss"]) == 2


def test_unreadable_search_config_is_a_clear_error(tmp_path: Path) -> None:
    _write_search(tmp_path, {"config": {"hidden": [10], "no_such_field": 1}})
    with pytest.raises(ValueError, match="rerun"):
        cnn_study.mlp_reference(tmp_path, epochs=1)


def test_train_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        cnn_study.TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr_decay"):
        cnn_study.TrainConfig(lr_decay=1.5)


def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cnn_study.main(["--out", str(tmp_path), "--seeds", "0"])
    with pytest.raises(SystemExit):
        cnn_study.main(["--out", str(tmp_path), "--epochs", "-1"])


def test_device_choice() -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert cnn_study.pick_device("auto") == expected
    assert cnn_study.pick_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device"):
        cnn_study.pick_device("tpu")


@pytest.mark.real_data
def test_cli_quick_on_real_mnist(tmp_path: Path, real_mnist: Any) -> None:
    assert (
        cnn_study.main(
            ["--out", str(tmp_path), "--quick", "--quiet", "--seeds", "1", "--threads", "1"]
        )
        == 0
    )
    summary = json.loads((tmp_path / "cnn_study" / "summary.json").read_text())
    assert summary["dataset"].startswith("mnist") and summary["data_sizes"]["train"] == 600
    assert summary["epochs"] == 1


def test_time_candidates_reports_every_candidate() -> None:
    spec = match_params(cnn_study.QUICK_BLOCKS, 20_000)
    res = cnn_study.time_candidates(
        {"a": (spec, 8, 1, True), "b": (spec, 8, 1, False)}, steps=1, rounds=2, eval_batch=16
    )
    assert set(res) == {"a", "b"}
    for r in res.values():
        assert len(r["train_epoch_s"]) == 2 and all(s > 0 for s in r["train_epoch_s"])
        assert len(r["eval_60k_s"]) == 2 and r["params"] == count_params(spec)
    assert len(cnn_study.timing_candidates()) == 4 * 2 * 2 * 2
