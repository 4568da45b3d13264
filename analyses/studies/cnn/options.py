"""The CNN study's options: the convolutions, vanilla's training, the seeds, the
techniques screened and the device."""

from __future__ import annotations

import math
from typing import Final, Literal

import attrs

from analyses.datasets import EvalSubset
from analyses.studies.cnn.models import DEFAULT_BLOCKS, QUICK_BLOCKS, CNNSpec, ConvBlock
from fmlp.checks import positive_int
from fmlp.types import is_int

STUDY: Final = "cnn"

DeviceName = Literal["auto", "cpu", "cuda"]
Device = Literal["cpu", "cuda"]


# ------------------------------------------------------------------- configuration


@attrs.frozen
class TrainConfig:
    """How every CNN is trained: Adam at ``lr`` decayed by ``lr_decay`` after each epoch
    (L2 ``weight_decay`` added to the gradient), mini-batches of ``batch_size`` in the
    order ``np.random.default_rng((seed, epoch)).permutation(n)``, channels_last
    tensors; evaluation in chunks of ``eval_batch``.

    shift: when positive, every training image is moved by a random whole number of
    pixels in [-shift, shift] along each axis (zeros fill the uncovered border), drawn
    per sample for each epoch from ``np.random.default_rng((seed, epoch, 1))``: data
    augmentation, done on the batch tensor. label_smoothing ``eps``: the training loss
    is the cross-entropy against ``(1 - eps) onehot + eps / 10``, the expected loss when
    each label is replaced by a uniformly random class with probability ``eps`` (label
    noise injected in expectation); the curves measure the plain cross-entropy."""

    batch_size: int = 128
    lr: float = 2e-3
    lr_decay: float = 0.75
    weight_decay: float = 0.0
    shift: int = 0
    label_smoothing: float = 0.0
    eval_batch: int = 500
    channels_last: bool = True

    def __attrs_post_init__(self) -> None:
        for name in ("batch_size", "eval_batch"):
            positive_int(name, getattr(self, name), "TrainConfig")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}"
            )
        if not is_int(self.shift) or not 0 <= self.shift < 14:
            raise ValueError(f"shift must be an integer in [0, 14) pixels, got {self.shift!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based)."""
        return self.lr * self.lr_decay**epoch

    def describe(self) -> str:
        wd = f", L2 weight decay {self.weight_decay:g}" if self.weight_decay else ""
        extra = ""
        if self.shift:
            extra += f"; random shifts of up to {self.shift} pixel(s)"
        if self.label_smoothing:
            extra += f"; label smoothing {self.label_smoothing:g}"
        return (
            f"Adam (0.9, 0.999, 1e-8), lr {self.lr:g} x {self.lr_decay:g}^epoch{wd}, "
            f"mini-batch {self.batch_size}{extra}"
        )


@attrs.frozen
class Technique:
    """A regularizer tried against the vanilla CNN: its name, a few words on it, and what
    it changes: dropout before both FC layers (``dropout``), L2 weight decay added to
    the gradient (``weight_decay``), random shifts of up to ``shift`` pixels (data
    augmentation: noise injected into the inputs), label smoothing (noise injected
    into the targets, in expectation). Everything else (network, optimizer, epochs,
    data) stays vanilla's."""

    name: str
    text: str
    dropout: float = 0.0
    weight_decay: float = 0.0
    shift: int = 0
    label_smoothing: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.name or self.name == "vanilla":
            raise ValueError(f"a technique needs a name other than vanilla, got {self.name!r}")
        if not (self.dropout or self.weight_decay or self.shift or self.label_smoothing):
            raise ValueError(f"the technique {self.name} changes nothing: set what it regularizes")

    def apply(self, spec: CNNSpec, train: TrainConfig) -> tuple[CNNSpec, TrainConfig]:
        """Vanilla's network and training with this technique."""
        return (
            attrs.evolve(spec, dropout=self.dropout),
            attrs.evolve(
                train,
                weight_decay=self.weight_decay,
                shift=self.shift,
                label_smoothing=self.label_smoothing,
            ),
        )


TECHNIQUES: Final = (
    Technique(
        "shifts",
        "random shifts of up to 1 pixel per axis (data augmentation: noise in the inputs)",
        shift=1,
    ),
    Technique(
        "shifts + smoothing",
        "both: random shifts of up to 1 pixel and label smoothing 0.1",
        shift=1,
        label_smoothing=0.1,
    ),
)
"""The techniques the study screens: noise injected into the inputs (random shifts), and
the same with noise injected into the targets (label smoothing) too, so the pair shows
what smoothing adds. Each screening run costs as much as a vanilla run: two keep the
whole pipeline within its time budget."""


@attrs.frozen
class CnnOptions:
    """Everything that fixes the study's results besides the data and the MLP.

    blocks: the convolutions (the FC width is then matched to the MLP's parameter
    count). train: vanilla's training. seeds: the vanilla CNN's and the chosen
    technique's; the first is the screening seed. techniques: the regularizers
    screened, one run each at the screening seed. device: ``auto`` (CUDA when the
    machine has it, else the CPU), ``cpu`` or ``cuda``.
    """

    blocks: tuple[ConvBlock, ...] = DEFAULT_BLOCKS
    train: TrainConfig = TrainConfig()
    epochs: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    techniques: tuple[Technique, ...] = TECHNIQUES
    device: DeviceName = "auto"
    eval_subset: EvalSubset = attrs.field(factory=EvalSubset)

    def __attrs_post_init__(self) -> None:
        if not self.blocks:
            raise ValueError("CnnOptions: give at least one conv block")
        positive_int("epochs", self.epochs, "CnnOptions")
        if not self.seeds:
            raise ValueError("CnnOptions: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds) or any(
            not is_int(s) or s < 0 for s in self.seeds
        ):
            raise ValueError(
                f"CnnOptions: seeds must be distinct non-negative integers, got {self.seeds}"
            )
        if not self.techniques:
            raise ValueError("CnnOptions: give at least one technique to screen")
        names = [t.name for t in self.techniques]
        if len(set(names)) != len(names):
            raise ValueError(f"CnnOptions: technique names repeat: {names}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"CnnOptions: device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def screening_seed(self) -> int:
        return self.seeds[0]

    @classmethod
    def full(cls) -> CnnOptions:
        """The study's setting: the defaults."""
        return cls()

    @classmethod
    def quick(cls) -> CnnOptions:
        """The smoke run: smaller convolutions, 2 epochs, the same seeds and techniques."""
        return cls(blocks=QUICK_BLOCKS, epochs=2)
