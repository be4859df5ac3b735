"""From a trained CQ-CNN to a spiking network (chapter 5).

1. Fold every BatchNorm into the Conv2d or Linear before it.
2. Cut the chain after every CQ: the layers before a CQ are a synapse, the CQ becomes IF neurons.
3. What follows the last CQ (flatten, pooling, the last Linear) is the non-spiking readout.
Dropout and Identity are dropped; anything the SNN cannot express raises a ValueError that names it.
"""
from torch import nn

from .fold import BATCHNORMS, flatten, fold_batchnorm
from .neuron import check_encoding, check_timesteps
from .quant import CQ
from .snn import WEIGHTED, SpikingLayer, SpikingNetwork

LINEAR = WEIGHTED + (nn.AvgPool2d, nn.Flatten)
DROPPED = (nn.Dropout, nn.Identity)

FIXES = {
    nn.ReLU: "train its CQ twin first: cq.to_cq(model, levels) (ReLU rates are unbounded, IF rates lie in [0, 1])",
    nn.MaxPool2d: "use nn.AvgPool2d followed by CQ and retrain (max pooling has no spiking counterpart here)",
}


def _why_not(i, layer):
    name = layer.__class__.__name__
    fix = next((f for kind, f in FIXES.items() if isinstance(layer, kind)), None)
    if fix is None and len(list(layer.children())):
        fix = ("write the model as one nn.Sequential chain; residual additions and other custom forward "
               "passes are not convertible in cqlearn v1")
    if fix is None:
        fix = ("use Conv2d/Linear -> BatchNorm -> CQ, AvgPool2d -> CQ, Flatten and Dropout only; other "
               "activations have no integrate-and-fire counterpart")
    return ValueError(f"cannot convert layer {i} ({name}): {fix}.")


def check_convertible(model):
    """Raise a ValueError naming the first layer that has no spiking counterpart."""
    if not isinstance(model, nn.Sequential):
        raise _why_not(0, model) if isinstance(model, nn.Module) else TypeError(
            f"convert needs a torch nn.Sequential, got {type(model).__name__}.")
    layers = flatten(model)
    for i, layer in enumerate(layers):
        if not isinstance(layer, LINEAR + BATCHNORMS + DROPPED + (CQ,)):
            raise _why_not(i, layer)
    cqs = [layer for layer in layers if isinstance(layer, CQ)]
    if not cqs:
        raise ValueError("the model has no CQ layer, so there is nothing to spike; use cq.to_cq(model, levels) "
                         "and fine-tune first.")
    if len({layer.mode for layer in cqs}) > 1:
        raise ValueError("the CQ layers mix 'floor' and 'round' modes; use one mode throughout.")
    return layers


def convert(model, timesteps=16, encoding="spikes"):
    """The SpikingNetwork that simulates the CQ-CNN `model` for `timesteps` steps (chapter 5)."""
    timesteps, encoding = check_timesteps(timesteps), check_encoding(encoding)
    check_convertible(model)
    was_training = model.training
    layers = [m for m in fold_batchnorm(model.eval()) if not isinstance(m, DROPPED)]
    model.train(was_training)

    spiking, synapse = [], []
    for layer in layers:
        if isinstance(layer, CQ):
            if not synapse:
                raise ValueError("a CQ layer follows another CQ or starts the model; every CQ needs a Conv2d, "
                                 "Linear or AvgPool2d before it.")
            spiking.append(_spiking_layer(synapse, layer.mode))
            synapse = []
        else:
            synapse.append(layer)
    if not any(isinstance(m, WEIGHTED) for m in synapse):
        raise ValueError("the model must end in a Linear readout after its last CQ (the readout does not spike).")
    readout = nn.Sequential(*synapse)
    return SpikingNetwork(spiking, readout, timesteps, encoding)


def _spiking_layer(synapse, mode):
    if sum(isinstance(m, WEIGHTED) for m in synapse) > 1:
        names = ", ".join(m.__class__.__name__ for m in synapse)
        raise ValueError(f"the layers [{names}] hold two Conv2d/Linear with no CQ between them; put a CQ "
                         "after each (every weight layer drives its own IF neurons).")
    return SpikingLayer(nn.Sequential(*synapse), threshold=1.0, mode=mode)
