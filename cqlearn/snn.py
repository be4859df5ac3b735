"""The spiking network: layers of IF neurons simulated over T steps (chapters 5 and 6).

A SpikingLayer is a synapse (the folded Conv2d or Linear, or an AvgPool2d) followed by IF neurons.
The readout does not spike; it returns the mean of its input current over the window, W * rate + b,
the CNN's logits when rates match.

How the simulation is organised (it gives the same spikes whatever the organisation). No layer feeds
back, so a layer only needs its input spikes in time order. The network runs in windows of `chunk`
steps: each synapse takes all the steps of a window in one call (a Conv2d on chunk * B images), then
its IF neurons scan the window step by step (vectorised over all neurons) and the spikes go on to the
next layer. chunk = 1 is the step-by-step loop of SNN libraries, chunk = T is layer by layer; by
default a window holds up to 256 images and 32 MB (`memory.WINDOW`, measured). With the "current"
encoding the first layer's input current is computed once and its spikes come from the closed form
(chapter 3). Memory is the potentials, the counts and one window per layer, plus whatever is recorded;
batches larger than `max_memory` allows are simulated in pieces (`SpikingNetwork.plan`, cqlearn.memory).
"""
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from . import memory
from .neuron import (check_encoding, check_timesteps, constant_current_window, encode,
                     initial_potential)
