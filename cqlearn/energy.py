"""Synaptic operations against multiply-accumulates, and what they cost (chapter 10).

A CNN layer does every multiply-accumulate (MAC) of its weights for every image: a Conv2d does
C_in/groups * k_h * k_w * C_out * H_out * W_out of them, a Linear in * out. A spiking layer works only
when a spike arrives: the spike adds its weight to every neuron it connects to (its fan-out), so

    synaptic operations of a layer = sum over its input neurons j of spikes_j * fan-out_j   (additions)

Energy per operation, 32-bit floating point at 45 nm (M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014): a multiply costs 3.7 pJ and an add 0.9 pJ, so a MAC 4.6 pJ.

Counted: MACs (CNN), synaptic operations (SNN, readout included), average pooling as additions in both.
A signed neuron's -1 spike is a synaptic event like a +1 spike (it subtracts its weights): every spike
counts. Carrying signed spikes needs hardware whose spikes hold a value, such as the graded spikes of
Intel's Loihi 2 (an integer payload per spike); binary-spike chips would need two axons per neuron.
With the "current" encoding the first layer receives pixels, not spikes: its current is constant, so
it costs the CNN's MACs once. Not counted: biases, membrane updates and threshold comparisons, and
memory traffic, which often dominates on real hardware; the ratio compares arithmetic only.
"""
import copy

import torch
from torch import nn

from .layers import DROPPED, POOLING, WEIGHTED
from .neuron import encode

MAC_PJ = 4.6  # pJ per 32-bit float multiply-accumulate, 45 nm (Horowitz, ISSCC 2014)
ADD_PJ = 0.9  # pJ per 32-bit float addition, 45 nm (Horowitz, ISSCC 2014)
OPERATIONS = WEIGHTED + POOLING  # a synapse's one operation
PASSIVE = (nn.Flatten,) + DROPPED  # no arithmetic


def _area(kernel_size):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    return k[0] * k[1]


def _operation(synapse):
    """The one Conv2d, Linear or AvgPool2d of a synapse (an nn.Sequential), or a ValueError."""
    ops = [m for m in synapse if isinstance(m, OPERATIONS)]
    other = [m for m in synapse if not isinstance(m, OPERATIONS + PASSIVE)]
    if len(ops) != 1 or other:
        names = ", ".join(type(m).__name__ for m in synapse)
        raise ValueError(f"cannot count the operations of the synapse [{names}]: it must hold exactly one "
                         "Conv2d, Linear or AvgPool2d (plus Flatten).")
    return ops[0]


def _connectivity(synapse):
    """The synapse with every weight 1 and no bias (pooling: a sum): applied to spike counts, it gives
    each output neuron the number of additions it receives."""
    ones = copy.deepcopy(synapse)
    for m in ones:
        if isinstance(m, WEIGHTED):
            m.weight.data = torch.ones_like(m.weight)
            m.bias = None
        elif isinstance(m, nn.AvgPool2d):
            m.divisor_override = 1
    return ones


@torch.no_grad()
def cnn_operations(synapse, x):
    """(MACs, additions) of the synapse for one input shaped like x[0] (chapter 10)."""
    op = _operation(synapse)
    out = synapse(x[:1])[0]
    if isinstance(op, nn.Conv2d):
        return op.in_channels // op.groups * _area(op.kernel_size) * out.numel(), 0
    if isinstance(op, nn.Linear):
        return op.in_features * op.out_features, 0
    return 0, _area(op.kernel_size) * out.numel()


@torch.no_grad()
def synaptic_operations(synapse, counts):
    """Additions per image (B,) for input spike counts (B, ...): sum_j counts_j * fan-out_j (chapter 10)."""
    _operation(synapse)
    return _connectivity(synapse)(counts).flatten(1).sum(1)


@torch.no_grad()
def cnn_costs(snn, shape):
    """Per layer of `snn` (spiking layers, then the readout) for one input image of `shape` (C, H, W),
    without simulating: layer, name, shape (the layer's output per image), neurons, macs, cnn_adds.
    Chapters 9 and 10."""
    parameter = next(snn.parameters())
    rows, h = [], torch.zeros(1, *shape, dtype=parameter.dtype, device=parameter.device)
    synapses = [layer.synapse for layer in snn.layers] + [snn.readout]
    for i, synapse in enumerate(synapses):
        op = _operation(synapse)
        macs, adds = cnn_operations(synapse, h)
        h = synapse(h)
        rows.append({"layer": i if i < len(snn.layers) else "readout", "name": _name(op),
                     "shape": tuple(h.shape[1:]), "neurons": h[0].numel(), "macs": macs, "cnn_adds": adds})
    return rows


