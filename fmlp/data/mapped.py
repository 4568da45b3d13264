"""The data cache as memory-mapped arrays: one copy of a dataset per machine.

``open_mapped(name, dtype=np.float32)`` returns the same :class:`Dataset` as ``load``,
but its arrays are read-only memory maps of uncompressed ``.npy`` files in the cache,
so every process that opens them shares the operating system's pages of one copy
instead of holding its own (70,000 x 784 float32 pixels are 220 MB; float64, 440 MB).
The files are made from the verified cache file ``<name>.npz`` the first time they are
needed (an older cache, which holds only that file, is upgraded this way) and live in
``<cache>/<name>.mapped/``::

    manifest.json              what they were made from, and each file's sha256 and stamp
    train_x.float32.npy        x = k / 256 in the dtype asked for, (N, 784)
    train_y.int64.npy          labels, (N,)
    ...                        the same for valid and test (and float64, when asked for)

Checks, and what they cost: a file is used only when its sha256 is the one recorded
when it was made. Hashing 220 MB at every worker start would cost about a second of
CPU each, so each file's sha256 is checked once per file identity: device, inode,
size, modification time and change time (``st_ctime_ns``, which no program can set
back: any write, truncation or ``touch`` changes it). A worker whose files still have
the identity stamped when they were last verified pays a few ``stat`` calls; a file
whose identity changed is hashed again, and one whose hash differs (changed or
truncated) is made again from ``<name>.npz``, never mapped. ``<name>.npz`` itself is
verified against its recorded content sha256 before anything is made from it, and a
new ``<name>.npz`` (fetched again) makes every file again. An exclusive ``flock`` on
``<name>.mapped.lock`` lets one process make or check the files while the others wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from fmlp.atomic import atomic_open, atomic_write_text
from fmlp.data.cache import _read_cache_all, cache_path, content_sha256, fetch_command
from fmlp.data.records import (
    N_PIXELS,
    SPLITS,
    ChecksumError,
    DataError,
    DataNotFoundError,
    Dataset,
    FloatT,
    RawDataset,
    Split,
    SplitName,
    _check_name,
    _check_splits,
    _to_split,
)

MAPPED_FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
HASH_CHUNK: Final = 1 << 22

__all__ = ["MAPPED_FORMAT", "mapped_dir", "open_mapped"]

Manifest: TypeAlias = dict[str, Any]
"""The manifest (or a part of it) as ``json.loads`` reads it: a plain JSON object."""


def mapped_dir(name: str) -> Path:
    """``<cache>/<name>.mapped``: the memory-mapped arrays of dataset ``name``."""
    path = cache_path(name)
    return path.with_name(f"{_check_name(name)}.mapped")


def _identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _file_names(splits: Sequence[SplitName], dtype: np.dtype[np.generic]) -> list[str]:
    names = []
    for s in splits:
        names += [f"{s}_x.{dtype.name}.npy", f"{s}_y.int64.npy"]
    return names


def _read_manifest(folder: Path) -> Manifest:
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("format") != MAPPED_FORMAT:
        return {}
    return raw


def _verified_raw(name: str) -> RawDataset:
    """The cache file's arrays, after checking them against its recorded content sha256."""
    path = cache_path(name)
    raw, recorded = _read_cache_all(path, name)
    digest = content_sha256(raw)
    if digest != recorded:
        raise ChecksumError(
            f"{path}: content sha256 {digest}, but the cache records {recorded}; "
            f"delete it and run `{fetch_command(name)}`"
        )
    return raw


def _make(folder: Path, name: str, wanted: Sequence[str], raw: RawDataset) -> Manifest:
    """Write the files ``wanted`` from ``raw``, atomically; their manifest entries."""
    entries: Manifest = {}
    for file in wanted:
        split_name, rest = file.split("_", 1)
        kind, dtype_name, _ = rest.split(".")
        split = raw.get(_check_splits(split_name)[0])
        if kind == "x":
            array: NDArray[np.generic] = _to_split(split, np.dtype(dtype_name).type).x
        else:
            array = split.y.astype(np.int64)
        target = folder / file
        with atomic_open(target) as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        entries[file] = {"sha256": _file_sha256(target), "stamp": _identity(target)}
    return entries


