"""Save and load MLP parameters as ``.npz`` files (no pickle), written atomically."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from fmlp.params import MLP, Dense
from fmlp.types import check_activation


def save(path: str | os.PathLike[str], params: MLP) -> Path:
    """Write ``params`` to ``path`` (an .npz: w0, b0, w1, b1, ..., activation) through a
    temporary file and a rename, so an interrupted save never leaves a partial file."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"activation": np.array(params.activation)}
    for i, layer in enumerate(params.layers):
        arrays[f"w{i}"] = layer.w
        arrays[f"b{i}"] = layer.b
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds loosely
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike[str]) -> MLP:
    """Read parameters written by ``save``; a clear ValueError for a corrupt file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        # our own file handle: np.load leaks its handle when the content is not an archive
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with z:
                n = sum(1 for k in z.files if k.startswith("w"))
                layers = tuple(Dense(w=z[f"w{i}"], b=z[f"b{i}"]) for i in range(n))
                activation = check_activation(str(z["activation"]))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"corrupt checkpoint {path}: {exc}; delete it and train again") from exc
    return MLP(layers=layers, activation=activation)
