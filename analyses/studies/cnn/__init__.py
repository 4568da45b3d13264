"""The CNN study: a PyTorch CNN with as many parameters as the search's chosen MLP,
trained 10 epochs on the same split; CNN against MLP; regularizers screened at one seed,
and the best against the vanilla CNN over several seeds.

- ``options``: the convolutions, vanilla's training, the techniques screened, the seeds;
- ``models``: the network as a record, its parameter count, the FC width that matches
  the MLP (no torch);
- ``runs``: its runs (one per CNN setup and seed) and their typed result records;
- ``net``: the torch module, random shifts, and the training run (imported only by the
  runs);
- ``device``: CUDA or the CPU, found out without importing torch;
- ``plan``: its runs in two stages (screening, then the chosen technique's other seeds);
- ``stats``: bands over seeds, aggregates, the verdict, the ranking of the techniques;
- ``summary``: the summary the report reads;
- ``figures`` and ``tables``: the screening, error and loss curves; the last epoch per
  model;
- ``section``: its part of the report;
- ``study``: the study the pipeline runs, and its entry in the registry;
- ``timing``: CPU seconds per epoch of each setup, one thread (a command of its own).

Importing this package does not import torch.
"""

from analyses.studies.cnn.models import CNNSpec, ConvBlock
from analyses.studies.cnn.options import CnnOptions, TrainConfig
from analyses.studies.cnn.runs import CnnRun, CnnRunResult
from analyses.studies.cnn.study import ENTRY, CnnStudy
from analyses.studies.cnn.summary import CnnSummary

__all__ = [
    "ENTRY",
    "CNNSpec",
    "CnnOptions",
    "CnnRun",
    "CnnRunResult",
    "CnnStudy",
    "CnnSummary",
    "ConvBlock",
    "TrainConfig",
]
