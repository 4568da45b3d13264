"""What passes between studies: typed artifacts and their keys.

A study that provides an artifact returns it from its summary; a study that needs one
declares its key and gets it from the pipeline, never by importing the other study or
reading its files by path. The keys and records live here, in neither study.
"""

from __future__ import annotations

from typing import Final

import attrs

from analyses.datasets import EvalSubset
from analyses.mlp import MlpConfig
from analyses.pipeline.study import ArtifactKey


@attrs.frozen
class ChosenMlp:
    """The MLP the hyper-parameter search chose, after its last epoch.

    params_file: its parameters (``fmlp.checkpoint``), relative to the results folder.
    val_accuracy / val_loss: per epoch 1..E on the validation set; train_loss /
    train_error: per epoch on the training samples ``eval_subset`` names.
    test_accuracy: measured once, after the choice.
    """

    config: MlpConfig
    n_params: int
    params_file: str
    params_sha256: str
    val_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_loss: tuple[float, ...]
    train_error: tuple[float, ...]
    eval_subset: EvalSubset
    test_accuracy: float
    test_loss: float


CHOSEN_MLP: Final = ArtifactKey("search.chosen_mlp", ChosenMlp)
"""The search's chosen MLP: the finite-difference study checks its gradient, the CNN
study matches its size and compares with it."""
