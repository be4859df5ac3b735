"""What a simulation returns and keeps (chapter 6): the Recording, and which neurons' potentials to keep."""
from dataclasses import dataclass, field

import torch


@dataclass
class Recording:
    """What `SpikingNetwork.run` and `run_stepwise` return.

    output:   (B, classes) readout logits.
    counts:   per spiking layer, (B, ...) net spikes over the window (+1 minus -1), always kept.
              With flush steps (chapter 11) the window is T + flush steps, and so are the time axes below
              (outputs excepted): spikes[T:] and membrane[T:] are the flush steps.
    spikes:   per spiking layer, (T, B, ...) bool ("if" neurons) or int8 in {-1, 0, +1} ("signed"), or None
              when not recorded.
    membrane: per spiking layer, (T, B, ...) potential after reset at each step, or None; (T, B, k)
              or (T, B, <indexed shape>) when only some neurons were asked for.
    outputs:  (T, B, classes) with all_timesteps=True: the output after t steps, readout(counts / t),
              for every t <= T (the run to t is the first t steps of the run to T), else None.
    input_counts: (B, C, H, W) input spikes per pixel that the simulation used ("spikes", "poisson"),
              None for "current".
    fired:    per spiking layer, (B, ...) spikes fired, -1 spikes included: each is a synaptic event
              (cqlearn.energy). For "if" neurons these are the count tensors themselves.
    """
    output: torch.Tensor
    counts: list
    spikes: list = field(default=None)
    membrane: list = field(default=None)
    outputs: torch.Tensor = field(default=None)
    input_counts: torch.Tensor = field(default=None)
    fired: list = field(default=None)


def select(v, neurons, lead=1):
    """The chosen neurons of v, whose first `lead` dims are (time and) batch: a tuple indexes the
    per-image dims, e.g. (3, slice(None), 4); a list or tensor picks flat indices into them."""
    if neurons is None:
        return v
    if isinstance(neurons, tuple):
        return v[(slice(None),) * lead + neurons]
    index = torch.as_tensor(neurons, dtype=torch.long, device=v.device).flatten()
    return v.flatten(lead).index_select(lead, index)


def check_neurons(layer, neurons, shape):
    """Raise a ValueError naming the layer and its size unless `neurons` picks neurons of `shape`."""
    size = torch.Size(shape).numel()
    what = f"membrane={{{layer}: {neurons!r}}}"
    if neurons is None:
        return
    if isinstance(neurons, tuple):
        try:
            select(torch.empty((1, *shape), device="meta"), neurons)
        except (IndexError, TypeError) as error:
            raise ValueError(f"{what} does not index layer {layer}, whose neurons have shape {tuple(shape)} "
                             f"(per image): {error}.") from None
        return
    index = torch.as_tensor(neurons)
    bad = index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool
    if bad or (index.numel() and (index.min() < 0 or index.max() >= size)):
        raise ValueError(f"{what}: layer {layer} has {size} neurons per image (shape {tuple(shape)}); pick whole "
                         f"numbers 0..{size - 1} (flat indices) or a tuple such as (channel, row, column).")


def choose_membranes(membrane, record, shapes):
    """{layer: neurons (None for all)} from run's `membrane` argument, checked against the layer shapes."""
    layers = range(len(shapes))
    if membrane is None:
        keep = dict.fromkeys(layers if record else ())
    elif isinstance(membrane, dict):
        keep = dict(membrane)
    else:
        keep = dict.fromkeys(membrane)
    if not set(keep) <= set(layers):
        raise ValueError(f"membrane lists layers {sorted(keep)}, but the network has layers 0..{len(shapes) - 1}.")
    for i, neurons in keep.items():
        check_neurons(i, neurons, shapes[i])
    return keep


def kept_shapes(keep, shapes, images):
    """The shape of each layer's membrane recording per step for `images` images, or None."""
    return [None if i not in keep else select(torch.empty((images, *shape), device="meta"), keep[i]).shape
            for i, shape in enumerate(shapes)]
