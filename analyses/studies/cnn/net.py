"""The CNN in torch: the module built from a ``CNNSpec``, the loss, evaluation, and one
training run. Only the study's runs import this module (it imports torch).

Reproducible: a run draws its initial weights and dropout masks from its own seed
inside ``torch.random.fork_rng``, with deterministic algorithms on, and visits the
training samples in the order ``np.random.default_rng((seed, epoch)).permutation(n)``
(no DataLoader), so the same seed gives the same curves bit for bit on one device and
thread count. The run leaves torch's global state (RNG, flags) as it found it.

Choices made by measurement on a 2-core CPU: valid (unpadded) 5x5 convolutions with 16
and 32 channels, each followed by a 2x2 max-pool, so the convolutions work on small
images and the parameters sit in the FC layer; channels_last tensors (faster in every
measurement, most of all for evaluation); batch 128; max-pool before the ReLU (the same
function on a 4 times smaller tensor); a dropout mask from ``rand_like`` rather than
``bernoulli_`` (four times faster on the CPU); fused Adam (one kernel per step). The
random shifts of data augmentation are two gathers on the batch tensor, drawn from
numpy (``(seed, epoch, 1)``), so they leave torch's generator (dropout's) alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Final

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from analyses.datasets import StudyData
from analyses.studies.cnn.models import CNNSpec, feature_shape
from analyses.studies.cnn.options import Device, TrainConfig
from analyses.studies.cnn.runs import CnnRunResult, Curves
from fmlp.types import FloatArray, IntArray

__all__ = [
    "Dropout",
    "TensorData",
    "build_cnn",
    "epoch_batches",
    "evaluate",
    "make_adam",
    "mean_cross_entropy",
    "module_param_count",
    "shift_draws",
    "shift_images",
    "to_tensors",
    "torch_session",
    "train_cnn",
    "train_step",
]

IMAGE: Final = 28
SHIFT_STREAM: Final = 1
"""The random shifts of epoch e come from ``np.random.default_rng((seed, e, 1))``, a
stream apart from the sample order's ``(seed, e)``."""


class Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``: in training, each element is kept with
    probability 1 - p and scaled by 1 / (1 - p); the identity in eval mode. The mask
    comes from ``torch.rand_like`` rather than ``bernoulli_``, whose CPU kernel took
    about four times as long and a fifth of a training step's time."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def build_cnn(spec: CNNSpec) -> nn.Sequential:
    """The ``nn.Sequential`` of ``spec`` (layers in ``models.layer_table``'s order),
    initialized from torch's global generator (seed it, e.g. in ``torch_session``)."""
    layers: list[nn.Module] = []
    c_in = spec.in_channels
    for b in spec.blocks:
        # max-pool before ReLU: the same function and gradient as ReLU then max-pool
        # (both are monotone), with the ReLU on a pool^2 times smaller tensor.
        layers.append(nn.Conv2d(c_in, b.channels, b.kernel, padding=b.padding))
        if b.pool > 1:
            layers.append(nn.MaxPool2d(b.pool))
        layers.append(nn.ReLU(inplace=True))
        if spec.conv_dropout > 0:
            layers.append(Dropout(spec.conv_dropout))
        c_in = b.channels
    c, h, w = feature_shape(spec)
    layers.append(nn.Flatten())
    if spec.dropout > 0:
        layers.append(Dropout(spec.dropout))
    layers += [nn.Linear(c * h * w, spec.fc), nn.ReLU(inplace=True)]
    if spec.dropout > 0:
        layers.append(Dropout(spec.dropout))
    layers.append(nn.Linear(spec.fc, spec.n_classes))
    return nn.Sequential(*layers)


def module_param_count(module: nn.Module) -> int:
    """Parameters of a built torch module, counted by torch."""
    return sum(int(p.numel()) for p in module.parameters())


