"""The spiking network: layers of IF neurons simulated over T steps (chapters 5 and 6).

A SpikingLayer is a synapse (the folded Conv2d or Linear, or an AvgPool2d) followed by IF neurons.
The readout does not spike; it returns the mean of its input current over the window, W * rate + b,
the CNN's logits when rates match.

`run_stepwise` is the method's definition, one step at a time. `run` is its optimisation, the same
spikes computed in windows of steps and pieces of the batch (windows.py).

Flush steps (chapter 11): `flush` = k extra steps after the T input steps, with the input and the biases
off, so that spikes still on their way (input that arrived late) reach the readout; no neuron's net
count may exceed T (the CNN's clamp at 1), and the readout still divides by T.
"""
import copy

import torch
from torch import nn
from torch.nn import functional as F

from . import memory, windows
from .layers import IMAGE_LAYERS, SYNAPSES, WEIGHTED
from .neuron import check_encoding, check_flush, check_neuron, check_timesteps, encode, if_step, initial_potential
from .quant import check_mode, quantize_tensor
from .recording import Recording


class SpikingLayer(nn.Module):
    """Synapse followed by integrate-and-fire neurons with a threshold (1 unless weights were scaled).

    The synapse, an nn.Sequential of `layers.SYNAPSES`, holds at most one weighted op (Conv2d or
    Linear), `weighted`: every weight layer drives its own neurons. The layer checks this itself.
    neuron: "if" (the paper's) or "signed" (chapter 11)."""

    def __init__(self, synapse, threshold=1.0, mode="floor", neuron="if"):
        super().__init__()
        if not isinstance(synapse, nn.Sequential):
            raise TypeError(f"a spiking layer's synapse is an nn.Sequential, got {type(synapse).__name__}.")
        if not len(synapse):
            raise ValueError("a spiking layer needs a synapse before its neurons, a Conv2d, Linear or AvgPool2d; "
                             "every CQ needs one of these before it.")
        names = ", ".join(m.__class__.__name__ for m in synapse)
        if not all(isinstance(m, SYNAPSES) for m in synapse):
            raise ValueError(f"a synapse holds only Conv2d, Linear, AvgPool2d and Flatten, got [{names}]; fold "
                             "BatchNorm first (cq.fold_batchnorm) and leave Dropout out.")
        if sum(isinstance(m, WEIGHTED) for m in synapse) > 1:
            raise ValueError(f"the layers [{names}] hold two Conv2d/Linear with no CQ between them; put a CQ "
                             "after each (every weight layer drives its own IF neurons).")
        self.synapse = synapse
        self.threshold = float(threshold)
        self.mode = check_mode(mode)
        self.neuron = check_neuron(neuron)

    @property
    def weighted(self):
        """The synapse's Conv2d or Linear, or None (average pooling)."""
        return next((m for m in self.synapse if isinstance(m, WEIGHTED)), None)

    @property
    def v_init(self):
        return initial_potential(self.threshold, self.mode)

    def current(self, h, bias=True):
        """The synapse's current for the input h; bias=False leaves the bias out (flush steps)."""
        if bias:
            return self.synapse(h)
        for m in self.synapse:
            h = (m._conv_forward(h, m.weight, None) if isinstance(m, nn.Conv2d) else
                 F.linear(h, m.weight) if isinstance(m, nn.Linear) else m(h))
        return h

    def step(self, v, current, count, out=None, limit=None):
        """One step of this layer's neurons (`neuron.if_step`), in place on v and count."""
        return if_step(v, current, self.threshold, signed=self.neuron == "signed", count=count, out=out,
                       limit=limit)

    def extra_repr(self):
        return f"threshold={self.threshold:g}, mode={self.mode!r}, neuron={self.neuron!r}"


