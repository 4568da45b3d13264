"""CPU seconds per epoch of the CNN study's runs, one thread each, as the pipeline runs
them (its study summary holds no timings):

    python -m analyses.studies.cnn.timing [--dataset mnist] [--steps 80] [--params 669706]

For the vanilla CNN and each technique screened: the CPU time (``time.process_time`` of
this process, one torch and BLAS thread) of ``steps`` training steps of the study's own
code (sample order, random shifts, dropout, Adam), after a few steps of warm-up, scaled
to one epoch of the training split; and of one evaluation of the training subset and
the validation set. CPU time, not wall time: on a machine shared with other work a
single-threaded process is charged only for what it ran.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Final

import attrs

from analyses.datasets import DataSpec, EvalSubset, load_data
from analyses.pipeline.tasks import run_environment
from analyses.studies.cnn.models import DEFAULT_BLOCKS, CNNSpec, match_params
from analyses.studies.cnn.options import TECHNIQUES, TrainConfig

WARMUP: Final = 5


@attrs.frozen
class EpochCost:
    """CPU seconds of one training epoch and of one evaluation (training subset and
    validation set), for one setup."""

    name: str
    train_seconds: float
    eval_seconds: float
    steps_timed: int


def measure(
    setups: Sequence[tuple[str, CNNSpec, TrainConfig]], data: DataSpec, *, steps: int
) -> list[EpochCost]:
    """The cost of each setup, one after the other in this process (one thread)."""
    out: list[EpochCost] = []
    with run_environment(threads=1, torch=True):
        import torch

        from analyses.studies.cnn import net

        d = load_data(data, "float32")
        tensors = net.to_tensors(d, "cpu", EvalSubset().indices(len(d.y_train)))
        n = int(tensors.x_train.shape[0])
        for name, spec, train in setups:
            fmt = torch.channels_last if train.channels_last else torch.contiguous_format
            with net.torch_session(0, device="cpu"):
                model = net.build_cnn(spec).to(memory_format=fmt)
                opt = net.make_adam(model, train)
                model.train()
                batches = net.epoch_batches(
                    tensors.x_train, tensors.y_train, train, seed=0, epoch=0
                )
                timed = 0
                start = 0.0
                for i, (xb, yb) in enumerate(batches):
                    if i == WARMUP:
                        start = time.process_time()
                    net.train_step(model, opt, xb, yb, label_smoothing=train.label_smoothing)
                    if i >= WARMUP:
                        timed += 1
                    if timed == steps:
                        break
                per_step = (time.process_time() - start) / max(timed, 1)
                eval0 = time.process_time()
                for x, y in (
                    (tensors.x_train_eval, tensors.y_train_eval),
                    (tensors.x_valid, tensors.y_valid),
                ):
                    net.evaluate(
                        model, x, y, batch=train.eval_batch, channels_last=train.channels_last
                    )
                eval_seconds = time.process_time() - eval0
            steps_per_epoch = -(-n // train.batch_size)
            out.append(EpochCost(name, per_step * steps_per_epoch, eval_seconds, timed))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    parser.add_argument("--steps", type=int, default=80, help="training steps timed per setup")
    parser.add_argument(
        "--params", type=int, default=669_706, help="the MLP's parameter count to match"
    )
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be a positive integer, got {args.steps}")
    vanilla = match_params(DEFAULT_BLOCKS, args.params)
    train = TrainConfig()
    setups = [("vanilla", vanilla, train)]
    setups += [(t.name, *t.apply(vanilla, train)) for t in TECHNIQUES]
    costs = measure(setups, DataSpec(args.dataset), steps=args.steps)
    width = max(len(c.name) for c in costs)
    print(f"{'setup':{width}s} {'train s/epoch':>14s} {'eval s':>8s}   (CPU seconds, one thread)")
    for c in costs:
        print(f"{c.name:{width}s} {c.train_seconds:14.2f} {c.eval_seconds:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
