"""BatchNorm folding (chapter 5).

In eval mode BatchNorm is an affine map per channel, so it merges into the Conv2d or Linear before it:
    W' = W * gamma / sqrt(var + eps)        b' = (b - mean) * gamma / sqrt(var + eps) + beta
"""
import copy

import torch
from torch import nn

from .layers import BATCHNORMS, WEIGHTED


def fold_into(layer, bn):
    """A copy of `layer` (Conv2d or Linear) with the eval-mode BatchNorm `bn` merged in."""
    folded = copy.deepcopy(layer)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    folded.weight = nn.Parameter(layer.weight.detach() * scale.reshape(shape))
    folded.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
    return folded


def flatten(model):
    """The layers of a (possibly nested) nn.Sequential as one flat list."""
    if isinstance(model, nn.Sequential):
        return [layer for child in model for layer in flatten(child)]
    return [model]


def fold_batchnorm(model):
    """An nn.Sequential equal to the eval-mode `model` with every BatchNorm merged into the Conv2d or
    Linear just before it (chapter 5). `model` is an nn.Sequential (nested ones are flattened)."""
    out = []
    for i, layer in enumerate(flatten(model)):
        if isinstance(layer, BATCHNORMS):
            if not out or not isinstance(out[-1], WEIGHTED):
                raise ValueError(f"layer {i} ({layer.__class__.__name__}) does not follow a Conv2d or "
                                 "Linear, so it cannot be folded; put BatchNorm right after a Conv2d or Linear.")
            out[-1] = fold_into(out[-1], layer)
        else:
            out.append(layer)
    return nn.Sequential(*out).eval()  # folding holds for the eval-mode network only
