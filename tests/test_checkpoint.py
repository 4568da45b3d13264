"""Checkpoints of parameters and of whole training states: exact round trips, a resumed
fit equal to the uninterrupted one, atomic and durable writes, and clear errors for bad
or mismatched files."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp
from fmlp import checkpoint
from fmlp.optim import Optimizer
from fmlp.tree import tree_flatten_with_paths

MakeParams = Callable[..., fmlp.MLP]
MakeBatch = Callable[..., tuple[NDArray[Any], NDArray[np.int64]]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_round_trip_is_exact(
    name: Any, dtype: Any, tmp_path: Path, make_params: MakeParams
) -> None:
    params = make_params((7, 5, 4, 3), name, dtype=dtype)
    path = checkpoint.save(tmp_path / "nested" / "dir" / "model.npz", params)
    assert path == tmp_path / "nested" / "dir" / "model.npz" and path.is_file()
    loaded = checkpoint.load(path)
    assert loaded.activation == name
    assert loaded.sizes == params.sizes
    assert loaded.dtype == np.dtype(dtype)
    for a, b in zip(fmlp.tree_leaves(loaded), fmlp.tree_leaves(params)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # the loaded model computes exactly what the saved one did
    x = np.random.default_rng(0).standard_normal((4, 7)).astype(dtype)
    np.testing.assert_array_equal(fmlp.forward(loaded, x), fmlp.forward(params, x))


def test_save_accepts_str_and_overwrites(tmp_path: Path, make_params: MakeParams) -> None:
    first = make_params((3, 2), seed=0)
    second = make_params((3, 4, 2), "sigmoid", seed=1)
    target = str(tmp_path / "m.npz")
    checkpoint.save(target, first)
    checkpoint.save(target, second)
    loaded = checkpoint.load(target)
    assert loaded.sizes == (3, 4, 2) and loaded.activation == "sigmoid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary files left


def test_save_failure_leaves_no_partial_file(tmp_path: Path, make_params: MakeParams) -> None:
    target = tmp_path / "m.npz"
    checkpoint.save(target, make_params((3, 2)))
    before = target.read_bytes()
    (tmp_path / "blocker").mkdir()
    with pytest.raises(OSError):
        checkpoint.save(
            tmp_path / "blocker", make_params((3, 2), seed=5)
        )  # a directory cannot be replaced by a file
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "m.npz"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "absent.npz")


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all", b"PK\x03\x04garbage", b"\x93NUMPY garbage"],
    ids=["empty", "text", "zip-magic", "npy-magic"],
)
def test_garbage_file_is_a_clear_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(
        ValueError, match=r"corrupt checkpoint .*bad\.npz.*delete it and train again"
    ):
        checkpoint.load(path)


def test_truncated_file_is_a_clear_error(tmp_path: Path, make_params: MakeParams) -> None:
    path = checkpoint.save(tmp_path / "m.npz", make_params((20, 10, 3)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        checkpoint.load(path)


def test_missing_entries_are_a_clear_error(tmp_path: Path) -> None:
    no_activation = tmp_path / "a.npz"
    np.savez(no_activation, w0=np.zeros((3, 2)), b0=np.zeros(2))
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        checkpoint.load(no_activation)
    no_bias = tmp_path / "b.npz"
    np.savez(no_bias, w0=np.zeros((3, 2)), activation=np.array("relu"))
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        checkpoint.load(no_bias)


def test_inconsistent_contents_are_rejected(tmp_path: Path) -> None:
    bad_name = tmp_path / "a.npz"
    np.savez(bad_name, w0=np.zeros((3, 2)), b0=np.zeros(2), activation=np.array("gelu"))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        checkpoint.load(bad_name)
    bad_shape = tmp_path / "b.npz"
    np.savez(
        bad_shape,
        w0=np.zeros((3, 2)),
        b0=np.zeros(2),
        w1=np.zeros((5, 2)),
        b1=np.zeros(2),
        activation=np.array("relu"),
    )
    with pytest.raises(ValueError, match="layer 1 takes 5 inputs but layer 0 gives 2"):
        checkpoint.load(bad_shape)


def test_no_pickle_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    buf = io.BytesIO()
    np.savez(
        buf, w0=np.array([object()], dtype=object), b0=np.zeros(2), activation=np.array("relu")
    )
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError):
        checkpoint.load(path)


@pytest.fixture
def fsync_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors os.fsync is called with from now on (it still syncs)."""
    calls: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_save_is_durable(tmp_path: Path, make_params: MakeParams, fsync_calls: list[int]) -> None:
    """save goes through fmlp.atomic, which fsyncs the file and its folder."""
    checkpoint.save(tmp_path / "m.npz", make_params((3, 2)))
    assert len(fsync_calls) >= 2  # the file, then the folder