def _check_or_make(name: str, folder: Path, wanted: Sequence[str]) -> None:
    """Make sure every file of ``wanted`` is in ``folder`` with its recorded sha256."""
    source = cache_path(name)
    manifest = _read_manifest(folder)
    files: Manifest = dict(manifest.get("files", {}))
    if manifest.get("source_stamp") != _identity(source):
        # a new or changed <name>.npz: its content decides whether the files still hold
        raw = _verified_raw(name)
        digest = content_sha256(raw)
        if manifest.get("content_sha256") != digest:
            files = {}
        manifest = {"content_sha256": digest}
    else:
        raw = None
    stale = []
    changed = False
    for file in wanted:
        entry = files.get(file)
        path = folder / file
        if entry is None or not path.is_file():
            stale.append(file)
        elif entry.get("stamp") != _identity(path):
            if _file_sha256(path) == entry.get("sha256"):
                entry["stamp"] = _identity(path)  # touched, not changed: verified again
            else:
                stale.append(file)  # changed or truncated: made again, never mapped
            changed = True
    if stale:
        files.update(_make(folder, name, stale, raw if raw is not None else _verified_raw(name)))
        changed = True
    if changed or manifest.get("source_stamp") != _identity(source):
        manifest.update(format=MAPPED_FORMAT, source_stamp=_identity(source), files=files)
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


G = TypeVar("G", bound=np.generic)


def _map(path: Path, shape: tuple[int, ...], dtype: np.dtype[G]) -> NDArray[G]:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be mapped ({exc}); delete {path.parent}") from exc
    if array.dtype != dtype or array.shape[1:] != shape[1:]:
        raise DataError(f"{path}: holds {array.dtype} {array.shape}; delete {path.parent}")
    view: NDArray[G] = array.view(np.ndarray)  # a plain read-only ndarray
    return view


# float64 first: numpy's stubs make np.float64 a subtype of np.float32 (as in ``load``).
@overload
def open_mapped(  # type: ignore[overload-overlap]  # see the comment above
    name: str = ...,
    *,
    dtype: type[np.float64],
    split: SplitName | Sequence[SplitName] = ...,
) -> Dataset[np.float64]: ...
@overload
def open_mapped(
    name: str = ...,
    *,
    dtype: type[np.float32] = ...,
    split: SplitName | Sequence[SplitName] = ...,
) -> Dataset[np.float32]: ...
def open_mapped(
    name: str = "mnist",
    *,
    dtype: type[np.float32] | type[np.float64] = np.float32,
    split: SplitName | Sequence[SplitName] = SPLITS,
) -> Dataset[np.float32] | Dataset[np.float64]:
    """Dataset ``name`` from the data cache as read-only memory maps, bit for bit the
    arrays ``load(name, dtype=dtype)`` returns (x (N, 784) in [0, 255/256], y (N,)
    int64). Makes or checks the mapped files first (see the module's docstring);
    ``DataNotFoundError`` when the cache does not hold ``name``, ``DataError`` /
    ``ChecksumError`` when its cache file is damaged (the message says how to fetch it
    again)."""
    name = _check_name(name)
    splits = _check_splits(split)
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    if dt == np.float64:
        return _open(name, splits, np.float64)
    return _open(name, splits, np.float32)


def _open(name: str, splits: tuple[SplitName, ...], dtype: type[FloatT]) -> Dataset[FloatT]:
    dt = np.dtype(dtype)
    source = cache_path(name)
    if not source.is_file():
        raise DataNotFoundError(
            f"{name} is not in the data cache ({source} is absent); fetch it with: "
            f"{fetch_command(name)}"
        )
    folder = mapped_dir(name)
    wanted = _file_names(splits, dt)
    with _locked(folder.with_name(folder.name + ".lock")):
        folder.mkdir(exist_ok=True)
        _check_or_make(name, folder, wanted)
        parts: dict[str, Split[FloatT]] = {}
        for s in splits:
            x = _map(folder / f"{s}_x.{dt.name}.npy", (-1, N_PIXELS), dt)
            y = _map(folder / f"{s}_y.int64.npy", (-1,), np.dtype(np.int64))
            if x.shape[0] != y.shape[0]:
                raise DataError(f"{folder}: {s} has {x.shape[0]} images but {y.shape[0]} labels")
            parts[s] = Split(x, y)
    where = f"cache {source} (memory-mapped)"
    return Dataset(name, where, parts.get("train"), parts.get("valid"), parts.get("test"))
