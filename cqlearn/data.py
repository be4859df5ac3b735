"""Datasets as images in [0, 1] of shape (C, H, W), never normalised (chapter 1).

"digits" (scikit-learn's bundled 8x8 handwritten digits) is embedded and needs no network. "mnist",
"fashion-mnist" and "cifar10" come from local files under `root` (default: the CQLEARN_DATA variable,
else ./data), either torchvision's own folder layout or one `NAME.npz` holding uint8 arrays x_train,
y_train, x_test, y_test; with download=True torchvision fetches them.
"""
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "test")
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
CLASSES = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


class ImageDataset(Dataset):
    """Images (N, C, H, W) as float32 in [0, 1] and integer labels (N,), held in memory.

    augment=True applies the CIFAR-10 training augmentation per item: a random crop of the image
    padded by 4 pixels, and a horizontal flip half the time."""

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
            image = random_crop_flip(image)
        return image, self.labels[i]

    @property
    def shape(self):
        return tuple(self.images.shape[1:])


def random_crop_flip(image, padding=4):
    """A random crop of `image` zero-padded by `padding` pixels, flipped left-right half the time."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    top, left = torch.randint(0, 2 * padding + 1, (2,)).tolist()
    image = padded[:, top:top + h, left:left + w]
    return image.flip(-1) if torch.rand(()) < 0.5 else image


def from_uint8(x, y, classes, augment=False):
    """An ImageDataset from uint8 arrays (N, H, W) or (N, H, W, C) and labels."""
    x = torch.as_tensor(np.asarray(x))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return ImageDataset(x.float().div_(255), torch.as_tensor(np.asarray(y), dtype=torch.long), classes, augment)


def _digits(split):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, stratify=digits.target, random_state=0)
    index = torch.as_tensor(train if split == "train" else test)
    return ImageDataset(x[index], y[index], CLASSES["digits"])


def data_root(root=None):
    return Path(root or os.environ.get("CQLEARN_DATA") or "data")


def _from_npz(path, split, name, augment):
    try:
        with np.load(path, allow_pickle=False) as f:
            return from_uint8(f[f"x_{split}"], f[f"y_{split}"], CLASSES[name], augment)
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path} is not a usable dataset file ({error}); it must be an .npz with uint8 arrays "
                         "x_train, y_train, x_test, y_test.") from error


def _from_torchvision(name, split, root, download, augment):
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    ds = cls(str(root), train=split == "train", download=download)
    return from_uint8(ds.data, ds.targets, CLASSES[name], augment)


def load(name="digits", split="train", root=None, download=False, limit=None, augment=False):
    """A Dataset of (image in [0, 1] of shape (C, H, W), label). Chapter 1 (digits), chapter 9 (others).

    limit keeps the first `limit` images (CIFAR-10's test file is shuffled, so a prefix is fair)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}.")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if name == "digits":
        ds = _digits(split)
    else:
        root = data_root(root)
        npz = root / f"{name}.npz"
        try:
            ds = _from_npz(npz, split, name, augment) if npz.exists() else _from_torchvision(
                name, split, root, download, augment)
        except RuntimeError as error:
            raise FileNotFoundError(
                f"{name} is not under {root.resolve()} and download=False ({error}). Either put {npz.name} "
                f"(uint8 arrays x_train, y_train, x_test, y_test) or torchvision's {name} folder there, set "
                "CQLEARN_DATA to the folder that holds them, or pass download=True where the network is reachable."
            ) from error
    if limit is not None:
        ds = ImageDataset(ds.images[:limit], ds.labels[:limit], ds.classes, ds.augment)
    return ds
