"""fmlp: a typed, functional numpy MLP with hand-written backpropagation.

Parameters are immutable attrs records (``MLP`` of ``Dense`` layers); everything else is
a pure function over them: ``init``, ``forward``, ``grad``, the optimizers' ``(init,
update)`` pairs, ``fit`` and ``evaluate``. ``fmlp.data`` loads MNIST and
``fmlp.template`` offers the classic assignment's ``NN`` class over this core.
"""

from fmlp.activations import relu, relu_grad, sigmoid, sigmoid_grad, tanh, tanh_grad
from fmlp.losses import cross_entropy, log_softmax, softmax, softmax_cross_entropy_grad
from fmlp.model import (
    Cache,
    backward,
    forward,
    forward_with_cache,
    grad,
    logits,
    loss,
    predict,
)
from fmlp.optim import (
    MomentumState,
    Optimizer,
    SgdState,
    apply_updates,
    cosine_decay,
    momentum,
    sgd,
    step_decay,
)
from fmlp.params import MLP, Dense, count_params, init, n_params
from fmlp.train import (
    EpochMetrics,
    Evaluation,
    StepMetrics,
    TrainState,
    evaluate,
    fit,
    init_state,
    make_step,
    scan,
    sgd_step,
    train_epoch,
)
from fmlp.tree import (
    tree_add,
    tree_allclose,
    tree_leaves,
    tree_map,
    tree_scale,
    tree_sub,
    tree_vdot,
    tree_zeros_like,
)

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Cache",
    "Dense",
    "EpochMetrics",
    "Evaluation",
    "MomentumState",
    "Optimizer",
    "SgdState",
    "StepMetrics",
    "TrainState",
    "apply_updates",
    "backward",
    "cosine_decay",
    "count_params",
    "cross_entropy",
    "evaluate",
    "fit",
    "forward",
    "forward_with_cache",
    "grad",
    "init",
    "init_state",
    "log_softmax",
    "logits",
    "loss",
    "make_step",
    "momentum",
    "n_params",
    "predict",
    "relu",
    "relu_grad",
    "scan",
    "sgd",
    "sgd_step",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_cross_entropy_grad",
    "step_decay",
    "tanh",
    "tanh_grad",
    "train_epoch",
    "tree_add",
    "tree_allclose",
    "tree_leaves",
    "tree_map",
    "tree_scale",
    "tree_sub",
    "tree_vdot",
    "tree_zeros_like",
]
