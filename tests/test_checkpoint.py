"""Checkpoints: exact round trips, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp
from fmlp import checkpoint

MakeParams = Callable[..., fmlp.MLP]


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
