"""The CNN study's network: parameter counting and matching without torch, the torch
module against that count, the layer order, dropout, the loss, evaluation, and the
training run's reproducibility and manners."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from analyses.datasets import EvalSubset, StudyData, synthetic_data
from analyses.pipeline.records import from_json, to_json
from analyses.studies.cnn.models import (
    DEFAULT_BLOCKS,
    QUICK_BLOCKS,
    CNNSpec,
    ConvBlock,
    count_params,
    describe,
    fc_width_for,
    layer_table,
    match_params,
)
from analyses.studies.cnn.options import TrainConfig

MLP_PARAMS = 669_706  # 784-512-512-10


# ------------------------------------------------------------------ no torch needed


def test_layer_table_of_the_default_cnn() -> None:
    spec = match_params(DEFAULT_BLOCKS, MLP_PARAMS)
    rows = {r.name: r for r in layer_table(spec)}
    assert rows["conv1"].params == (1 * 25 + 1) * 16
    assert rows["conv1"].output_shape == (16, 24, 24)
    assert rows["pool1"].output_shape == (16, 12, 12)
    assert rows["conv2"].params == (16 * 25 + 1) * 32
    assert rows["pool2"].output_shape == (32, 4, 4)
    assert rows["fc1"].n_in == 512 and rows["fc1"].params == 513 * spec.fc
    assert rows["fc2"].params == (spec.fc + 1) * 10
    assert [r.kind for r in layer_table(spec)][:3] == ["Conv2d", "MaxPool2d", "ReLU"]
    assert "conv5x5(1->16)+pool2" in describe(spec)


@pytest.mark.parametrize("target", [20_000, MLP_PARAMS, 1_000_000, 534_010])
def test_fc_width_is_the_nearest(target: int) -> None:
    blocks = (ConvBlock(16), ConvBlock(32))
    fc = fc_width_for(blocks, target)
    best = abs(count_params(CNNSpec(blocks, fc)) - target)
    for other in (fc - 1, fc + 1):
        if other >= 1:
            assert best <= abs(count_params(CNNSpec(blocks, other)) - target)


def test_match_params_is_within_half_an_fc_unit_of_the_mlp() -> None:
    spec = match_params(DEFAULT_BLOCKS, MLP_PARAMS)
    n = count_params(spec)
    assert abs(n - MLP_PARAMS) <= 0.10 * MLP_PARAMS
    # One more FC unit adds 512 + 1 + 10 parameters, so the nearest width is within half.
    assert abs(n - MLP_PARAMS) <= (512 + 1 + 10) / 2
    assert spec.dropout == 0 and not spec.regularized


def test_match_params_refuses_when_the_convs_alone_are_too_big() -> None:
    with pytest.raises(ValueError, match="fewer or smaller conv channels"):
        match_params((ConvBlock(64), ConvBlock(256)), 100_000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
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
    with pytest.raises(ValueError, match="padding"):
        ConvBlock(3, padding=-1)


def test_spec_round_trips_through_json() -> None:
    spec = CNNSpec((ConvBlock(3, kernel=3, padding=1), ConvBlock(5)), fc=7, dropout=0.2)
    assert from_json(CNNSpec, to_json(spec)) == spec
    rows = layer_table(spec)
    assert tuple(from_json(type(r), to_json(r)) for r in rows) == rows


def test_train_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=1.5)
    assert TrainConfig().lr_at(2) == pytest.approx(2e-3 * 0.75**2)


def test_eval_subset_is_fixed_sorted_and_capped() -> None:
    subset = EvalSubset()
    idx = subset.indices(50_000)
    assert len(idx) == 10_000 and len(np.unique(idx)) == 10_000
    assert np.all(np.diff(idx) > 0) and idx[-1] < 50_000
    np.testing.assert_array_equal(idx, EvalSubset().indices(50_000))
    assert not np.array_equal(idx, EvalSubset(seed=8).indices(50_000))
    np.testing.assert_array_equal(subset.indices(600), np.arange(600))
    assert "all 600" in subset.describe(600)
    assert "default_rng(7)" in subset.describe(50_000)


def test_importing_the_study_does_not_import_torch() -> None:
    code = (
        "import sys, analyses.studies.cnn, analyses.studies.cnn.summary, "
        "analyses.studies.cnn.section; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------- torch

torch = pytest.importorskip("torch")
from analyses.studies.cnn import net  # noqa: E402  (needs torch)


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
    model = net.build_cnn(spec)
    assert count_params(spec) == net.module_param_count(model)
    assert sum(r.params for r in layer_table(spec)) == count_params(spec)
    assert [type(m).__name__ for m in model] == [r.kind for r in layer_table(spec)]


def test_torch_forward_shape() -> None:
    spec = match_params(QUICK_BLOCKS, 50_000)
    z = net.build_cnn(spec)(torch.zeros(3, 1, 28, 28))
    assert tuple(z.shape) == (3, 10)


def test_pool_before_relu_is_relu_before_pool() -> None:
    """build_cnn puts the max-pool before the ReLU: the same outputs and gradients as the
    textbook order, checked against a copy with the layers swapped back."""
    nn = torch.nn
    spec = CNNSpec((ConvBlock(4), ConvBlock(6, kernel=3)), fc=12)
    ours = net.build_cnn(spec).double()
    layers: list[Any] = []
    for layer in ours:
        if isinstance(layer, nn.ReLU) and isinstance(layers[-1], nn.MaxPool2d):
            layers.insert(len(layers) - 1, nn.ReLU())
        else:
            layers.append(nn.ReLU() if isinstance(layer, nn.ReLU) else layer)
    textbook = nn.Sequential(*layers)
    kinds = [type(m).__name__ for m in textbook]
    assert kinds[:6] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d"]
    x = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    y = torch.arange(5) % 10
    out = []
    for model in (ours, textbook):
        model.zero_grad()
        z = model(x)
        torch.autograd.backward(net.mean_cross_entropy(z, y))
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        out.append((z.detach().clone(), grads))
    assert torch.equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1], out[1][1], strict=True):
        assert torch.equal(a, b)


def test_dropout_layer() -> None:
    spec = CNNSpec((ConvBlock(2),), fc=8, dropout=0.25)
    drop = next(m for m in net.build_cnn(spec) if isinstance(m, net.Dropout))
    x = torch.ones(400, 50)
    drop.train()
    y = drop(x)
    kept = y != 0
    assert torch.all(y[kept] == 1 / 0.75)
    assert 0.70 < kept.double().mean().item() < 0.80
    drop.eval()
    assert torch.equal(drop(x), x)


def test_mean_cross_entropy_matches_torch() -> None:
    F = torch.nn.functional
    z = torch.randn(33, 10, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 10, (33,))
    ours = net.mean_cross_entropy(z, y)
    (g1,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y)
    (g2,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(g1, g2)


def test_label_smoothing_matches_torch() -> None:
    F = torch.nn.functional
    z = torch.randn(33, 10, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 10, (33,))
    ours = net.mean_cross_entropy(z, y, label_smoothing=0.1)
    (g1,) = torch.autograd.grad(ours, z)
    ref = F.cross_entropy(z, y, label_smoothing=0.1)
    (g2,) = torch.autograd.grad(ref, z)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(g1, g2)
    # no smoothing: the plain loss, bit for bit
    assert torch.equal(
        net.mean_cross_entropy(z, y, label_smoothing=0.0), net.mean_cross_entropy(z, y)
    )


def test_evaluate_counts_errors_and_the_mean_loss() -> None:
    """evaluate in chunks gives the loss and error rate of the whole set at once."""
    spec = CNNSpec((ConvBlock(3),), fc=9)
    torch.manual_seed(0)
    model = net.build_cnn(spec)
    x = torch.rand(37, 1, 28, 28)
    y = torch.randint(0, 10, (37,))
    loss, error = net.evaluate(model, x, y, batch=8, channels_last=True)
    with torch.no_grad():
        z = model(x).double()
    torch.testing.assert_close(
        torch.tensor(loss, dtype=torch.float64), torch.nn.functional.cross_entropy(z, y)
    )
    assert error == float((z.argmax(dim=1) != y).double().mean())


def test_non_mnist_shapes_are_refused() -> None:
    d = synthetic_data(20, 10, dtype=np.float32)
    bad = StudyData("bad", d.x_train[:, :100], d.y_train, d.x_valid, d.y_valid, d.x_test, d.y_test)
    with pytest.raises(ValueError, match="784"):
        net.to_tensors(bad, "cpu", np.arange(5))


def test_training_is_deterministic_and_leaves_torch_global_state_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    det = torch.are_deterministic_algorithms_enabled()
    data = synthetic_data(64, 32, dtype=np.float32, seed=3)
    spec = match_params(QUICK_BLOCKS, 20_000)
    train = TrainConfig(batch_size=32)
    idx = np.arange(16)

    def run(seed: int, s: CNNSpec = spec) -> Any:
        return net.train_cnn(s, data, train, seed=seed, epochs=2, device="cpu", eval_index=idx)

    a, b, c = run(0), run(0), run(1)
    assert a == b and a != c
    dropped = run(0, CNNSpec(spec.blocks, spec.fc, dropout=0.4))
    assert dropped.curves != a.curves
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.are_deterministic_algorithms_enabled() == det
    assert a.n_params == count_params(spec) and a.device == "cpu"
    assert a.lr == (2e-3, 2e-3 * 0.75)
    for errors in (a.curves.train_error, a.curves.valid_error):
        assert all(0.0 <= e <= 1.0 for e in errors)


def test_cuda_is_refused_where_there_is_none() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        net.check_device("cuda")


# ------------------------------------------------------------------ augmentation


def test_shift_draws_are_fixed_by_seed_and_epoch() -> None:
    a = net.shift_draws(3, 4, 500, 2)
    assert a.shape == (500, 2) and a.dtype == np.int64
    assert a.min() == -2 and a.max() == 2
    np.testing.assert_array_equal(a, net.shift_draws(3, 4, 500, 2))
    assert not np.array_equal(a, net.shift_draws(3, 5, 500, 2))
    assert not np.array_equal(a, net.shift_draws(4, 4, 500, 2))
    # a stream apart from the epoch's sample order
    order = np.random.default_rng((3, 4)).integers(-2, 3, size=(500, 2))
    assert not np.array_equal(a, order)


def test_shift_images_moves_every_image_by_its_own_shift() -> None:
    x = torch.zeros(3, 1, 28, 28)
    x[:, 0, 10, 20] = 1.0
    x[2, 0, 0, 0] = 5.0  # a corner pixel moved off the image is dropped
    shifts = torch.tensor([[1, -2], [0, 0], [-1, 1]])
    out = net.shift_images(x, shifts, 2)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out[0, 0, 11, 18] == 1.0 and out[0].sum() == 1.0
    assert torch.equal(out[1], x[1])
    assert out[2, 0, 9, 21] == 1.0 and out[2].sum() == 1.0  # the corner left the image
    # against a plain roll with the wrapped border zeroed
    for b, (dy, dx) in enumerate(shifts.tolist()):
        rolled = torch.roll(x[b, 0], (dy, dx), (0, 1))
        if dy > 0:
            rolled[:dy] = 0
        elif dy < 0:
            rolled[dy:] = 0
        if dx > 0:
            rolled[:, :dx] = 0
        elif dx < 0:
            rolled[:, dx:] = 0
        assert torch.equal(out[b, 0], rolled)


def test_epoch_batches_shift_images_and_keep_labels() -> None:
    data = synthetic_data(100, 10, dtype=np.float32, seed=5)
    x = torch.from_numpy(data.x_train.reshape(-1, 1, 28, 28))
    y = torch.from_numpy(data.y_train)
    plain = TrainConfig(batch_size=32)
    shifted = TrainConfig(batch_size=32, shift=2)

    def batches(train: TrainConfig, epoch: int) -> list[tuple[Any, Any]]:
        return list(net.epoch_batches(x, y, train, seed=1, epoch=epoch))

    a, b = batches(shifted, 0), batches(shifted, 0)
    order = np.random.default_rng((1, 0)).permutation(100)
    assert [len(yb) for _, yb in a] == [32, 32, 32, 4]
    labels = torch.cat([yb for _, yb in a])
    assert torch.equal(labels, y[torch.from_numpy(order)])  # the labels are the samples'
    assert all(xb.shape[1:] == (1, 28, 28) for xb, _ in a)
    assert all(xb.is_contiguous(memory_format=torch.channels_last) for xb, _ in a)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):  # the same (seed, epoch): the same bits
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    clean = batches(plain, 0)
    assert torch.equal(torch.cat([xb for xb, _ in clean]), x[torch.from_numpy(order)])
    assert not torch.equal(torch.cat([xb for xb, _ in a]), torch.cat([xb for xb, _ in clean]))
    other_epoch = batches(shifted, 1)
    assert not torch.equal(a[0][0], other_epoch[0][0])
    draws = torch.from_numpy(net.shift_draws(1, 0, 100, 2))
    expected = net.shift_images(x[torch.from_numpy(order)], draws, 2)
    assert torch.equal(torch.cat([xb for xb, _ in a]), expected)


def test_a_technique_changes_one_thing_of_vanilla() -> None:
    from analyses.studies.cnn.options import TECHNIQUES, CnnOptions, Technique

    spec = match_params(DEFAULT_BLOCKS, MLP_PARAMS)
    train = TrainConfig()
    for t in TECHNIQUES:
        s, tr = t.apply(spec, train)
        assert count_params(s) == count_params(spec) and s.blocks == spec.blocks
        assert tr.batch_size == train.batch_size and tr.lr == train.lr
        assert (s.dropout, tr.weight_decay, tr.shift, tr.label_smoothing) == (
            t.dropout,
            t.weight_decay,
            t.shift,
            t.label_smoothing,
        )
    with pytest.raises(ValueError, match="changes nothing"):
        Technique("none", "nothing")
    with pytest.raises(ValueError, match="other than vanilla"):
        Technique("vanilla", "dropout", dropout=0.1)
    with pytest.raises(ValueError, match="repeat"):
        CnnOptions(techniques=(TECHNIQUES[0], TECHNIQUES[0]))
    with pytest.raises(ValueError, match="shift"):
        TrainConfig(shift=-1)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_the_timing_tool_measures_every_setup() -> None:
    from analyses.datasets import DataSpec
    from analyses.studies.cnn.options import TECHNIQUES
    from analyses.studies.cnn.timing import measure

    spec = match_params(QUICK_BLOCKS, 20_000)
    train = TrainConfig(batch_size=16)
    setups = [("vanilla", spec, train)] + [(t.name, *t.apply(spec, train)) for t in TECHNIQUES]
    costs = measure(setups, DataSpec("synthetic", 160, 40), steps=2)
    assert [c.name for c in costs] == ["vanilla", *(t.name for t in TECHNIQUES)]
    for c in costs:
        assert c.steps_timed == 2 and c.train_seconds > 0 and c.eval_seconds > 0