def check_device(device: Device) -> None:
    """ValueError when ``device`` is cuda and this process sees no CUDA device."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "the run asks for CUDA but torch sees no CUDA device here; run the study with "
            "device cpu (or auto)"
        )


@contextlib.contextmanager
def torch_session(seed: int, *, device: Device) -> Iterator[None]:
    """Seed torch and switch deterministic algorithms on for the block; restore the
    global RNG state and the flags afterwards. (The thread count is the task
    environment's: one.)"""
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
            torch.backends.cudnn.benchmark = prev[2]


@attrs.frozen(eq=False)
class TensorData:
    """The splits as tensors on ``device``: x (N, 1, 28, 28) float32, y int64; the
    training subset measured after each epoch apart."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_train_eval: torch.Tensor
    y_train_eval: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    device: Device


def to_tensors(data: StudyData, device: Device, eval_index: IntArray) -> TensorData:
    """StudyData (N, 784) -> tensors (N, 1, 28, 28) float32 on ``device``."""

    def images(x: FloatArray, split: str) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != IMAGE * IMAGE:
            raise ValueError(
                f"{split} images must be (N, 784) (28x28 flattened), got {x.shape}; the CNN "
                "study needs MNIST-shaped data"
            )
        arr = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1, IMAGE, IMAGE)
        if arr.flags.writeable:
            return torch.from_numpy(arr).to(device)
        # A read-only memory map of the data cache, shared by every worker: the tensor
        # reads it in place (training only indexes it, which copies), so torch's warning
        # that writing to it would be undefined is beside the point.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return torch.from_numpy(arr).to(device)

    def labels(y: IntArray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)

    return TensorData(
        x_train=images(data.x_train, "train"),
        y_train=labels(data.y_train),
        x_train_eval=images(data.x_train[eval_index], "train"),
        y_train_eval=labels(data.y_train[eval_index]),
        x_valid=images(data.x_valid, "valid"),
        y_valid=labels(data.y_valid),
        x_test=images(data.x_test, "test"),
        y_test=labels(data.y_test),
        device=device,
    )


def mean_cross_entropy(
    z: torch.Tensor, y: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of logits ``z`` (N, C) for labels ``y``, written with a one-hot
    product rather than ``F.cross_entropy``: torch's NLLLoss kernel has no deterministic
    CUDA implementation, this form is deterministic everywhere, and on the CPU its
    gradient is the same bit for bit.

    label_smoothing ``eps``: against the target ``(1 - eps) onehot + eps / C``, which is
    the expected cross-entropy when each label is replaced by a uniformly random class
    with probability ``eps`` (label noise, injected in expectation)."""
    target = F.one_hot(y, z.shape[1]).to(z.dtype)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / z.shape[1]
    return -(F.log_softmax(z, dim=1) * target).sum(dim=1).mean()


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, channels_last: bool
) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of ``model`` on the whole of (x, y), in eval mode
    (dropout off) under ``torch.inference_mode``, in chunks of ``batch``."""
    model.eval()
    total = 0.0
    wrong = 0
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch):
            xb, yb = x[start : start + batch], y[start : start + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            z = model(xb)
            # gather is deterministic without gradients; the sum is taken in float64.
            total -= float(F.log_softmax(z.double(), dim=1).gather(1, yb[:, None]).sum())
            wrong += int((z.argmax(dim=1) != yb).sum())
    n = int(x.shape[0])
    return total / n, wrong / n


def shift_draws(seed: int, epoch: int, n: int, max_shift: int) -> IntArray:
    """(n, 2) whole-pixel shifts (down, right) in [-max_shift, max_shift], one row per
    sample in the order epoch ``epoch`` visits them, from ``(seed, epoch)`` alone."""
    rng = np.random.default_rng((seed, epoch, SHIFT_STREAM))
    return rng.integers(-max_shift, max_shift + 1, size=(n, 2), dtype=np.int64)


def shift_images(x: torch.Tensor, shifts: torch.Tensor, max_shift: int) -> torch.Tensor:
    """``x`` (B, C, H, W) with image b moved down by ``shifts[b, 0]`` and right by
    ``shifts[b, 1]`` pixels (|shift| <= ``max_shift``), zeros filling the uncovered
    border: ``out[b, :, i, j] = x[b, :, i - dy, j - dx]``. Two gathers on the zero-padded
    batch, no loop over samples."""
    b, c, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dy, dx = shifts[:, 0], shifts[:, 1]
    rows = torch.arange(h, device=x.device)[None, :] + (p - dy)[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + (p - dx)[:, None]  # (B, W)
    picked_rows = torch.gather(padded, 2, rows[:, None, :, None].expand(b, c, h, w + 2 * p))
    return torch.gather(picked_rows, 3, cols[:, None, None, :].expand(b, c, h, w))


def epoch_batches(
    x: torch.Tensor, y: torch.Tensor, train: TrainConfig, *, seed: int, epoch: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches (images, labels) of epoch ``epoch``: the samples in the order
    ``np.random.default_rng((seed, epoch)).permutation(n)``, in mini-batches of
    ``train.batch_size``, each image moved by its random shift when ``train.shift`` > 0;
    images in the training's memory format."""
    n = int(x.shape[0])
    fmt = torch.channels_last if train.channels_last else torch.contiguous_format
    order = torch.from_numpy(np.random.default_rng((seed, epoch)).permutation(n)).to(x.device)
    shifts = (
        torch.from_numpy(shift_draws(seed, epoch, n, train.shift)).to(x.device)
        if train.shift
        else None
    )
    for start in range(0, n, train.batch_size):
        idx = order[start : start + train.batch_size]
        xb = x[idx]
        if shifts is not None:
            xb = shift_images(xb, shifts[start : start + train.batch_size], train.shift)
        yield xb.contiguous(memory_format=fmt), y[idx]


