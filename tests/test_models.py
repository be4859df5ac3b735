"""Model definitions: the paper's VGGs and the digits CNN, plain and CQ from one spec (chapters 4, 9)."""
import pytest
import torch
from torch import nn

import cqlearn as cq


def convs(model):
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_vgg_star_and_vgg19_follow_the_paper():
    star = cq.models.vgg_star()
    assert convs(star) == [128, 128, 256, 256, 512, 512, 1024]
    assert [m.padding for m in star.modules() if isinstance(m, nn.Conv2d)][-1] == (0, 0)
    assert convs(cq.models.vgg19()) == [64, 64, 128, 128] + [256] * 4 + [512] * 8
    assert star(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", ["digits_cnn", "vgg_small", "vgg_star", "vgg19"])
def test_cq_after_every_conv_and_every_pool(name):
    model = cq.models.create(name, activation="cq", levels=8)
    layers = [m for m in model.modules() if not isinstance(m, nn.Sequential)]
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and isinstance(layers[i + 2], cq.CQ)
        if isinstance(layer, nn.AvgPool2d):
            assert isinstance(layers[i + 1], cq.CQ)
    cq.convert(model, 8)  # and it converts


def test_plain_and_cq_share_one_state_dict():
    plain, twin = cq.models.vgg_small(), cq.models.vgg_small(activation="cq")
    assert plain.state_dict().keys() == twin.state_dict().keys()


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown model"):
        cq.models.create("resnet18")
    with pytest.raises(ValueError, match="activation must be"):
        cq.models.digits_cnn(activation="tanh")
