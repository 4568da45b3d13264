"""Checkpoints as ``.npz`` files (no pickle), written atomically and durably.

``save`` / ``load`` keep an MLP's parameters. ``save_state`` / ``load_state`` keep a
whole ``TrainState``: every array leaf of the parameters and of the optimizer state
(whatever chain of transformations built it) and every static field (the activation,
the step count, the diverged flag, the optimizers' counts), so that ``fmlp.resume`` from
a loaded state continues the run bit for bit.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Final, TypeVar

import numpy as np

from fmlp.atomic import atomic_open
from fmlp.params import MLP, Dense
from fmlp.train import TrainState
from fmlp.tree import tree_flatten_with_paths, tree_structure, tree_unflatten_with_paths
from fmlp.types import Array, check_activation

S = TypeVar("S")

STATE_FORMAT: Final = "fmlp.TrainState/1"
"""The ``format`` entry of a state checkpoint; another value is refused."""

_LEAF: Final = "leaf:"
_STATIC: Final = "static:"
_READ_ERRORS: Final = (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError)


def _write_npz(path: str | os.PathLike[str], arrays: dict[str, Array]) -> Path:
    """``arrays`` as an uncompressed .npz at ``path``, through ``fmlp.atomic``: a reader
    sees the old file or the new one, and the new one survives a crash once written."""
    with atomic_open(path) as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return Path(path)


def _read_npz(path: str | os.PathLike[str]) -> dict[str, Array]:
    """Every entry of the .npz at ``path``; a clear ValueError for a corrupt file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # our own file handle: np.load leaks its handle when the content is not an archive
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                return {name: z[name] for name in z.files}
    except _READ_ERRORS as exc:
        raise ValueError(f"corrupt checkpoint {path}: {exc}; delete it and train again") from exc


# ------------------------------------------------------------------ parameters


def save(path: str | os.PathLike[str], params: MLP) -> Path:
    """Write ``params`` to ``path`` (an .npz: w0, b0, w1, b1, ..., activation) atomically
    and durably, so an interrupted save never leaves a partial file."""
    arrays: dict[str, Array] = {"activation": np.array(params.activation)}
    for i, layer in enumerate(params.layers):
        arrays[f"w{i}"] = layer.w
        arrays[f"b{i}"] = layer.b
    return _write_npz(path, arrays)


def load(path: str | os.PathLike[str]) -> MLP:
    """Read parameters written by ``save``; a clear ValueError for a corrupt file."""
    z = _read_npz(path)
    try:
        n = sum(1 for k in z if k.startswith("w"))
        layers = tuple(Dense(w=z[f"w{i}"], b=z[f"b{i}"]) for i in range(n))
        activation = check_activation(str(z["activation"]))
    except _READ_ERRORS as exc:
        raise ValueError(f"corrupt checkpoint {path}: {exc}; delete it and train again") from exc
    return MLP(layers=layers, activation=activation)


# ------------------------------------------------------------------ training states


def _static_array(path: str, value: object) -> Array:
    """A static field as a 0-d array of a type that reads back as the same value."""
    if isinstance(value, (bool, np.bool_)):
        return np.array(bool(value))
    if isinstance(value, (int, np.integer)):
        return np.array(int(value), dtype=np.int64)
    if isinstance(value, (float, np.floating)):
        return np.array(float(value), dtype=np.float64)
    if isinstance(value, str):
        return np.array(value)
    raise TypeError(
        f"cannot store the static field {path} of type {type(value).__name__}: "
        f"checkpoints hold bools, ints, floats and strings"
    )


def _static_value(file: Path, path: str, stored: Array, expected: object) -> object:
    """The stored static field, checked against ``like``'s: the same kind of value, and for
    a string (an activation name, configuration) the same value."""
    kind = _static_array(path, expected).dtype.kind
    if stored.shape != () or stored.dtype.kind != kind:
        raise ValueError(
            f"checkpoint {file} does not match like: {path} is stored as {stored.dtype} "
            f"{stored.shape}, but like holds a {type(expected).__name__}"
        )
    value = stored.item()
    if kind == "U" and value != expected:
        raise ValueError(
            f"checkpoint {file} does not match like: {path} is {value!r} in the file "
            f"but {expected!r} in like"
        )
    convert: dict[str, type] = {"b": bool, "i": int, "f": float, "U": str}
    return convert[kind](value)


def save_state(path: str | os.PathLike[str], state: TrainState[S]) -> Path:
    """Write a whole TrainState to ``path`` (.npz, no pickle), atomically and durably.

    Entries: ``format``; ``structure`` (``fmlp.tree.tree_structure`` of the state);
    ``leaf:<path>`` for every array of the parameters and the optimizer state, with its
    dtype and shape; ``static:<path>`` for every static field (activation names, the step
    count, the diverged flag, the optimizers' counts) as a 0-d array.
    """
    leaves, statics = tree_flatten_with_paths(state)
    arrays: dict[str, Array] = {
        "format": np.array(STATE_FORMAT),
        "structure": np.array(tree_structure(state)),
    }
    for p, leaf in leaves:
        arrays[_LEAF + p] = leaf
    for p, value in statics:
        arrays[_STATIC + p] = _static_array(p, value)
    return _write_npz(path, arrays)


def load_state(path: str | os.PathLike[str], *, like: TrainState[S]) -> TrainState[S]:
    """Read a TrainState written by ``save_state``, shaped like ``like``.

    ``like`` (e.g. ``init_state(params, optimizer)`` for the run's model and optimizer)
    fixes what the file must hold: the same structure (the same chain of optimizer
    states), every leaf's shape and dtype, and the activation; a mismatch is a
    ValueError that names it. The values (arrays, step, diverged flag, counts) come from
    the file, exactly as saved. A corrupt or truncated file is a ValueError saying to
    delete it.
    """
    path = Path(path)
    z = _read_npz(path)
    fmt = str(z["format"]) if "format" in z else None
    if fmt != STATE_FORMAT:
        if fmt is None:
            raise ValueError(
                f"{path} holds no TrainState (it has no 'format' entry); a file written by "
                f"fmlp.checkpoint.save holds parameters only: read it with fmlp.checkpoint.load"
            )
        raise ValueError(f"{path} is in the format {fmt!r}, not {STATE_FORMAT!r}")
    want_structure = tree_structure(like)
    got_structure = str(z["structure"]) if "structure" in z else None
    if got_structure != want_structure:
        raise ValueError(
            f"checkpoint {path} does not match like: it holds a state structured as "
            f"{got_structure}, like is {want_structure}"
        )
    like_leaves, like_statics = tree_flatten_with_paths(like)
    expected = {_LEAF + p for p, _ in like_leaves} | {_STATIC + p for p, _ in like_statics}
    entries = set(z) - {"format", "structure"}
    if entries != expected:
        missing, extra = sorted(expected - entries), sorted(entries - expected)
        raise ValueError(
            f"corrupt checkpoint {path}: entries missing {missing}, unexpected {extra}; "
            f"delete it and train again"
        )
    leaves: dict[str, Array] = {}
    for p, want in like_leaves:
        got = z[_LEAF + p]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(
                f"checkpoint {path} does not match like: {p} is {got.dtype} {got.shape} "
                f"in the file but {want.dtype} {want.shape} in like"
            )
        leaves[p] = got
    statics = {p: _static_value(path, p, z[_STATIC + p], want) for p, want in like_statics}
    return tree_unflatten_with_paths(like, leaves, statics)
