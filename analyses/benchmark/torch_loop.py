"""PyTorch eager as a training loop: the same MLP as ``nn.Linear``/``ReLU`` layers from the
same weights, trained with autograd and ``torch.optim.SGD``. torch is imported when a
loop is made, never at import time; its thread count is the caller's
(``environment.torch_threads_as``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from analyses.benchmark.spec import LR
from fmlp import MLP, Dense
from fmlp.types import FloatArray, IntArray

if TYPE_CHECKING:
    import torch


class TorchLoop:
    """PyTorch eager: nn.Linear/ReLU layers, autograd, torch.optim.SGD, same weights.
    Subclasses choose another optimizer with ``make_optimizer``."""

    def __init__(self, params: MLP, x: FloatArray, y: IntArray, batch: int) -> None:
        import torch

        self.torch = torch
        tdtype = torch.float32 if params.dtype == np.float32 else torch.float64
        modules: list[torch.nn.Module] = []
        for i, layer in enumerate(params.layers):
            lin = torch.nn.Linear(layer.fan_in, layer.fan_out, dtype=tdtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.w.T)))
                lin.bias.copy_(torch.from_numpy(layer.b))
            modules.append(lin)
            if i < len(params.layers) - 1:
                modules.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*modules)
        self.opt = self.make_optimizer(self.model.parameters())
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        self.batch = batch

    def make_optimizer(self, parameters: Iterator[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer of the model's ``parameters``: plain SGD at the benchmark's rate."""
        return self.torch.optim.SGD(parameters, lr=LR)

    def epoch(self, order: IntArray) -> None:
        torch = self.torch
        o = torch.from_numpy(order)
        for start in range(0, o.shape[0], self.batch):
            idx = o[start : start + self.batch]
            xb = self.x.index_select(0, idx)
            yb = self.y.index_select(0, idx)
            self.opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self.model(xb), yb)
            loss.backward()
            self.opt.step()

    def params(self) -> MLP:
        lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        return MLP(
            layers=tuple(
                Dense(
                    w=np.ascontiguousarray(lin.weight.detach().numpy().T),
                    b=lin.bias.detach().numpy().copy(),
                )
                for lin in lins
            )
        )
