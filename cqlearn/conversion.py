"""From a trained CQ-CNN to a spiking network (chapter 5).

1. Fold every BatchNorm into the Conv2d or Linear before it.
2. Cut the chain after every CQ: the layers before a CQ are a synapse, the CQ becomes IF neurons.
3. What follows the last CQ (flatten, pooling, the last Linear) is the non-spiking readout.
Dropout and Identity are dropped; anything the SNN cannot express raises a ValueError that names it.
"""
from torch import nn

from .fold import flatten, fold_batchnorm
from .layers import BATCHNORMS, DROPPED, SYNAPSES, WEIGHTED
from .neuron import check_encoding, check_flush, check_neuron, check_timesteps
from .quant import CQ, cq_config
from .snn import SpikingLayer, SpikingNetwork

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


def _custom_forward(model):
    """The first nn.Sequential in `model` (itself included) whose class overrides forward, or None."""
    chains = [m for m in model.modules() if isinstance(m, nn.Sequential)]
    return next((m for m in chains if type(m).forward is not nn.Sequential.forward), None)


def check_convertible(model):
    """The model's CQConfig (levels, mode), or a ValueError naming the first layer that has no spiking
    counterpart."""
    if not isinstance(model, nn.Sequential):
        raise _why_not(0, model) if isinstance(model, nn.Module) else TypeError(
            f"convert needs a torch nn.Sequential, got {type(model).__name__}.")
    custom = _custom_forward(model)
    if custom is not None:
        raise ValueError(f"cannot convert {type(custom).__name__}: it is an nn.Sequential with its own forward, "
                         "which conversion would ignore (it reads the layers in order); write the model as a "
                         "plain nn.Sequential chain.")
    layers = flatten(model)
    for i, layer in enumerate(layers):
        if not isinstance(layer, SYNAPSES + BATCHNORMS + DROPPED + (CQ,)):
            raise _why_not(i, layer)
    return cq_config(model)  # one mode, a CQ layer at least (a warning if levels mix)


def convert(model, timesteps=16, encoding="spikes", neuron="if", flush=0):
    """The SpikingNetwork that simulates the CQ-CNN `model` for `timesteps` steps (chapter 5).

    neuron: "if", the paper's integrate-and-fire neuron, or "signed", which may also send -1 spikes
    to take back a spike that later input cancels (chapter 11); its spikes are int8 in {-1, 0, +1}.
    flush: k steps after the T input steps with the input and the biases off, so that input that arrived
    too late to fire all its spikes still does; no neuron's net count may exceed T (an "if" neuron's
    spikes, a signed neuron's +1 minus -1 spikes: the CNN's clamp at 1), and the readout still divides
    by T. Recordings then have T + k steps. 0 (the default) is the paper's simulation (chapter 11)."""
    timesteps, encoding, neuron = check_timesteps(timesteps), check_encoding(encoding), check_neuron(neuron)
    flush = check_flush(flush)
    mode = check_convertible(model).mode
    was_training = model.training
    layers = [m for m in fold_batchnorm(model.eval()) if not isinstance(m, DROPPED)]
    model.train(was_training)

    spiking, synapse = [], []
    for layer in layers:
        if isinstance(layer, CQ):  # the SpikingLayer checks its synapse: one weighted op at most, not empty
            spiking.append(SpikingLayer(nn.Sequential(*synapse), threshold=1.0, mode=mode, neuron=neuron))
            synapse = []
        else:
            synapse.append(layer)
    if not any(isinstance(m, WEIGHTED) for m in synapse):
        raise ValueError("the model must end in a Linear readout after its last CQ (the readout does not spike).")
    readout = nn.Sequential(*synapse)
    return SpikingNetwork(spiking, readout, timesteps, encoding, flush=flush)

