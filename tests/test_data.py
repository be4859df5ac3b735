"""cq.data.load from the files a user may have: NAME.npz, the original idx files, torchvision's folders.

Every test writes its own tiny fake dataset; none needs the network or ../shared."""
import gzip
import pickle

import numpy as np
import pytest
import torch

import cqlearn as cq
from cqlearn import data, formats


def fake(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_npz(folder, name, shape, n_train=7, n_test=5):
    (xtr, ytr), (xte, yte) = fake(n_train, shape, 1), fake(n_test, shape, 2)
    np.savez(folder / f"{name}.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return (xtr, ytr), (xte, yte)


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_idx_folder(folder, gz, n_train=6, n_test=4):
    folder.mkdir(parents=True)
    arrays = {"train": fake(n_train, (28, 28), 3), "test": fake(n_test, (28, 28), 4)}
    for split, (images, labels) in zip(("train", "test"), arrays.values()):
        for stem, array in zip(formats.IDX_FILES[split], (images, labels)):
            write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


def write_cifar_folder(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays = {}
    for i, name in enumerate(formats.CIFAR_FILES["train"] + formats.CIFAR_FILES["test"]):
        images, labels = fake(3, (3, 32, 32), 10 + i)  # CIFAR stores rows of 3072 bytes, channels first
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(3, -1), "labels": labels.tolist(), "batch_label": "x"}, f)
        arrays[name] = images, labels
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": data.CLASSES["cifar10"]}, f)
    return arrays


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28)), ("fashion-mnist", (28, 28)), ("cifar10", (32, 32, 3))])
def test_npz_gives_images_in_0_1_channels_first(tmp_path, name, shape):
    (xtr, ytr), (xte, yte) = write_npz(tmp_path, name, shape)
    train, test = cq.data.load(name, "train", root=tmp_path), cq.data.load(name, "test", root=tmp_path)
    assert len(train) == 7 and len(test) == 5 and train.classes == data.CLASSES[name]
    image, label = test[2]
    assert image.dtype == torch.float32 and label == int(yte[2])
    expected = xte[2][None] if len(shape) == 2 else xte[2].transpose(2, 0, 1)  # (C, H, W)
    assert image.shape == data.SHAPES[name]
    assert torch.equal(image, torch.from_numpy(expected).float() / 255)
    assert 0 <= train.images.min() and train.images.max() <= 1


def test_root_from_cqlearn_data_and_limit(tmp_path, monkeypatch):
    write_npz(tmp_path, "mnist", (28, 28))
    monkeypatch.setenv("CQLEARN_DATA", str(tmp_path))
    ds = cq.data.load("mnist", "train", limit=3)
    assert len(ds) == 3 and ds.images.shape == (3, 1, 28, 28)


def test_default_root_is_working_data_then_the_checkouts(tmp_path, monkeypatch):
    """From book/ (no ./data there) the checkout's data/ is found; ./data comes first when it has the file."""
    monkeypatch.delenv("CQLEARN_DATA", raising=False)
    checkout, book = tmp_path / "checkout" / "data", tmp_path / "book"
    checkout.mkdir(parents=True)
    (book / "data").mkdir(parents=True)
    write_npz(checkout, "mnist", (28, 28))
    monkeypatch.setattr(data, "CHECKOUT_DATA", checkout.resolve())
    monkeypatch.chdir(book)
    assert len(cq.data.load("mnist", "test")) == 5
    write_npz(book / "data", "cifar10", (32, 32, 3))
    assert len(cq.data.load("cifar10", "test")) == 5
    with pytest.raises(FileNotFoundError, match="fashion-mnist not found under .*book.data or .*checkout.data"):
        cq.data.load("fashion-mnist", "test")


def test_bad_npz_files_are_clear_errors(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="x_train, y_train, x_test, y_test"):
        cq.data.load("mnist", "test", root=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28)), y_train=np.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        cq.data.load("mnist", "train", root=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 32, 32), np.uint8), y_train=np.zeros(2))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\)"):
        cq.data.load("mnist", "train", root=tmp_path)


@pytest.mark.parametrize("name, folder, gz", [("fashion-mnist", "fashion-mnist", True),  # Debian's files
                                              ("mnist", "MNIST/raw", False),  # torchvision's layout
                                              ("fashion-mnist", "FashionMNIST/raw", True)])
def test_original_idx_files(tmp_path, name, folder, gz):
    arrays = write_idx_folder(tmp_path / folder, gz)
    for split, (images, labels) in arrays.items():
        ds = cq.data.load(name, split, root=tmp_path)
        assert torch.equal(ds.images, torch.from_numpy(images).float().unsqueeze(1) / 255)
        assert ds.labels.tolist() == labels.tolist()


def test_mnist_folder_reads_as_torchvision_reads_it(tmp_path):
    """Reference: torchvision itself on the same fake files."""
    torchvision = pytest.importorskip("torchvision")
    write_idx_folder(tmp_path / "MNIST" / "raw", gz=False)
    for train in (True, False):
        reference = torchvision.datasets.MNIST(str(tmp_path), train=train, download=False)
        ours = cq.data.load("mnist", "train" if train else "test", root=tmp_path)
        assert torch.equal(ours.images[:, 0], reference.data.float() / 255)
        assert torch.equal(ours.labels, reference.targets)


