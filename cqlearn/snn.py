"""The spiking network: layers of IF neurons simulated over T steps (chapters 5 and 6).

A SpikingLayer is a synapse (the folded Conv2d or Linear, or an AvgPool2d) followed by IF neurons.
The readout does not spike; it returns the mean of its input current over the window, W * rate + b,
the CNN's logits when rates match.

`run_stepwise` is the method's definition, one step at a time. `run` is its optimisation, the same
spikes computed in windows: no layer feeds back, so a layer only needs its input spikes in time order.
Each synapse takes all the steps of a window in one call (a Conv2d on window * B images), then its
neurons scan the window step by step (`neuron.if_step`, vectorised over all neurons) and the spikes go
on to the next layer. With the "current" encoding the first layer's input current is computed once
and its spikes come from the closed form (chapter 3). Batches larger than `max_memory` allows are
simulated in pieces of images; `memory.plan` sizes pieces and windows.

Flush steps (chapter 11): `flush` = k extra steps after the T input steps, with the input and the biases
off, so that spikes still on their way (input that arrived late) reach the readout; no neuron's net
count may exceed T (the CNN's clamp at 1), and the readout still divides by T.
"""
import copy

import torch
from torch import nn
from torch.nn import functional as F

from . import memory
from .layers import IMAGE_LAYERS, SYNAPSES, WEIGHTED
from .neuron import (check_encoding, check_flush, check_neuron, check_timesteps, constant_current_counts,
                     constant_current_window, encode, if_step, initial_potential)
from .quant import check_mode, quantize_tensor
from .recording import Recording, kept_shapes, select