# ------------------------------------------------------------------ training states

OPTIMIZERS: dict[str, Callable[[], Optimizer[Any]]] = {
    "sgd": lambda: fmlp.sgd(fmlp.cosine_decay(0.1, total_steps=20)),
    "momentum": lambda: fmlp.momentum(0.05, 0.9),
    "nesterov-l2": lambda: fmlp.chain(
        fmlp.add_decayed_weights(0.01), fmlp.momentum(0.05, 0.9, nesterov=True)
    ),
    "adam": lambda: fmlp.adam(0.01),
    "adamw": lambda: fmlp.adamw(0.01, weight_decay=0.1),
}


def trained_state(
    opt: Optimizer[Any],
    make_params: MakeParams,
    make_batch: MakeBatch,
    *,
    name: Any = "tanh",
    dtype: Any = np.float64,
) -> fmlp.TrainState[Any]:
    """A state after 5 steps: non-zero velocities and moments, counts of 5."""
    params = make_params((6, 5, 4), name, dtype=dtype)
    x, y = make_batch(20, 6, 4, dtype=dtype)
    state, _ = fmlp.train_epoch(
        fmlp.init_state(params, opt), x, y, optimizer=opt, batch_size=4, seed=0, epoch=0
    )
    return state


def assert_same_state(a: fmlp.TrainState[Any], b: fmlp.TrainState[Any]) -> None:
    """Equal leaves (values, dtypes, shapes) and equal static fields, bit for bit."""
    (la, sa), (lb, sb) = tree_flatten_with_paths(a), tree_flatten_with_paths(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (p, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape, p
        np.testing.assert_array_equal(x, y, err_msg=p)
    assert sa == sb
    assert [type(v) for _, v in sa] == [type(v) for _, v in sb]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_round_trip_is_exact(
    name: str, dtype: Any, tmp_path: Path, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    opt = OPTIMIZERS[name]()
    state = trained_state(opt, make_params, make_batch, dtype=dtype)
    path = checkpoint.save_state(tmp_path / "runs" / "state.npz", state)
    assert path == tmp_path / "runs" / "state.npz"
    like = fmlp.init_state(make_params((6, 5, 4), "tanh", seed=9, dtype=dtype), opt)
    loaded = checkpoint.load_state(path, like=like)
    assert_same_state(loaded, state)
    assert type(loaded.opt_state) is type(state.opt_state)
    assert loaded.step == 5 and loaded.diverged is False
    _, statics = tree_flatten_with_paths(loaded)
    assert ("step", 5) in statics and ("params.activation", "tanh") in statics
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.npz"]


def test_state_round_trip_keeps_the_diverged_flag(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((16, 8))
    y = np.arange(16) % 3
    state, _ = fmlp.fit(fmlp.init((8, 6, 3), seed=0), x, y, epochs=1, batch_size=8, lr=1e300)
    assert state.diverged
    path = checkpoint.save_state(tmp_path / "s.npz", state)
    like = fmlp.init_state(fmlp.init((8, 6, 3), seed=1), fmlp.sgd(1e300))
    assert_same_state(checkpoint.load_state(path, like=like), state)


def test_resume_from_a_loaded_state_equals_the_uninterrupted_fit(tmp_path: Path) -> None:
    """fit(8) against fit(3), save_state, load_state into a fresh template, resume(3, 8):
    the same parameters, optimizer state and metrics, bit for bit (adam)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((70, 8))
    y = rng.integers(0, 3, 70)
    xv, yv = x[:20] + 0.1, y[:20]
    opt = fmlp.adam(0.01)
    params = fmlp.init((8, 10, 3), activation="relu", seed=2)
    kwargs: dict[str, Any] = {"batch_size": 16, "seed": 3, "validation": (xv, yv)}
    full_state, full = fmlp.fit(params, x, y, epochs=8, optimizer=opt, **kwargs)
    head_state, head = fmlp.fit(params, x, y, epochs=3, optimizer=opt, **kwargs)
    path = checkpoint.save_state(tmp_path / "run.npz", head_state)
    like = fmlp.init_state(fmlp.init((8, 10, 3), activation="relu", seed=99), opt)
    loaded = checkpoint.load_state(path, like=like)
    state, tail = fmlp.resume(loaded, x, y, optimizer=opt, start_epoch=3, epochs=8, **kwargs)
    assert_same_state(state, full_state)
    for field in ("train_loss", "running_loss", "val_loss", "val_accuracy", "diverged"):
        np.testing.assert_array_equal(
            np.concatenate([getattr(head, field), getattr(tail, field)]),
            getattr(full, field),
            err_msg=field,
        )


def test_load_state_names_what_does_not_match_like(
    tmp_path: Path, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    state = trained_state(fmlp.adam(0.01), make_params, make_batch)
    path = checkpoint.save_state(tmp_path / "s.npz", state)

    def like(sizes: tuple[int, ...], name: Any, dtype: Any, opt: Any) -> fmlp.TrainState[Any]:
        return fmlp.init_state(make_params(sizes, name, dtype=dtype), opt)

    adam = fmlp.adam(0.01)
    with pytest.raises(ValueError, match=r"params.activation is 'tanh' in the file but 'relu'"):
        checkpoint.load_state(path, like=like((6, 5, 4), "relu", np.float64, adam))
    with pytest.raises(ValueError, match=r"params.layers.0.w is float64 \(6, 5\) in the file"):
        checkpoint.load_state(path, like=like((6, 5, 4), "tanh", np.float32, adam))
    with pytest.raises(ValueError, match=r"params.layers.1.w is float64 \(5, 4\).*\(5, 3\)"):
        checkpoint.load_state(path, like=like((6, 5, 3), "tanh", np.float64, adam))
    with pytest.raises(ValueError, match=r"does not match like: .*structured as.*like is"):
        checkpoint.load_state(path, like=like((6, 5, 4), "tanh", np.float64, fmlp.sgd(0.1)))
    with pytest.raises(ValueError, match=r"does not match like: .*structured as"):
        checkpoint.load_state(path, like=like((6, 5, 5, 4), "tanh", np.float64, adam))
    params_only = checkpoint.save(tmp_path / "p.npz", state.params)
    with pytest.raises(ValueError, match=r"holds no TrainState.*fmlp.checkpoint.load"):
        checkpoint.load_state(params_only, like=like((6, 5, 4), "tanh", np.float64, adam))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.load_state(tmp_path / "absent.npz", like=state)


@pytest.mark.parametrize("cut", [0.0, 0.01, 0.1, 0.5, 0.99])
def test_corrupt_or_truncated_state_says_to_delete_it(
    cut: float, tmp_path: Path, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    state = trained_state(fmlp.momentum(0.1), make_params, make_batch)
    path = checkpoint.save_state(tmp_path / "s.npz", state)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match=r"corrupt checkpoint .*s\.npz.*delete it"):
        checkpoint.load_state(path, like=state)


def test_a_state_file_missing_an_entry_is_corrupt(
    tmp_path: Path, make_params: MakeParams, make_batch: MakeBatch
) -> None:
    state = trained_state(fmlp.momentum(0.1), make_params, make_batch)
    path = checkpoint.save_state(tmp_path / "s.npz", state)
    with np.load(path) as z:
        entries = {k: z[k] for k in z.files if k != "static:step"}
    np.savez(path, **entries)
    with pytest.raises(ValueError, match=r"corrupt checkpoint.*missing \['static:step'\]"):
        checkpoint.load_state(path, like=state)


def test_save_state_is_atomic_and_durable(
    tmp_path: Path,
    make_params: MakeParams,
    make_batch: MakeBatch,
    fsync_calls: list[int],
) -> None:
    state = trained_state(fmlp.adam(0.01), make_params, make_batch)
    target = checkpoint.save_state(tmp_path / "s.npz", state)
    before = target.read_bytes()
    (tmp_path / "blocker").mkdir()
    with pytest.raises(OSError):  # a directory cannot be replaced by a file
        checkpoint.save_state(tmp_path / "blocker", state)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "s.npz"]
    fsync_calls.clear()
    checkpoint.save_state(target, state)
    assert len(fsync_calls) >= 2  # the file, then the folder


def test_a_state_with_an_object_array_is_not_written(
    tmp_path: Path, make_params: MakeParams
) -> None:
    params = make_params((3, 2))
    state = fmlp.init_state(params, fmlp.sgd(0.1))
    layer = params.layers[0]
    objects = fmlp.Dense(w=layer.w.astype(object), b=layer.b.astype(object))
    bad = fmlp.TrainState(params=fmlp.MLP(layers=(objects,)), opt_state=state.opt_state)
    with pytest.raises(ValueError, match="pickle"):
        checkpoint.save_state(tmp_path / "s.npz", bad)
    assert not (tmp_path / "s.npz").exists()
