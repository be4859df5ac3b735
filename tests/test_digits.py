"""The embedded digits data (chapter 1)."""
import torch

import cqlearn as cq


def test_digits_split_is_fixed_stratified_and_in_0_1():
    train, test = cq.data.load("digits", "train"), cq.data.load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.shape == (1, 8, 8) and train.images.dtype == torch.float32
    assert train.images.min() == 0 and train.images.max() == 1
    assert torch.equal(train.images * 16, (train.images * 16).round())  # 17 grey levels
    counts = torch.bincount(test.labels)
    assert counts.min() >= 35 and counts.max() <= 37
    again = cq.data.load("digits", "test")
    assert torch.equal(again.images, test.images)


def test_limit_keeps_a_prefix():
    test = cq.data.load("digits", "test")
    assert torch.equal(cq.data.load("digits", "test", limit=10).images, test.images[:10])
