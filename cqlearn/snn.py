"""The spiking network: layers of IF neurons simulated over T steps (chapters 5 and 6).

A SpikingLayer is a synapse (the folded Conv2d or Linear, or an AvgPool2d) followed by IF neurons.
The network simulates one layer at a time over all T steps, since no layer feeds back: the spikes of
layer l over the whole window are the input of layer l + 1. The readout does not spike; it returns
the mean of its input current over the window, W * rate + b, the CNN's logits when rates match.
"""
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .neuron import (check_encoding, check_timesteps, constant_current_steps, encode, if_step,
                     initial_potential)
from .quant import check_mode, quantize_tensor

WEIGHTED = (nn.Conv2d, nn.Linear)


class SpikingLayer(nn.Module):
    """Synapse followed by integrate-and-fire neurons with a threshold (1 unless weights were scaled)."""

    def __init__(self, synapse, threshold=1.0, mode="floor"):
        super().__init__()
        self.synapse = synapse
        self.threshold = float(threshold)
        self.mode = check_mode(mode)

    @property
    def v_init(self):
        return initial_potential(self.threshold, self.mode)

    def extra_repr(self):
        return f"threshold={self.threshold:g}, mode={self.mode!r}"


@dataclass
class Recording:
    """What `SpikingNetwork.run` returns.

    output:   (B, classes) readout logits.
    counts:   per spiking layer, (B, ...) spikes fired over the window, always kept.
    spikes:   per spiking layer, (T, B, ...) bool, or None when not recorded.
    membrane: per spiking layer, (T, B, ...) potential after reset at each step, or None.
    """
    output: torch.Tensor
    counts: list
    spikes: list = field(default=None)
    membrane: list = field(default=None)


class SpikingNetwork(nn.Module):
    """IF layers plus a non-spiking readout; build one with `cq.convert` (chapter 5)."""

    def __init__(self, layers, readout, timesteps=16, encoding="spikes", max_memory=2**30):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.timesteps = check_timesteps(timesteps)
        self.encoding = check_encoding(encoding)
        self.max_memory = max_memory

    def forward(self, x):
        return self.run(x).output

    def run(self, x, record=False, membrane=None, seed=0):
        """Simulate the batch x (images in [0, 1]) for `self.timesteps` steps.

        record=True keeps every layer's spikes (bool); membrane lists the layers whose potentials to
        keep (default: all when recording, none otherwise). Batches larger than `max_memory` bytes
        allow are simulated in pieces. `seed` fixes the "poisson" encoding."""
        x = self._check_input(x)
        layers = range(len(self.layers))
        keep = set(layers if membrane is None and record else (membrane or ()))
        if not keep <= set(layers):
            raise ValueError(f"membrane lists layers {sorted(keep)}, but the network has layers 0..{len(layers) - 1}.")
        generator = torch.Generator(device=x.device).manual_seed(seed)
        pieces = [self._simulate(part, record, keep, generator)
                  for part in x.split(self._batch_size(x, record, keep))]
        if len(pieces) == 1:
            return pieces[0]
        join = lambda tensors, dim: None if tensors[0] is None else torch.cat(tensors, dim)
        per_layer = lambda name, dim: [join([getattr(p, name)[i] for p in pieces], dim) for i in layers]
        return Recording(torch.cat([p.output for p in pieces]), per_layer("counts", 0),
                         per_layer("spikes", 1) if record else None, per_layer("membrane", 1))

    def _check_input(self, x):
        if not torch.is_tensor(x) or x.dim() < 2:
            raise TypeError(f"expected a batch of images as a tensor of shape (B, C, H, W), got {type(x).__name__}.")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"inputs must lie in [0, 1] (pixel intensities, which the encodings turn into "
                             f"rates), got values in [{x.min():.3g}, {x.max():.3g}]; drop mean/std "
                             "normalisation, or fold it into the first layer.")
        parameter = next(self.parameters())
        return x.to(parameter.device, parameter.dtype)

    def _batch_size(self, x, record, keep):
        """Images per piece so that the per-step tensors of one piece stay under max_memory bytes."""
        with torch.no_grad():
            sizes, h = [], x[:1]
            for layer in self.layers:
                h = layer.synapse(h)
                sizes.append(h[0].numel())
        T, itemsize = self.timesteps, x.element_size()
        per_image = T * (2 * max(sizes) * (1 + itemsize) + x[0].numel())  # spikes in and out, current
        if record:
            per_image += T * sum(sizes)
        per_image += T * itemsize * sum(sizes[i] for i in keep)
        return max(1, int(self.max_memory // per_image))

    @torch.no_grad()
    def _simulate(self, x, record, keep, generator):
        T = self.timesteps
        if self.encoding == "current":
            inputs = None
        else:
            inputs = encode(x, T, self.encoding, generator)
        counts, spikes, membrane = [], [], []
        for i, layer in enumerate(self.layers):
            if inputs is None:
                steps = constant_current_steps(layer.synapse(x), T, layer.threshold, layer.v_init)
            else:
                steps = self._integrate(layer, inputs)
            inputs, v = self._collect(steps, T, i in keep)
            counts.append(inputs.sum(0, dtype=x.dtype))
            spikes.append(inputs if record else None)
            membrane.append(v)
        output = self.readout(counts[-1] / T)
        return Recording(output, counts, spikes if record else None, membrane)

    def _integrate(self, layer, inputs):
        """Yield (spikes, membrane) per step: synaptic current from the input spikes, then IF."""
        v = None
        for s in inputs:
            current = layer.synapse(s.to(self.dtype))
            if v is None:
                v = torch.full_like(current, layer.v_init)
            yield if_step(v, current, layer.threshold), v

    @staticmethod
    def _collect(steps, T, keep_membrane):
        spikes = membrane = None
        for t, (s, v) in enumerate(steps):
            if spikes is None:
                spikes = torch.empty((T, *s.shape), dtype=torch.bool, device=s.device)
                membrane = torch.empty((T, *v.shape), dtype=v.dtype, device=v.device) if keep_membrane else None
            spikes[t] = s
            if keep_membrane:
                membrane[t] = v
        return spikes, membrane

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def with_weight_bits(self, bits, readout=True):
        """A copy with n-bit weights, no retraining (chapter 8).

        Each spiking layer's weights are scaled by their max-abs value s to [-1, 1] and rounded to steps
        of 2**(1 - bits); bias and threshold are divided by s, so the layer fires as before up to
        rounding. The readout (no threshold) keeps its scale in the weights: q * s, also n-bit;
        readout=False leaves it in full precision."""
        snn = copy.deepcopy(self)
        for layer in snn.layers:
            weighted = [m for m in layer.synapse if isinstance(m, WEIGHTED)]
            for m in weighted:
                q, scale = quantize_tensor(m.weight.data, bits)
                m.weight.data = q
                if m.bias is not None:
                    m.bias.data = m.bias.data / scale
                layer.threshold = layer.threshold / float(scale)
        if readout:
            for m in snn.readout:
                if isinstance(m, WEIGHTED):
                    q, scale = quantize_tensor(m.weight.data, bits)
                    m.weight.data = q * scale
        return snn

    def extra_repr(self):
        return f"timesteps={self.timesteps}, encoding={self.encoding!r}"