from .quant import TOLERANCE, check_mode, quantize_tensor

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
    membrane: per spiking layer, (T, B, ...) potential after reset at each step, or None; (T, B, k)
              or (T, B, <indexed shape>) when only some neurons were asked for.
    """
    output: torch.Tensor
    counts: list
    spikes: list = field(default=None)
    membrane: list = field(default=None)


def select(v, neurons, lead=1):
    """The chosen neurons of v, whose first `lead` dims are (time and) batch: a tuple indexes the
    per-image dims, e.g. (3, slice(None), 4); a list or tensor picks flat indices into them."""
    if neurons is None:
        return v
    if isinstance(neurons, tuple):
        return v[(slice(None),) * lead + neurons]
    index = torch.as_tensor(neurons, dtype=torch.long, device=v.device).flatten()
    return v.flatten(lead).index_select(lead, index)


class SpikingNetwork(nn.Module):
    """IF layers plus a non-spiking readout; build one with `cq.convert` (chapter 5).

    max_memory: bytes one call of `run` may use; larger batches are simulated in pieces.
    chunk: steps per synapse call (1 = step by step, timesteps = layer by layer, None = sized to the
    cache); it changes the speed only, never a spike."""

    def __init__(self, layers, readout, timesteps=16, encoding="spikes", max_memory=2**30, chunk=None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.timesteps = check_timesteps(timesteps)
        self.encoding = check_encoding(encoding)
        self.max_memory = max_memory
        self.chunk = chunk

    def forward(self, x):
        return self.run(x).output

    def run(self, x, record=False, membrane=None, seed=0):
        """Simulate the batch x (images in [0, 1]) for `self.timesteps` steps.

        record=True keeps every layer's spikes (bool); membrane lists the layers whose potentials to
        keep (default: all when recording, none otherwise), or maps layers to the neurons to keep,
        {layer: [flat indices]} or {layer: (channel, row, column)}, e.g. {0: [5, 17]}. Batches larger
        than `max_memory` bytes allow are simulated in pieces. `seed` fixes the "poisson" encoding."""
        x = self._check_input(x)
        keep = self._membrane_choice(membrane, record)
        generator = torch.Generator(device=x.device).manual_seed(seed)
        shapes = self._shapes(x)
        rec = self._recording(x, record, keep, shapes)
        footprint = self.footprint(x, keep, record, shapes)
        piece, window = memory.plan(footprint, len(x), self.timesteps, record, self.max_memory, self.chunk)
        outputs = [self._simulate(x, slice(start, start + piece), window, rec, keep, generator, shapes)
                   for start in range(0, len(x), piece)] or [self.readout(rec.counts[-1])]  # or no images
        rec.output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return rec

    def _membrane_choice(self, membrane, record):
        """{layer: neurons (None for all)} from run's `membrane` argument."""
        layers = range(len(self.layers))
        if membrane is None:
            keep = dict.fromkeys(layers if record else ())
        elif isinstance(membrane, dict):
            keep = dict(membrane)
        else:
            keep = dict.fromkeys(membrane)
        if not set(keep) <= set(layers):
            raise ValueError(f"membrane lists layers {sorted(keep)}, but the network has layers 0..{len(layers) - 1}.")
        return keep

    def _check_input(self, x):
        if not torch.is_tensor(x) or x.dim() < 2:
            raise TypeError(f"expected a batch of images as a tensor of shape (B, C, H, W), got {type(x).__name__}.")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"inputs must lie in [0, 1] (pixel intensities, which the encodings turn into "
                             f"rates), got values in [{x.min():.3g}, {x.max():.3g}]; drop mean/std "
                             "normalisation, or fold it into the first layer.")
        parameter = next(self.parameters())
        return x.to(parameter.device, parameter.dtype)

    @torch.no_grad()
    def _shapes(self, x):
        """Each spiking layer's output shape for one image."""
        shapes, h = [], x[:1]
        for layer in self.layers:
            h = layer.synapse(h)
            shapes.append(tuple(h.shape[1:]))
        return shapes

    def _kept(self, images, keep, shapes):
        """The shape of each layer's membrane recording per step for `images` images, or None."""
        return [None if i not in keep else
                select(torch.empty((images, *shape), device="meta"), keep[i]).shape for i, shape in enumerate(shapes)]

    def _recording(self, x, record, keep, shapes):
        """The whole batch's Recording, empty: the pieces write into it."""
        B, T, device = len(x), self.timesteps, x.device
        counts = [torch.zeros((B, *s), dtype=x.dtype, device=device) for s in shapes]
        spikes = [torch.empty((T, B, *s), dtype=torch.bool, device=device) for s in shapes] if record else None
        membrane = [None if k is None else torch.empty((T, *k), dtype=x.dtype, device=device)
                    for k in self._kept(B, keep, shapes)]
        return Recording(None, counts, spikes, membrane)

    def footprint(self, x, membrane=None, record=False, shapes=None):
        """What one image like those in x takes in this network (memory.Footprint); `membrane` and
        `record` as in `run`."""
        keep = self._membrane_choice(membrane, record)
        shapes = shapes or self._shapes(x)
        first = shapes[0] if self.encoding == "current" else x.shape[1:]
        return memory.Footprint(input=x.shape[1:].numel(), layers=tuple(torch.Size(s).numel() for s in shapes),
                                first=torch.Size(first).numel(),
                                kept=sum(k.numel() for k in self._kept(1, keep, shapes) if k is not None),
                                itemsize=x.element_size(), device=x.device.type)

    def plan(self, x, record=False, membrane=None):
        """(images per piece, steps per window) that `run` uses for the batch x under `max_memory`
        (see cqlearn.memory); `chunk`, when set, fixes the window."""
        footprint = self.footprint(x, membrane, record)
        return memory.plan(footprint, len(x), self.timesteps, record, self.max_memory, self.chunk)

    @torch.no_grad()
    def _simulate(self, x, images, window, rec, keep, generator, shapes):
        """Simulate x[images], writing its counts, spikes and potentials into `rec`; returns its output."""
        x = x[images]
        T, B, dtype = self.timesteps, len(x), x.dtype
        counts = [c[images] for c in rec.counts]
        constant = self.layers[0].synapse(x) if self.encoding == "current" else None
        potentials = [None if i == 0 and constant is not None else
                      torch.full((B, *s), layer.v_init, dtype=dtype, device=x.device)
                      for i, (layer, s) in enumerate(zip(self.layers, shapes))]
        train = None
        if self.encoding == "poisson" and x.device.type != "cpu":
            train = encode(x, T, "poisson", generator)  # one draw: chunked draws differ off the CPU

        for start in range(0, T, window):
            steps, rows = min(window, T - start), slice(start, start + window)
            for i, layer in enumerate(self.layers):
                trace = None if rec.membrane[i] is None else rec.membrane[i][rows, images]
                if i == 0 and constant is not None:  # IF neurons under a constant current: closed form
                    h = torch.empty((steps, *constant.shape), dtype=dtype, device=x.device)
                    _, v = constant_current_window(constant, start, steps, layer.threshold, layer.v_init,
                                                   trace is not None, out=h)
                    if trace is not None:
                        trace.copy_(select(v, keep[0], 2))
                else:
                    if i == 0 and self.encoding == "spikes":
                        h = constant_current_window(x, start, steps, out=torch.empty((steps, *x.shape), dtype=dtype,
                                                                                    device=x.device))[0]
                    elif i == 0:
                        h = (encode(x, steps, "poisson", generator) if train is None else train[rows]).to(dtype)
                    current = layer.synapse(h.flatten(0, 1)).contiguous()
                    h = self._scan(current.view(steps, B, *current.shape[1:]), potentials[i], layer.threshold,
                                   trace, keep.get(i))
                counts[i] += h.sum(0)
                if rec.spikes is not None:
                    rec.spikes[i][rows, images] = h
        return self.readout(counts[-1] / T)

    @staticmethod
    def _scan(currents, v, threshold, trace=None, neurons=None):
        """IF neurons over a window of steps, in place: v is the potential, currents[k] becomes the spikes
        of step k (0 or 1), and trace[k] the potential after reset. The same arithmetic as `if_step`."""
        fire = threshold * (1 - TOLERANCE)
        for k, h in enumerate(currents):
            v += h
            torch.ge(v, fire, out=h)
            v.sub_(h, alpha=threshold)
            if trace is not None:
                trace[k] = select(v, neurons)
        return currents

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