def test_cifar10_folder_reads_as_torchvision_reads_it(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    arrays = write_cifar_folder(tmp_path)
    test = cq.data.load("cifar10", "test", root=tmp_path)
    images, labels = arrays["test_batch"]
    assert torch.equal(test.images, torch.from_numpy(images).float() / 255)  # stored channels first
    assert test.labels.tolist() == labels.tolist()
    train = cq.data.load("cifar10", "train", root=tmp_path)
    assert len(train) == 15 and train.shape == (3, 32, 32)
    # torchvision checks the real files' md5 sums; skip that check to read the fakes the same way
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    assert torch.equal(train.images, torch.from_numpy(reference.data).permute(0, 3, 1, 2).float() / 255)
    assert train.labels.tolist() == list(reference.targets)


def test_cifar10_batches_cannot_run_code(tmp_path):
    write_cifar_folder(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cq.data.load("cifar10", "test", root=tmp_path)


def test_truncated_idx_file(tmp_path):
    arrays = write_idx_folder(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        cq.data.load("mnist", "test", root=tmp_path)
    assert len(cq.data.load("mnist", "train", root=tmp_path)) == len(arrays["train"][1])


@pytest.mark.parametrize("name, expected", [("mnist", "t10k-images-idx3-ubyte"), ("fashion-mnist", "FashionMNIST"),
                                            ("cifar10", "cifar-10-batches-py")])
def test_missing_data_offline_says_where_to_put_which_file(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as error:
        cq.data.load(name, "train", root=tmp_path / "empty")
    message = str(error.value)
    assert f"{name}.npz" in message and str((tmp_path / "empty").resolve()) in message
    assert expected in message and "download=True" in message and "CQLEARN_DATA" in message


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(FileNotFoundError, match="(?s)downloading mnist .* failed.*mnist.npz"):
        cq.data.load("mnist", root=tmp_path, download=True)


def test_download_goes_through_torchvision_into_its_layout(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    calls = []

    def fake_download(root, train, download):
        calls.append(train)
        if not (tmp_path / "MNIST" / "raw").exists():
            write_idx_folder(tmp_path / "MNIST" / "raw", gz=False)

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_download)
    assert len(cq.data.load("mnist", "test", root=tmp_path, download=True)) == 4 and calls == [True, False]


def test_bad_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        cq.data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        cq.data.load("digits", "validation")


def test_augment_crops_and_flips_each_item(tmp_path):
    write_npz(tmp_path, "cifar10", (32, 32, 3), n_train=2)
    plain = cq.data.load("cifar10", "train", root=tmp_path)
    augmented = cq.data.load("cifar10", "train", root=tmp_path, augment=True)
    assert augmented.augment and not plain.augment and torch.equal(augmented.images, plain.images)
    torch.manual_seed(0)
    outputs = [augmented[0][0] for _ in range(40)]
    assert all(o.shape == (3, 32, 32) for o in outputs)
    assert any(not torch.equal(o, plain[0][0]) for o in outputs)


def test_labels_must_be_class_numbers(tmp_path):
    x = np.zeros((4, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.array([0, 1, 12, 3]), x_test=x,
             y_test=np.array([0.0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"mnist train set: labels must be class numbers 0..9, found 12"):
        cq.data.load("mnist", "train", root=tmp_path)
    with pytest.raises(ValueError, match="mnist test set: labels must be whole numbers .* float64"):
        cq.data.load("mnist", "test", root=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.array([0, -1, 2, 3]), x_test=x, y_test=np.arange(4))
    with pytest.raises(ValueError, match="found -1"):
        cq.data.load("mnist", "train", root=tmp_path)


@pytest.mark.parametrize("limit", [-5, 0, 2.5, True, "10"])
def test_bad_limits(limit):
    with pytest.raises(ValueError, match=f"limit must be a whole number >= 1 .* got {limit!r}"):
        cq.data.load("digits", "test", limit=limit)
    assert len(cq.data.load("digits", "test", limit=np.int64(3))) == 3


def test_a_corrupt_npz_is_named(tmp_path):
    (tmp_path / "fashion-mnist.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match=f"{tmp_path / 'fashion-mnist.npz'} is not a usable dataset file"):
        cq.data.load("fashion-mnist", "test", root=tmp_path)
    write_npz(tmp_path, "mnist", (28, 28))
    (tmp_path / "mnist.npz").write_bytes((tmp_path / "mnist.npz").read_bytes()[:300])  # cut short
    with pytest.raises(ValueError, match="mnist.npz is not a usable dataset file"):
        cq.data.load("mnist", "test", root=tmp_path)


@pytest.mark.parametrize("name, stored, expected", [
    ("mnist", (4, 1, 28, 28), r"mnist test set: images must be stored as \(N, H, W\) = \(N, 28, 28\) .* got an array of shape \(4, 1, 28, 28\); that is channels first"),
    ("cifar10", (4, 3, 32, 32), r"\(N, H, W, C\) = \(N, 32, 32, 3\) .* shape \(4, 3, 32, 32\); that is channels first")])
def test_channels_first_images_get_a_message_with_the_shape_stored(tmp_path, name, stored, expected):
    x = np.zeros(stored, np.uint8)
    np.savez(tmp_path / f"{name}.npz", x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    with pytest.raises(ValueError, match=expected):
        cq.data.load(name, "test", root=tmp_path)
