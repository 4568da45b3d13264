"""The CNN study: a PyTorch CNN with as many parameters as the search's chosen MLP,
trained 10 epochs on the same split; CNN against MLP; regularizers screened at one seed,
and the best against the vanilla CNN over several seeds.

- ``models``: the network as a record, its parameter count, the FC width that matches
  the MLP (no torch);
- ``runs``: its options and techniques, its runs (one per CNN setup and seed, one for
  the MLP) and their typed result records;
- ``net``: the torch module, random shifts, and the training run (imported only by the
  runs);
- ``summary``: the summary the report reads, and the study the pipeline runs (a plan in
  two stages: screening, then the chosen technique's other seeds);
- ``figures``: the screening, error and loss curves;
- ``timing``: CPU seconds per epoch of each setup, one thread (a command of its own).

Importing this package does not import torch.
"""

from analyses.studies.cnn.models import CNNSpec, ConvBlock
from analyses.studies.cnn.runs import (
    CnnOptions,
    CnnRun,
    CnnRunResult,
    TrainConfig,
)
from analyses.studies.cnn.summary import CnnStudy, CnnSummary

__all__ = [
    "CNNSpec",
    "CnnOptions",
    "CnnRun",
    "CnnRunResult",
    "CnnStudy",
    "CnnSummary",
    "ConvBlock",
    "TrainConfig",
]
