"""The spiking network: layers of IF neurons simulated over T steps (chapters 5 and 6).

A SpikingLayer is a synapse (the folded Conv2d or Linear, or an AvgPool2d) followed by IF neurons.
The readout does not spike; it returns the mean of its input current over the window, W * rate + b,
the CNN's logits when rates match.

How the simulation is organised (it gives the same spikes whatever the organisation). No layer feeds
back, so a layer only needs its input spikes in time order. The network runs in windows of `chunk`
steps: each synapse takes all the steps of a window in one call (a Conv2d on chunk * B images), then
its IF neurons scan the window step by step (vectorised over all neurons) and the spikes go on to the
next layer. chunk = 1 is the step-by-step loop of SNN libraries, chunk = T is layer by layer; by
default a window holds up to 256 images and 32 MB (`WINDOW`, measured: see below). With
the "current" encoding the first layer's input current is computed once and its spikes come from the
closed form (chapter 3). Memory is the potentials, the counts and one window per layer, plus whatever
is recorded; batches larger than `max_memory` allows are simulated in pieces.
"""
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .neuron import (check_encoding, check_timesteps, constant_current_window, encode,
                     initial_potential)
from .quant import TOLERANCE, check_mode, quantize_tensor

WEIGHTED = (nn.Conv2d, nn.Linear)
# Steps per synapse call, chosen by measurement (benchmarks/, 1 thread on a 2-core EPYC): the fastest
# windows held 64-256 images and 16-32 MB of synapse input + output (digits_cnn B=16: 8-16 steps;
# vgg_small B=16: 4-8; vgg_star B=2: 8-16), 10-25 % faster than one step per call and 1.3-2x faster
# than all T steps in one call, which falls out of cache.
WINDOW = {"cpu": (256, 2**25)}  # at most this many images and bytes per synapse call
OTHER_DEVICES = (4096, 2**29)  # accelerators: a few large calls beat many small ones
CONV_WORKSPACE = 2  # a conv call's temporary memory, in units of its input + output (for max_memory)
HEADROOM = 0.85  # plan pieces within this share of max_memory: the allocator and libraries need the rest


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
        piece, window = self._plan(x, record, keep, shapes)
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

    def _step_bytes(self, x, shapes):
        """Bytes one image's step takes in the largest synapse call: its input and output."""
        sizes = [x.shape[1:].numel()] + [torch.Size(s).numel() for s in shapes]
        return max(sizes[i] + sizes[i + 1] for i in range(len(shapes))) * x.element_size()

    def _step_memory(self, x, shapes):
        """Memory per image and step of a window: the synapse call and its workspace, the closed form's
        spikes (its float64 work goes in blocks of a few MB, within HEADROOM)."""
        first = torch.Size(shapes[0]).numel() if self.encoding == "current" else x.shape[1:].numel()
        return CONV_WORKSPACE * self._step_bytes(x, shapes) + first * (1 + x.element_size())  # spikes: bool, float

    def _window(self, batch, x, shapes, room=None):
        """Steps per synapse call for a piece of `batch` images: self.chunk, or sized to the cache and to
        half of `room` (the bytes left for the work; default max_memory)."""
        room = self.max_memory if room is None else room
        T = self.timesteps
        if self.chunk is not None:
            return max(1, min(int(self.chunk), T))
        images, budget = WINDOW.get(x.device.type, OTHER_DEVICES)
        steps = min(images // batch, budget // (batch * self._step_bytes(x, shapes)),
                    int(room // 2 // (batch * self._step_memory(x, shapes))))
        steps = min(T, max(1, steps))
        windows = -(-T // steps)
        return -(-T // windows)  # equal windows: 32 steps in 3 windows are 11 + 11 + 10

    def _kept(self, batch, keep, shapes):
        """The shape of each layer's membrane recording per step for `batch` images, or None."""
        return [None if i not in keep else
                select(torch.empty((batch, *shape), device="meta"), keep[i]).shape for i, shape in enumerate(shapes)]

    def _recording(self, x, record, keep, shapes):
        """The whole batch's Recording, empty: the pieces write into it."""
        B, T, device = len(x), self.timesteps, x.device
        counts = [torch.zeros((B, *s), dtype=x.dtype, device=device) for s in shapes]
        spikes = [torch.empty((T, B, *s), dtype=torch.bool, device=device) for s in shapes] if record else None
        membrane = [None if k is None else torch.empty((T, *k), dtype=x.dtype, device=device)
                    for k in self._kept(B, keep, shapes)]
        return Recording(None, counts, spikes, membrane)

    def _output_bytes(self, x, batch, record, keep, shapes):
        """Bytes of the Recording for `batch` images: counts, and spikes (bool) and potentials if kept."""
        T, itemsize, sizes = self.timesteps, x.element_size(), [torch.Size(s).numel() for s in shapes]
        kept = sum(k.numel() for k in self._kept(batch, keep, shapes) if k is not None)
        return batch * sum(sizes) * (itemsize + (T if record else 0)) + T * kept * itemsize

    def _work_bytes(self, x, batch, shapes, room=None):
        """Bytes a piece of `batch` images works in: potentials, one window of synapse calls and closed
        forms, the window's spike count (one step)."""
        sizes = [torch.Size(s).numel() for s in shapes]
        per_image = (sum(sizes) + max(sizes)) * x.element_size()
        return batch * (per_image + self._window(batch, x, shapes, room) * self._step_memory(x, shapes))

    def _memory(self, x, batch, record, keep, shapes=None):
        """Bytes that simulating `batch` images like x in one piece takes."""
        shapes = shapes or self._shapes(x)
        keep = keep if isinstance(keep, dict) else dict.fromkeys(keep)
        return self._output_bytes(x, batch, record, keep, shapes) + self._work_bytes(x, batch, shapes)

    def _plan(self, x, record, keep, shapes):
        """(images per piece, steps per window) so that the whole batch's Recording and one piece's work
        stay under HEADROOM * max_memory bytes; at least 1 image and 1 step."""
        room = HEADROOM * self.max_memory - self._output_bytes(x, len(x), record, keep, shapes)
        low, high = 1, max(1, len(x))
        while low < high:  # the largest piece that fits
            middle = (low + high + 1) // 2
            low, high = (middle, high) if self._work_bytes(x, middle, shapes, room) <= room else (low, middle - 1)
        return low, self._window(low, x, shapes, room)

    def _batch_size(self, x, record, keep, shapes=None):
        """Images per piece (see `_plan`)."""
        keep = keep if isinstance(keep, dict) else dict.fromkeys(keep)
        return self._plan(x, record, keep, shapes or self._shapes(x))[0]

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
