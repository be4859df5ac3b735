"""Datasets as images in [0, 1] of shape (C, H, W), never normalised (chapter 1).

"digits" (scikit-learn's bundled 8x8 handwritten digits) is embedded and needs no network. "mnist",
"fashion-mnist" and "cifar10" are read from local files under `root` (default: the CQLEARN_DATA
variable; else ./data, then the data/ folder of the cqlearn checkout, so the book finds it from book/),
in this order:

1. `NAME.npz` holding uint8 arrays x_train, y_train, x_test, y_test (the offline format);
2. the original files: MNIST and Fashion-MNIST idx files (plain or .gz) in `root/NAME/`, `root/MNIST/raw/`
   or `root/FashionMNIST/raw/` (torchvision's layout); CIFAR-10's python batches in
   `root/cifar-10-batches-py/` (torchvision's layout);
3. with download=True, torchvision downloads them into root;
4. CIFAR-10's test split only: the checkout's `data/cifar10-test-1000.npz` (installed with the package
   as cqlearn/bundled/), the first 1,000 images of the (shuffled) test set shipped for chapter 9,
   with a warning that it is a subset.

formats.py reads the files; this module finds them and makes datasets of them.
"""
import numbers
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .formats import CIFAR_FOLDER, IDX_FILES, IDX_FOLDERS, read_local, read_npz

SPLITS = ("train", "test")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
CLASSES = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


class ImageDataset(Dataset):
    """Images (N, C, H, W) as float32 in [0, 1] and integer labels (N,), held in memory.

    augment=True applies the CIFAR-10 training augmentation (crop_flip) to each item."""

    def __init__(self, images, labels, classes, augment=False):
        self.images = images
        self.labels = labels
        self.classes = classes
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        image = self.images[i]
        if self.augment:
            image = crop_flip(image[None])[0]
        return image, self.labels[i]

    @property
    def shape(self):
        return tuple(self.images.shape[1:])

    def to(self, device):
        """The same dataset with its tensors on `device` (moved once, not per batch)."""
        return ImageDataset(self.images.to(device), self.labels.to(device), self.classes, self.augment)