class SpikingNetwork(nn.Module):
    """IF layers plus a non-spiking readout; build one with `cq.convert` (chapter 5).

    max_memory: bytes one call of `run` may use; larger batches are simulated in pieces.
    chunk: steps per synapse call (1 = step by step, timesteps = layer by layer, None = sized to the
    cache); it changes the speed only, never a spike.
    flush: steps after the T input steps with no input and no bias (module docstring, chapter 11)."""

    def __init__(self, layers, readout, timesteps=16, encoding="spikes", max_memory=2**30, chunk=None, flush=0):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.timesteps = check_timesteps(timesteps)
        self.encoding = check_encoding(encoding)
        self.max_memory = memory.check_max_memory(max_memory)
        self.chunk = chunk
        self.flush = check_flush(flush)

    def forward(self, x):
        return self.run(x).output

    @torch.no_grad()
    def run_stepwise(self, x, record=False, seed=0, all_timesteps=False):
        """The method's definition, one step at a time (chapters 5 and 6): each step, encode the input,
        then for every layer the synapse's current, one `neuron.if_step`, and the spikes on to the next
        layer; then `flush` steps with no input, no bias and net counts capped at T; the readout is
        W * (counts / T) + b. Returns the Recording `run` returns (record=True keeps every spike and
        potential). `run` computes the same spikes faster."""
        x, T = self._check_input(x, all_timesteps), self.timesteps
        v, counts, fired, spikes, membrane = ([None] * len(self.layers) for _ in range(5))
        outputs, input_counts = [], torch.zeros_like(x)
        for t in range(T + self.flush):
            flushing = t >= T
            h = torch.zeros_like(x) if flushing else encode(x, 1, self.encoding, seed, start=t)[0].to(x.dtype)
            input_counts += h
            for i, layer in enumerate(self.layers):
                current = layer.current(h, bias=not flushing)
                if v[i] is None:
                    v[i] = torch.full_like(current, layer.v_init)
                    counts[i], fired[i] = torch.zeros_like(current), torch.zeros_like(current)
                    spikes[i], membrane[i] = [], []
                s = layer.step(v[i], current, counts[i], limit=T if flushing else None)
                fired[i] += s != 0
                if record:
                    spikes[i].append(s)
                    membrane[i].append(v[i].clone())
                h = s.to(x.dtype)
            if all_timesteps:
                outputs.append(self.readout(counts[-1] / (t + 1)))
        return Recording(self.readout(counts[-1] / T), counts, [torch.stack(s) for s in spikes] if record else None,
                         [torch.stack(m) if record else None for m in membrane],
                         torch.stack(outputs) if all_timesteps else None,
                         None if self.encoding == "current" else input_counts, fired)

    def run(self, x, record=False, membrane=None, seed=0, all_timesteps=False):
        """Simulate the batch x (images in [0, 1]) for `self.timesteps` steps: `run_stepwise`'s spikes,
        computed in windows of steps and pieces of the batch (windows.py).

        record=True keeps every layer's spikes; membrane lists the layers whose potentials to keep
        (default: all when recording, none otherwise), or maps layers to the neurons to keep,
        {layer: [flat indices]} or {layer: (channel, row, column)}, e.g. {0: [5, 17]}.
        all_timesteps=True adds `outputs`, the output at every T <= timesteps, from this one run (not
        with flush steps: a run to t < T would need flush steps of its own).
        `seed` fixes the "poisson" encoding. See `Recording` for what comes back."""
        x = self._check_input(x, all_timesteps)
        plan = memory.plan(self, x, record, membrane, all_timesteps)
        return windows.run(self, x, plan, record, all_timesteps, seed)

    def _check_input(self, x, all_timesteps=False):
        if check_flush(self.flush) and all_timesteps:
            raise ValueError(f"all_timesteps=True reads the output after every t <= T from one run, but this network "
                             f"has flush={self.flush} steps after step T, and a run to t < T would need flush steps "
                             "of its own; sweep T with flush=0, or convert at each T with flush.")
        if not torch.is_tensor(x) or x.dim() < 2:
            raise TypeError(f"expected a batch of images as a tensor of shape (B, C, H, W), got {type(x).__name__}.")
        first = self.layers[0].synapse[0]
        if isinstance(first, IMAGE_LAYERS) and x.dim() != 4:
            raise ValueError(f"expected a batch of images of shape (B, C, H, W), got shape {tuple(x.shape)}; "
                             "for one image pass x[None] (a batch of one).")
        if isinstance(first, nn.Conv2d) and x.shape[1] != first.in_channels:
            raise ValueError(f"expected images with {first.in_channels} channels, shape (B, {first.in_channels}, "
                             f"H, W), got shape {tuple(x.shape)}; channels come before height and width (NCHW).")
        if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            found = (f"values in [{x.min():.3g}, {x.max():.3g}]" if torch.isfinite(x).all() else
                     f"{(~torch.isfinite(x)).sum().item()} NaN or infinite values")
            raise ValueError(f"inputs must lie in [0, 1] (pixel intensities, which the encodings turn into "
                             f"rates), got {found}; drop mean/std normalisation, or fold it into the first layer.")
        parameter = next(self.parameters())
        return x.to(parameter.device, parameter.dtype)

    @torch.no_grad()
    def shapes(self, x):
        """Each spiking layer's output shape for one image like those of x."""
        shapes, h = [], x[:1]
        for layer in self.layers:
            h = layer.synapse(h)
            shapes.append(tuple(h.shape[1:]))
        return shapes

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
            m = layer.weighted
            if m is not None:
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
        return f"timesteps={self.timesteps}, encoding={self.encoding!r}" + (f", flush={self.flush}" if self.flush else "")