@torch.no_grad()
def count(snn, x, seed=0):
    """Per layer of `snn` (spiking layers, then the readout), averaged over the images of the batch x:

    name, neurons, macs and cnn_adds (the CNN's work), input_spikes (spikes arriving over the window),
    synops (the SNN's additions), snn_macs (first layer under "current" encoding), and for spiking
    layers spikes (fired over the window, -1 spikes of signed neurons and flush steps included), rate
    (spikes per neuron per step, flush steps included) and sparsity (1 - rate, the fraction of
    neuron-steps without a spike). The input spikes are the ones the simulation used (`Recording.input_counts`). Chapter 10."""
    steps = snn.timesteps + snn.flush  # flush steps (chapter 11): their spikes are synaptic events too
    rec = snn.run(x, seed=seed)  # checks x
    inputs = rec.input_counts  # None for "current"
    synapses = [layer.synapse for layer in snn.layers] + [snn.readout]
    rows = cnn_costs(snn, x.shape[1:])
    for i, (row, synapse) in enumerate(zip(rows, synapses)):
        del row["shape"]
        if inputs is None:  # pixels as a constant current: one pass of MACs, no spikes in
            row.update(snn_macs=row["macs"], input_spikes=0.0, synops=0.0)
        else:
            row.update(snn_macs=0, input_spikes=inputs.sum().item() / len(x),
                       synops=synaptic_operations(synapse, inputs).mean().item())
        if i < len(snn.layers):
            fired = rec.fired[i]
            rate = fired.sum().item() / (fired.numel() * steps)
            row.update(spikes=fired.sum().item() / len(x), rate=rate, sparsity=1 - rate)
            inputs = fired
    return rows


def energy(rows, mac_pj=MAC_PJ, add_pj=ADD_PJ):
    """Energy per image in pJ from `count`'s rows: {"cnn": ..., "snn": ..., "ratio": cnn / snn}.

    CNN: MACs * mac_pj + pooling additions * add_pj. SNN: synaptic operations * add_pj + the first
    layer's MACs under "current" encoding * mac_pj. Chapter 10."""
    cnn = sum(r["macs"] * mac_pj + r["cnn_adds"] * add_pj for r in rows)
    snn = sum(r["synops"] * add_pj + r["snn_macs"] * mac_pj for r in rows)
    return {"cnn": cnn, "snn": snn, "ratio": cnn / snn if snn else float("inf")}


def fan_out(synapse, shape, dtype=torch.float32):
    """The fan-out of every input neuron of the synapse, shaped like one input (`shape`): how many
    additions one spike from it causes. The synapse with unit weights is linear, so this is the
    gradient of the sum of its outputs (chapter 10)."""
    _operation(synapse)
    x = torch.zeros((1, *shape), dtype=dtype, requires_grad=True)
    with torch.enable_grad():
        _connectivity(synapse).to(dtype)(x).sum().backward()
    return x.grad[0]


@torch.no_grad()
def count_every_timestep(snn, x, seed=0):
    """[`count`'s rows for the network converted at T] for T = 1 .. snn.timesteps, from one recorded
    simulation to snn.timesteps (chapter 10): the first T steps of a run are the run to T."""
    if snn.flush:
        raise ValueError(f"count_every_timestep needs the run to each T to be the first T steps of one run, which "
                         f"flush={snn.flush} steps after step T prevent; use flush=0, or count() per T.")
    T, B = snn.timesteps, len(x)
    rec = snn.run(x, record=True, membrane=[], seed=seed)  # spikes only
    dtype = rec.output.dtype
    synapses = [layer.synapse for layer in snn.layers] + [snn.readout]
    inputs = None if snn.encoding == "current" else encode(x.to(dtype), T, snn.encoding, seed).to(dtype)
    trains = [inputs] + [s.abs().to(dtype) if s.dtype == torch.int8 else s.to(dtype) for s in rec.spikes]
    per_layer = []  # per layer: (input spikes per step, synops per step, fired per step), each (T,)
    for i, synapse in enumerate(synapses):
        into = trains[i]
        if into is None:
            arrivals = operations = torch.zeros(T, dtype=torch.float64)
        else:
            weights = fan_out(synapse, into.shape[2:], dtype).to(into.device)
            arrivals = into.flatten(1).sum(1).double().cpu()
            operations = (into * weights).flatten(1).sum(1).double().cpu()
        fired = trains[i + 1].flatten(1).sum(1).double().cpu() if i < len(snn.layers) else None
        per_layer.append((arrivals.cumsum(0) / B, operations.cumsum(0) / B, None if fired is None else fired.cumsum(0)))
    costs = cnn_costs(snn, x.shape[1:])
    every = []
    for t in range(1, T + 1):
        rows = []
        for i, (row, (arrivals, operations, fired)) in enumerate(zip(costs, per_layer)):
            row = {k: v for k, v in row.items() if k != "shape"}
            if inputs is None and i == 0:
                row.update(snn_macs=row["macs"], input_spikes=0.0, synops=0.0)
            else:
                row.update(snn_macs=0, input_spikes=arrivals[t - 1].item(), synops=operations[t - 1].item())
            if fired is not None:
                rate = fired[t - 1].item() / (B * row["neurons"] * t)
                row.update(spikes=fired[t - 1].item() / B, rate=rate, sparsity=1 - rate)
            rows.append(row)
        every.append(rows)
    return every


def _name(op):
    if isinstance(op, nn.Conv2d):
        return f"Conv2d {op.in_channels}->{op.out_channels}"
    if isinstance(op, nn.Linear):
        return f"Linear {op.in_features}->{op.out_features}"
    return f"AvgPool2d {_area(op.kernel_size)}"


__all__ = ["MAC_PJ", "ADD_PJ", "cnn_operations", "cnn_costs", "synaptic_operations", "count", "count_every_timestep", "energy", "fan_out"]