def make_adam(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameters; fused: one kernel per step instead of a dozen
    per tensor."""
    return torch.optim.Adam(
        model.parameters(), lr=train.lr, weight_decay=train.weight_decay, fused=True
    )


def train_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    xb: torch.Tensor,
    yb: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
) -> None:
    """One mini-batch: forward, backward, optimizer step (the model in train mode)."""
    loss = mean_cross_entropy(model(xb), yb, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    opt.step()


def train_cnn(
    spec: CNNSpec,
    data: StudyData,
    train: TrainConfig,
    *,
    seed: int,
    epochs: int,
    device: Device,
    eval_index: IntArray,
) -> CnnRunResult:
    """Train one CNN ``epochs`` epochs; after each, measure the training subset
    ``eval_index`` and the validation set; after the last, the test set."""
    if epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    check_device(device)
    tensors = to_tensors(data, device, eval_index)
    fmt = torch.channels_last if train.channels_last else torch.contiguous_format
    rows: list[tuple[float, float, float, float]] = []
    lrs: list[float] = []

    def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        return evaluate(model, x, y, batch=train.eval_batch, channels_last=train.channels_last)

    with torch_session(seed, device=device):
        model = build_cnn(spec).to(device).to(memory_format=fmt)
        n_params = module_param_count(model)
        opt = make_adam(model, train)
        for epoch in range(epochs):
            lr = train.lr_at(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            for xb, yb in epoch_batches(
                tensors.x_train, tensors.y_train, train, seed=seed, epoch=epoch
            ):
                train_step(model, opt, xb, yb, label_smoothing=train.label_smoothing)
            tl, te = measure(model, tensors.x_train_eval, tensors.y_train_eval)
            vl, ve = measure(model, tensors.x_valid, tensors.y_valid)
            rows.append((tl, te, vl, ve))
            lrs.append(lr)
        test_loss, test_error = measure(model, tensors.x_test, tensors.y_test)
    cols = list(zip(*rows, strict=True))
    return CnnRunResult(
        curves=Curves(
            epoch=tuple(range(1, epochs + 1)),
            train_loss=cols[0],
            train_error=cols[1],
            valid_loss=cols[2],
            valid_error=cols[3],
        ),
        lr=tuple(lrs),
        n_params=n_params,
        test_loss=test_loss,
        test_error=test_error,
        device=device,
        threads=torch.get_num_threads(),
    )
