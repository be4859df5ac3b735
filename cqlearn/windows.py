"""`SpikingNetwork.run`: the spikes of `run_stepwise`, computed in windows (chapters 5 and 6).

No layer feeds back, so a layer only needs its input spikes in time order. Each synapse takes all the
steps of a window in one call (a Conv2d on window * B images), then its neurons scan the window step by
step (`neuron.if_step`, vectorised over all neurons) and the spikes go on to the next layer. With the
"current" encoding the first layer's input current is computed once and its spikes come from the
closed form (chapter 3). Batches larger than `max_memory` allows are simulated in pieces of images;
`memory.plan` sizes pieces and windows. None of this changes a spike (tests/test_snn.py).
"""
import torch

from .neuron import constant_current_counts, constant_current_window, encode
from .recording import Recording, kept_shapes, select


def run(snn, x, plan, record=False, all_timesteps=False, seed=0):
    """The Recording of `snn` on the checked batch x, piece by piece as `plan` (memory.plan) says."""
    rec = empty_recording(snn, x, plan, record, all_timesteps)
    outputs = [simulate_piece(snn, x, slice(start, start + plan.piece), plan.window, rec, plan.keep, seed)
               for start in range(0, len(x), plan.piece)] or [snn.readout(rec.counts[-1])]  # or no images
    rec.output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return rec


def empty_recording(snn, x, plan, record, all_timesteps):
    """The whole batch's Recording, empty: the pieces write into it."""
    B, T, device, dtype = len(x), snn.timesteps, x.device, x.dtype
    steps = T + snn.flush  # spikes and potentials: flush steps included
    counts = [torch.zeros((B, *s), dtype=dtype, device=device) for s in plan.shapes]
    signed = [layer.neuron == "signed" for layer in snn.layers]
    spikes = [torch.empty((steps, B, *s), dtype=torch.int8 if sign else torch.bool, device=device)
              for s, sign in zip(plan.shapes, signed)] if record else None
    kept = kept_shapes(plan.keep, plan.shapes, B)
    membrane = [None if k is None else torch.empty((steps, *k), dtype=dtype, device=device) for k in kept]
    classes = snn.readout(counts[-1][:1]).shape[1:]
    outputs = torch.empty((T, B, *classes), dtype=dtype, device=device) if all_timesteps else None
    inputs = None if snn.encoding == "current" else torch.zeros_like(x)
    fired = [torch.zeros_like(c) if sign else c for c, sign in zip(counts, signed)]
    return Recording(None, counts, spikes, membrane, outputs, inputs, fired)


@torch.no_grad()
def simulate_piece(snn, x, images, window, rec, keep, seed):
    """Simulate x[images] in windows of `window` steps, writing its counts, spikes and potentials into
    `rec`; returns its output."""
    x, T = x[images], snn.timesteps
    counts, fired = [c[images] for c in rec.counts], [f[images] for f in rec.fired]
    v = [torch.full_like(c, layer.v_init) for layer, c in zip(snn.layers, counts)]
    constant = snn.layers[0].synapse(x) if snn.encoding == "current" else None
    windows = [(start, min(window, end - start)) for first, end in ((0, T), (T, T + snn.flush))
               for start in range(first, end, window)]  # the input steps, then the flush steps
    for start, steps in windows:
        rows, flushing = slice(start, start + steps), start >= T
        if flushing:  # no input
            h = x.new_zeros((steps, *x.shape))
            if start == T and constant is not None:  # the first layer's potential from the closed form
                v[0] = constant_current_counts(constant, T, snn.layers[0].threshold, snn.layers[0].v_init,
                                               potential=True)[1].to(x.dtype)
        elif constant is None:
            h = encode(x, steps, snn.encoding, seed, start, images.start).to(x.dtype)
            rec.input_counts[images] += h.sum(0)
        for i, layer in enumerate(snn.layers):
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
                h = scan(layer, current.view(steps, len(x), *current.shape[1:]), v[i], counts[i],
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
                rec.outputs[start + k, images] = snn.readout(total / (start + k + 1))
    return snn.readout(counts[-1] / T)


def scan(layer, currents, v, count, trace=None, neurons=None, limit=None):
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
