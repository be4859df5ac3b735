"""The files datasets come in (chapter 9), read as uint8 arrays (images, labels): the offline `NAME.npz`,
MNIST's and Fashion-MNIST's idx files, CIFAR-10's python batches. data.py turns them into datasets."""
import gzip
import pickle
import zipfile
from pathlib import Path

import numpy as np

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_FOLDERS = {"mnist": ("mnist", "MNIST/raw"), "fashion-mnist": ("fashion-mnist", "FashionMNIST/raw")}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_npz(path, split):
    """(images, labels) as uint8 arrays from an .npz with x_train, y_train, x_test, y_test."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return f[f"x_{split}"], f[f"y_{split}"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as error:  # missing, corrupt, cut
        raise ValueError(f"{path} is not a usable dataset file ({error}); it must be an .npz with uint8 arrays "
                         "x_train, y_train, x_test, y_test.") from error


def read_idx(path):
    """The array in an idx file (plain or gzipped): the format of the original MNIST files."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 8:
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic number 0x0000080N).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} bytes.")
    return data.reshape(shape)


def _find(folder, stem):
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_folder(name, root):
    """The folder under root that holds all four idx files of `name`, or None."""
    for sub in IDX_FOLDERS[name]:
        folder = root / sub
        if all(_find(folder, stem) for pair in IDX_FILES.values() for stem in pair):
            return folder
    return None


def read_idx_split(folder, split):
    images, labels = (read_idx(_find(Path(folder), stem)) for stem in IDX_FILES[split])
    return images, labels


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR-10's python batches (dicts of numpy arrays and lists) and nothing else."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: a CIFAR-10 batch holds only arrays")
        return super().find_class(module, name)


def read_cifar_split(folder, split):
    """(images (N, 32, 32, 3), labels) from CIFAR-10's python batches, torchvision's layout."""
    images, labels = [], []
    for name in CIFAR_FILES[split]:
        with open(Path(folder) / name, "rb") as f:
            batch = _ArraysOnly(f, encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        images.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(batch["labels"])
    return np.concatenate(images), np.asarray(labels)


def read_local(name, split, root):
    """(images, labels) from the files under root, or None when root holds none."""
    npz = root / f"{name}.npz"
    if npz.is_file():
        return read_npz(npz, split)
    if name == "cifar10" and all((root / CIFAR_FOLDER / f).is_file() for names in CIFAR_FILES.values() for f in names):
        return read_cifar_split(root / CIFAR_FOLDER, split)
    if name != "cifar10" and (folder := _idx_folder(name, root)) is not None:
        return read_idx_split(folder, split)
    return None
