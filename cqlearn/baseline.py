"""Naive conversion of a plain ReLU CNN, the baseline CQ training improves on (chapter 7).

Before CQ training, a trained ReLU network was converted by *data-based normalisation* (Diehl et al.,
IJCNN 2015; Rueckauer et al., Front. Neurosci. 2017): run the CNN on some training images, take each
ReLU layer's largest activation lambda_l (or its 99.9th percentile, which ignores a few outliers), and
make layer l fire at the rate a_l / lambda_l, which lies in [0, 1] (or saturates at 1 above the
percentile). Every ReLU becomes a layer of IF neurons.

With input rates r_{l-1} = a_{l-1} / lambda_{l-1} the synaptic current is (W a_{l-1} + b) / lambda_{l-1}
when the bias is divided by lambda_{l-1}, so a threshold

    threshold_l = lambda_l / lambda_{l-1}                       (lambda_0 = 1: pixels are rates)

gives the rate a_l / lambda_l. This is Rueckauer's weight normalisation W * lambda_{l-1} / lambda_l
with threshold 1, written as a threshold so that pooling layers (no weights) are handled the same
way. The readout multiplies its weights by lambda_L to return the CNN's logits.

Unlike a CQ-CNN, the ReLU CNN's activations are not multiples of 1/T, so the SNN only approaches the
CNN as T grows, and timing errors add up layer by layer.
"""
import copy
import math

import torch
from torch import nn
from torch.utils.data import DataLoader

from .fold import fold_batchnorm
from .layers import DROPPED, POOLING, SYNAPSES, WEIGHTED
from .neuron import check_encoding, check_timesteps
from .quant import CQ
from .snn import SpikingLayer, SpikingNetwork


def _split(model):
    """Folded layers cut at every ReLU: ([synapse, ...] per IF layer, readout layers)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"normalise needs an nn.Sequential, got {type(model).__name__}.")
    if any(isinstance(m, CQ) for m in model.modules()):
        raise ValueError("the model already has CQ layers: convert it with cq.convert(model, timesteps) "
                         "instead; the baseline is for plain ReLU networks.")
    was_training = model.training
    layers = [m for m in copy.deepcopy(fold_batchnorm(model.eval())) if not isinstance(m, DROPPED)]
    model.train(was_training)
    blocks, synapse = [], []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.ReLU):  # the baseline's neurons
            if not any(isinstance(m, WEIGHTED + POOLING) for m in synapse):
                raise ValueError(f"layer {i} ({type(layer).__name__}) has no Conv2d, Linear or AvgPool2d before it.")
            blocks.append(synapse)
            synapse = []
        elif isinstance(layer, SYNAPSES):
            synapse.append(layer)
        else:
            raise ValueError(f"cannot convert layer {i} ({type(layer).__name__}): the baseline handles "
                             "Conv2d/Linear -> BatchNorm -> ReLU, AvgPool2d and Flatten only.")
    if not blocks:
        raise ValueError("the model has no ReLU, so there is nothing to turn into IF neurons.")
    if not any(isinstance(m, WEIGHTED) for m in synapse):
        raise ValueError("the model must end in a Linear readout after its last ReLU.")
    return blocks, synapse


def _batches(data, batch_size=256):
    if torch.is_tensor(data):
        return [data]
    return [x for x, _ in DataLoader(data, batch_size=batch_size)]


@torch.no_grad()
def scales(model, data, percentile=100.0):
    """lambda_l per ReLU layer: the largest activation over `data` (a batch or a dataset), or its
    `percentile`-th percentile over all neurons and images (99.9 in Rueckauer et al.). Chapter 7."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}; use 100 for the max, 99.9 "
                         "for Rueckauer's robust normalisation.")
    blocks, _ = _split(model)
    device = next(model.parameters()).device
    per_layer = [[] for _ in blocks]
    for x in _batches(data):
        h = x.to(device)
        for i, block in enumerate(blocks):
            h = nn.Sequential(*block)(h).clamp(min=0)
            per_layer[i].append(h.flatten() if percentile < 100 else h.max().reshape(1))
    if not per_layer[0]:
        raise ValueError("data holds no images; pass a batch or a dataset to measure the activations on.")
    result = []
    for values in per_layer:
        values = torch.cat(values)
        if percentile < 100:  # nearest rank: the smallest value with `percentile` % of the values at or below it
            values = values.cpu().kthvalue(max(1, math.ceil(percentile / 100 * len(values)))).values
        value = float(values.max())
        result.append(value if value > 0 else 1.0)  # a layer that never fires keeps threshold 1
    return result


def normalise(model, data, timesteps=64, encoding="current", percentile=100.0, mode="floor"):
    """The SpikingNetwork of a plain ReLU CNN by data-based normalisation (chapter 7).

    data: a batch (B, C, H, W) or a dataset of training images in [0, 1] to take the scales from;
    percentile=100 is Diehl's max normalisation, 99.9 Rueckauer's. Each ReLU becomes IF neurons with
    threshold lambda_l / lambda_{l-1}, starting at 0 (mode="floor") or at half the threshold
    ("round"); the readout's weights are multiplied by lambda_L. Returns the network with
    `snn.scales` (the lambda_l)."""
    timesteps, encoding = check_timesteps(timesteps), check_encoding(encoding)
    lambdas = scales(model, data, percentile)
    blocks, readout = _split(model)
    layers, previous = [], 1.0
    for block, scale in zip(blocks, lambdas):
        for m in block:
            if isinstance(m, WEIGHTED) and m.bias is not None:
                m.bias.data = m.bias.data / previous
        layers.append(SpikingLayer(nn.Sequential(*block), threshold=scale / previous, mode=mode))
        previous = scale
    for m in readout:
        if isinstance(m, WEIGHTED):
            m.weight.data = m.weight.data * previous
            break
    snn = SpikingNetwork(layers, nn.Sequential(*readout), timesteps, encoding)
    snn.scales = lambdas
    return snn


__all__ = ["normalise", "scales"]
