"""The CIFAR-10 test subset shipped in data/ (chapter 9 runs without a download)."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

import cqlearn as cq

SUBSET = cq.data.CIFAR_SUBSET
SHARED = Path("/work/shared/data/cifar10/test.npz")  # the verified development copy, when present


def test_subset_is_small_uint8_and_recorded_in_the_readme():
    assert SUBSET.is_file() and SUBSET.stat().st_size <= 4 * 2**20
    with np.load(SUBSET, allow_pickle=False) as f:
        assert sorted(f.files) == ["x_test", "y_test"]
        assert f["x_test"].shape == (1000, 32, 32, 3) and f["x_test"].dtype == np.uint8
        assert f["y_test"].shape == (1000,) and set(np.unique(f["y_test"])) == set(range(10))
    readme = (SUBSET.parent / "README.md").read_text()
    recorded = re.search(rf"([0-9a-f]{{64}})\s+{re.escape(SUBSET.name)}", readme)
    assert recorded and recorded.group(1) == hashlib.sha256(SUBSET.read_bytes()).hexdigest()


@pytest.mark.skipif(not SHARED.is_file(), reason="the verified CIFAR-10 copy is not on this machine")
def test_subset_is_the_first_1000_test_images():
    with np.load(SUBSET) as small, np.load(SHARED) as full:
        assert np.array_equal(small["x_test"], full["x_test"][:1000])
        assert np.array_equal(small["y_test"], full["y_test"][:1000])


def test_load_falls_back_to_the_subset_for_the_test_split_only(tmp_path):
    with pytest.warns(UserWarning, match="shipped subset cifar10-test-1000.npz"):
        test = cq.data.load("cifar10", "test", root=tmp_path, limit=30)
    assert len(test) == 30 and test.shape == (3, 32, 32)
    assert 0 <= test.images.min() and test.images.max() <= 1 and test.images.std() > 0.1
    with pytest.raises(FileNotFoundError, match="cifar10.npz"):
        cq.data.load("cifar10", "train", root=tmp_path)


def test_a_full_local_copy_wins_over_the_subset(tmp_path):
    x = np.zeros((3, 32, 32, 3), np.uint8)
    y = np.arange(3, dtype=np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    assert len(cq.data.load("cifar10", "test", root=tmp_path)) == 3
