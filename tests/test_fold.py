"""BatchNorm folding (chapter 5)."""
import pytest
import torch
from torch import nn

import cqlearn as cq


def trained_statistics(model, shape):
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.rand(32, *shape) * 3 - 1)
    return model.eval()


def test_folding_keeps_the_outputs_of_a_conv_net():
    torch.manual_seed(0)
    model = cq.models.digits_cnn()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # make gamma and beta matter
            nn.init.uniform_(m.weight, 0.5, 2)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    model = trained_statistics(model, (1, 8, 8))
    folded = cq.fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(64, 1, 8, 8)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_folding_a_linear_with_batchnorm1d_and_no_bias():
    torch.manual_seed(1)
    model = trained_statistics(nn.Sequential(nn.Linear(5, 4, bias=False), nn.BatchNorm1d(4)), (5,))
    x = torch.randn(10, 5)
    assert torch.allclose(cq.fold_batchnorm(model)(x), model(x), atol=1e-5)


def test_batchnorm_without_a_layer_before_it_is_an_error():
    with pytest.raises(ValueError, match="does not follow a Conv2d or Linear"):
        cq.fold_batchnorm(nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 1, 3)))
