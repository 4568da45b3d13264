"""idx files, the format MNIST and Fashion-MNIST are distributed in.

``parse_idx`` reads one unsigned-byte idx file; ``read_idx_dir`` finds the four files
of a dataset (gzip-compressed or not) in a folder or in torchvision's
``<root>/<MNIST|FashionMNIST>/raw`` layout and splits the 60,000-image training file
into its first ``TRAIN_SIZE`` images (train) and the rest (valid), which reproduces the
original pickle's split exactly. torchvision, when allowed, downloads the files.
"""

from __future__ import annotations

import gzip
import importlib
import math
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np

from fmlp.data.records import (
    IMAGE_SHAPE,
    N_PIXELS,
    U8,
    DataError,
    DataNotFoundError,
    RawDataset,
    RawSplit,
    _check_name,
    _check_raw_split,
)

TRAIN_SIZE: Final = 50_000
"""Images of the idx training file that go to ``train``; the rest go to ``valid``."""

IDX_STEMS: Final[Mapping[str, tuple[str, ...]]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
TORCHVISION_SUBDIR: Final[Mapping[str, str]] = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


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
            f"{where}: inconsistent sizes: the header declares "
            f"{'x'.join(map(str, dims))} = {expected} bytes, "
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
            f"inconsistent sizes: {images_path} holds {images.shape[0]} images, "
            f"{labels_path} {labels.shape[0]} labels"
        )
    return _check_raw_split(images.reshape(images.shape[0], N_PIXELS), labels, str(labels_path))


def _find_idx(directory: Path) -> dict[str, Path] | None:
    """The four idx files in ``directory`` (uncompressed preferred to ``.gz``).

    None if any of them is missing.
    """
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