class SpikingLayer(nn.Module):
    """Synapse followed by integrate-and-fire neurons with a threshold (1 unless weights were scaled).

    The synapse, an nn.Sequential of `layers.SYNAPSES`, holds at most one weighted op (Conv2d or
    Linear), `weighted`: every weight layer drives its own neurons. The layer checks this itself.
    neuron: "if" (the paper's) or "signed" (chapter 11)."""

    def __init__(self, synapse, threshold=1.0, mode="floor", neuron="if"):
        super().__init__()
        if not isinstance(synapse, nn.Sequential) or not len(synapse):
            raise ValueError(f"a spiking layer needs a synapse before its neurons, an nn.Sequential holding a Conv2d, "
                             f"Linear or AvgPool2d, got {synapse!r}; every CQ needs one of these before it.")
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
        computed in windows of steps and pieces of the batch.

        record=True keeps every layer's spikes; membrane lists the layers whose potentials to keep
        (default: all when recording, none otherwise), or maps layers to the neurons to keep,
        {layer: [flat indices]} or {layer: (channel, row, column)}, e.g. {0: [5, 17]}.
        all_timesteps=True adds `outputs`, the output at every T <= timesteps, from this one run (not
        with flush steps: a run to t < T would need flush steps of its own).
        `seed` fixes the "poisson" encoding. See `Recording` for what comes back."""
        x = self._check_input(x, all_timesteps)
        plan = memory.plan(self, x, record, membrane, all_timesteps)
        rec = self._recording(x, record, all_timesteps, plan)
        outputs = [self._simulate(x, slice(start, start + plan.piece), plan.window, rec, plan.keep, seed)
                   for start in range(0, len(x), plan.piece)] or [self.readout(rec.counts[-1])]  # or no images
        rec.output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return rec

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

    def _recording(self, x, record, all_timesteps, plan):
        """The whole batch's Recording, empty: the pieces write into it."""
        B, T, device, dtype = len(x), self.timesteps, x.device, x.dtype
        steps = T + self.flush  # spikes and potentials: flush steps included
        counts = [torch.zeros((B, *s), dtype=dtype, device=device) for s in plan.shapes]
        signed = [layer.neuron == "signed" for layer in self.layers]
        spikes = [torch.empty((steps, B, *s), dtype=torch.int8 if sign else torch.bool, device=device)
                  for s, sign in zip(plan.shapes, signed)] if record else None
        kept = kept_shapes(plan.keep, plan.shapes, B)
        membrane = [None if k is None else torch.empty((steps, *k), dtype=dtype, device=device) for k in kept]
        classes = self.readout(counts[-1][:1]).shape[1:]
        outputs = torch.empty((T, B, *classes), dtype=dtype, device=device) if all_timesteps else None
        inputs = None if self.encoding == "current" else torch.zeros_like(x)
        fired = [torch.zeros_like(c) if sign else c for c, sign in zip(counts, signed)]
        return Recording(None, counts, spikes, membrane, outputs, inputs, fired)

    @torch.no_grad()
    def _simulate(self, x, images, window, rec, keep, seed):
        """Simulate x[images] in windows of `window` steps, writing its counts, spikes and potentials into
        `rec`; returns its output."""
        x, T = x[images], self.timesteps
        counts, fired = [c[images] for c in rec.counts], [f[images] for f in rec.fired]
        v = [torch.full_like(c, layer.v_init) for layer, c in zip(self.layers, counts)]
        constant = self.layers[0].synapse(x) if self.encoding == "current" else None
        windows = [(start, min(window, end - start)) for first, end in ((0, T), (T, T + self.flush))
                   for start in range(first, end, window)]  # the input steps, then the flush steps
        for start, steps in windows:
            rows, flushing = slice(start, start + steps), start >= T
            if flushing:  # no input
                h = x.new_zeros((steps, *x.shape))
                if start == T and constant is not None:  # the first layer's potential from the closed form
                    v[0] = constant_current_counts(constant, T, self.layers[0].threshold, self.layers[0].v_init,
                                                   potential=True)[1].to(x.dtype)
            elif constant is None:
                h = encode(x, steps, self.encoding, seed, start, images.start).to(x.dtype)
                rec.input_counts[images] += h.sum(0)
            for i, layer in enumerate(self.layers):
                trace = None if rec.membrane[i] is None else rec.membrane[i][rows, images]
                if i == 0 and constant is not None and not flushing:  # a constant current: closed form
                    h = torch.empty((steps, *constant.shape), dtype=x.dtype, device=x.device)
                    _, potential = constant_current_window(constant, start, steps, layer.threshold, layer.v_init,
                                                           trace is not None, out=h)
                    counts[0] += h.sum(0)
                    if trace is not None:
                        trace.copy_(select(potential, keep[0], 2))
                else:
                    current = layer.current(h.flatten(0, 1), bias=not flushing).contiguous()
                    h = self._scan(layer, current.view(steps, len(x), *current.shape[1:]), v[i], counts[i],
                                   trace, keep.get(i), T if flushing else None)
                if layer.neuron == "signed":  # -1 spikes are events too
                    fired[i] += h.abs().sum(0)
                elif not flushing and (i > 0 or constant is None):  # "if" neurons: the counts, once per window
                    counts[i] += h.sum(0)
                if rec.spikes is not None:
                    rec.spikes[i][rows, images] = h
            if rec.outputs is not None:  # the counts after each step of the window, read out
                totals = h.cumsum(0)
                totals += counts[-1] - totals[-1]
                for k, total in enumerate(totals):
                    rec.outputs[start + k, images] = self.readout(total / (start + k + 1))
        return self.readout(counts[-1] / T)

    @staticmethod
    def _scan(layer, currents, v, count, trace=None, neurons=None, limit=None):
        """The layer's neurons over a window of steps, in place: v is the potential, currents[k] becomes the
        spikes of step k (`SpikingLayer.step`), and trace[k] the potential after reset. The signed neuron
        and the cap `limit` (flush steps) need the net count at every step, so they update `count`; "if"
        neurons without a limit leave it to the caller."""
        count = count if layer.neuron == "signed" or limit is not None else None
        for k, h in enumerate(currents):
            layer.step(v, h, count, out=h, limit=limit)
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