def crop_flip(x, padding=4):
    """The CIFAR-10 augmentation of a batch (B, C, H, W), on its device: each image gets its own random
    crop of the image zero-padded by `padding` pixels, flipped left-right half the time."""
    B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (B, 1), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (B, 1), device=x.device)
    rows = top + torch.arange(H, device=x.device)
    cols = left + torch.arange(W, device=x.device)
    cols = torch.where(torch.rand(B, 1, device=x.device) < 0.5, cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def from_uint8(x, y, classes, augment=False, shape=None):
    """An ImageDataset from uint8 arrays (N, H, W) or (N, H, W, C) and whole-number labels 0..classes-1;
    `shape`, when given, is the (C, H, W) the images must have."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {x.dtype}.")
    if x.ndim not in (3, 4) or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C) with one label each, got "
                         f"images {x.shape} and labels {y.shape}.")
    images = torch.from_numpy(x.copy())
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()
    if shape is not None and images.shape[1:] != shape:
        c, h, w = shape
        layout, stored = ("(N, H, W)", (h, w)) if c == 1 else ("(N, H, W, C)", (h, w, c))
        hint = f"; that is channels first (N, C, H, W): store it as {layout}" if x.shape[1:] == shape else ""
        raise ValueError(f"images must be stored as {layout} = (N, {', '.join(map(str, stored))}) to give "
                         f"{shape} (C, H, W) images, got an array of shape {x.shape}{hint}.")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be whole numbers (an integer array), got {y.dtype}.")
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"labels must be class numbers 0..{len(classes) - 1}, found "
                         f"{y[(y < 0) | (y >= len(classes))][0]}.")
    return ImageDataset(images.float().div_(255), torch.from_numpy(y.astype(np.int64)), classes, augment)


def _digits(split):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=0)
    index = torch.as_tensor(train if split == "train" else test)
    return ImageDataset(x[index], y[index], CLASSES["digits"])


CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLED = Path(__file__).resolve().parent / "bundled"  # the files data/ ships, as installed from a wheel
# shipped: chapter 9 runs without a download, from a checkout or an installed package
CIFAR_SUBSET = next((folder / "cifar10-test-1000.npz" for folder in (CHECKOUT_DATA, BUNDLED)
                     if (folder / "cifar10-test-1000.npz").is_file()), CHECKOUT_DATA / "cifar10-test-1000.npz")


def data_roots(root=None):
    """The folders searched, in order: `root`; else $CQLEARN_DATA; else ./data and the checkout's data/.
    Downloads go into the first."""
    if root or os.environ.get("CQLEARN_DATA"):
        return [Path(root or os.environ["CQLEARN_DATA"])]
    here = Path("data")
    return [here] if here.resolve() == CHECKOUT_DATA else [here, CHECKOUT_DATA]


def _download(name, root):
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except (RuntimeError, OSError) as error:
        raise FileNotFoundError(f"downloading {name} into {root.resolve()} failed ({error}).\n"
                                + where_to_put(name, root)) from error


def where_to_put(name, root):
    """What to put where so that load(name) works offline."""
    if name == "cifar10":
        original = (f"  - or torchvision's folder {root / CIFAR_FOLDER}/ with data_batch_1..5 and test_batch "
                    "(from cifar-10-python.tar.gz)")
    else:
        stems = ", ".join(s + "[.gz]" for pair in IDX_FILES.values() for s in pair)
        folders = " or ".join(f"{root / sub}/" for sub in IDX_FOLDERS[name])
        original = f"  - or the original idx files ({stems}) in {folders}"
    return (f"Put one of these under {root.resolve()} (or point CQLEARN_DATA, root= or --root at the folder "
            f"that holds them):\n  - {root / (name + '.npz')}: uint8 arrays x_train, y_train, x_test, y_test\n{original}\n"
            "or let torchvision download them where the network is reachable: cq.data.load(..., download=True), "
            "or `cqlearn train/eval ... --download`.")


def _read_arrays(name, split, roots, download):
    for root in roots:
        if (arrays := read_local(name, split, root)) is not None:
            return arrays
    if download:
        _download(name, roots[0])
        if (arrays := read_local(name, split, roots[0])) is not None:
            return arrays
    elif name == "cifar10" and split == "test" and CIFAR_SUBSET.is_file():
        warnings.warn(f"the full CIFAR-10 test set is not under {roots[0].resolve()}: using the shipped subset "
                      f"{CIFAR_SUBSET.name} (the first 1,000 test images). " + where_to_put(name, roots[0]),
                      stacklevel=3)
        return read_npz(CIFAR_SUBSET, split)
    searched = " or ".join(str(root.resolve()) for root in roots)
    how = "even after downloading" if download else "(downloads are off)"
    raise FileNotFoundError(f"{name} not found under {searched} {how}.\n" + where_to_put(name, roots[0]))


def load(name="digits", split="train", root=None, download=False, limit=None, augment=False):
    """A Dataset of (image in [0, 1] of shape (C, H, W), label). Chapter 1 (digits), chapter 9 (others).

    limit keeps the first `limit` images (CIFAR-10's test file is shuffled, so a prefix is fair).
    augment=True: random crop (padding 4) and horizontal flip per item, for CIFAR-10 training."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}.")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise ValueError(f"limit must be a whole number >= 1 (how many images to keep) or None, got {limit!r}.")
    if name == "digits":
        ds = _digits(split)
        ds.augment = augment
    else:
        x, y = _read_arrays(name, split, data_roots(root), download)
        try:
            ds = from_uint8(x, y, CLASSES[name], augment, SHAPES[name])
        except ValueError as error:
            raise ValueError(f"{name} {split} set: {error}") from error
    if limit is not None:
        ds = ImageDataset(ds.images[:int(limit)], ds.labels[:int(limit)], ds.classes, ds.augment)
    return ds
