"""How much memory a spiking simulation needs, and how it is cut to fit (chapter 6).

`SpikingNetwork.run` simulates a batch in *pieces* of images, and each piece in *windows* of time steps
(one synapse call per window). Neither changes a spike; they set the speed and the memory. For a batch
of B images, a piece of P images and a window of W steps the memory is

    recording  B * (counts and input counts + T * (spikes, if recorded, + potentials asked for + outputs))
  + work       P * (potentials + one step's spike count)
             + P * W * (one synapse call's input and output, times CONV_WORKSPACE, + the first layer's spikes)

`plan(snn, x, ...)`, the one call `run` makes, picks the largest piece whose work fits in
HEADROOM * max_memory beside the whole batch's recording, then the longest window that fits the cache
(`WINDOW`) and half of the room left. A recording that leaves no room for one image is refused.
"""
from dataclasses import dataclass

import torch

from .recording import choose_membranes, kept_shapes

# Steps per synapse call, chosen by measurement (benchmarks/, 1 thread on a 2-core EPYC): the fastest
# windows held 64-256 images and 16-32 MB of synapse input + output (digits_cnn B=16: 8-16 steps;
# vgg_small B=16: 4-8; vgg_star B=2: 8-16), 10-25 % faster than one step per call and 1.3-2x faster
# than all T steps in one call, which falls out of cache.
WINDOW = {"cpu": (256, 2**25)}  # at most this many images and bytes per synapse call
OTHER_DEVICES = (4096, 2**29)  # accelerators: a few large calls beat many small ones
CONV_WORKSPACE = 2  # a conv call's temporary memory, in units of its input + output
POISSON_WORK = 24  # bytes per input spike drawn: the int64 hashes of the "poisson" encoding
HEADROOM = 0.85  # plan within this share of max_memory: the allocator and libraries need the rest


@dataclass(frozen=True)
class Footprint:
    """One image's data in a simulation: in elements, the input, each spiking layer's output and the
    first layer's spikes per step (with the bytes each takes to make); in bytes, what the Recording
    keeps per image (counts) and per step (spikes and potentials asked for, outputs)."""
    input: int
    layers: tuple
    first: int
    first_bytes: int
    kept_per_image: int
    kept_per_step: int
    itemsize: int
    device: str

    def step_bytes(self):
        """One image-step of the largest synapse call: its input and output."""
        sizes = (self.input, *self.layers)
        return max(sizes[i] + sizes[i + 1] for i in range(len(self.layers))) * self.itemsize

    def step_memory(self):
        """One image-step of a window: the synapse call with its workspace, and the first layer's spikes
        (the closed form's float64 work goes in blocks of a few MB, within HEADROOM)."""
        return CONV_WORKSPACE * self.step_bytes() + self.first * self.first_bytes


def check_max_memory(max_memory):
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, float)) or not max_memory > 0:
        raise ValueError(f"max_memory must be a number of bytes > 0, e.g. 2**30 for 1 GiB, got {max_memory!r}.")
    return max_memory


def footprint(snn, x, shapes, keep, record=False, all_timesteps=False):
    """What one image like those in x takes in the network `snn` (a Footprint); `shapes` are its spiking
    layers' output shapes, `keep` as `recording.choose_membranes` returns it."""
    current, signed = snn.encoding == "current", any(layer.neuron == "signed" for layer in snn.layers)
    layers = tuple(torch.Size(s).numel() for s in shapes)
    kept = sum(k.numel() for k in kept_shapes(keep, shapes, 1) if k is not None)
    classes = snn.readout(torch.zeros((1, *shapes[-1]), dtype=x.dtype, device=x.device)).numel()
    first = layers[0] if current else x.shape[1:].numel()
    itemsize = x.element_size()
    return Footprint(input=x.shape[1:].numel(), layers=layers, first=first,
                     first_bytes=1 + itemsize + (POISSON_WORK if snn.encoding == "poisson" else 0),
                     kept_per_image=itemsize * (sum(layers) * (1 + signed) + (0 if current else first)),
                     kept_per_step=(itemsize * (kept + (classes if all_timesteps else 0))
                                    + (sum(layers) if record else 0)),  # spikes: one byte each
                     itemsize=itemsize, device=x.device.type)


def window(footprint, images, timesteps, room, chunk=None):
    """Steps per synapse call for a piece of `images`: `chunk` if given, else sized to the cache and to
    half of `room` (bytes), then evened out: 32 steps in 3 windows are 11 + 11 + 10."""
    if chunk is not None:
        return max(1, min(int(chunk), timesteps))
    most_images, most_bytes = WINDOW.get(footprint.device, OTHER_DEVICES)
    steps = min(most_images // images, most_bytes // (images * footprint.step_bytes()),
                room // 2 // (images * footprint.step_memory()))
    steps = min(timesteps, max(1, int(steps)))
    windows = -(-timesteps // steps)
    return -(-timesteps // windows)


def recording_bytes(footprint, images, timesteps):
    """The Recording of `images`: counts, and spikes (one byte each), potentials and outputs when kept."""
    return images * (footprint.kept_per_image + timesteps * footprint.kept_per_step)


def work_bytes(footprint, images, timesteps, room, chunk=None):
    """What a piece of `images` works in: potentials, one step's spike count, and one window."""
    per_image = (sum(footprint.layers) + max(footprint.layers)) * footprint.itemsize
    steps = window(footprint, images, timesteps, room, chunk)
    return images * (per_image + steps * footprint.step_memory())


def total_bytes(footprint, images, timesteps, max_memory=float("inf"), chunk=None):
    """Bytes that simulating `images` in one piece takes: recording and work."""
    return recording_bytes(footprint, images, timesteps) + work_bytes(footprint, images, timesteps, max_memory, chunk)


@dataclass(frozen=True)
class Plan:
    """How `run` simulates a batch: pieces of `piece` images, windows of `window` steps; the spiking
    layers' output shapes per image, the membranes to keep ({layer: neurons}) and the Footprint."""
    piece: int
    window: int
    shapes: list
    keep: dict
    footprint: Footprint


def plan(snn, x, record=False, membrane=None, all_timesteps=False):
    """The Plan for simulating the batch x with `snn` under snn.max_memory bytes: the whole batch's
    Recording plus one piece's work fit in HEADROOM of it; `snn.chunk`, when set, fixes the window.
    record, membrane and all_timesteps as in `SpikingNetwork.run`."""
    max_memory = check_max_memory(snn.max_memory)
    shapes = snn.shapes(x)
    keep = choose_membranes(membrane, record, shapes)
    needs = footprint(snn, x, shapes, keep, record, all_timesteps)
    T, images = snn.timesteps + snn.flush, len(x)  # every step is recorded, flush steps included
    room = HEADROOM * max_memory - recording_bytes(needs, images, T)
    if work_bytes(needs, 1, T, room, 1) > room:
        least = (recording_bytes(needs, images, T) + work_bytes(needs, 1, T, float("inf"), 1)) / HEADROOM
        raise ValueError(f"max_memory = {max_memory / 2**20:.1f} MiB cannot hold this simulation: it needs at least "
                         f"{least / 2**20:.1f} MiB (the recording of {images} images over {T} steps, "
                         f"{recording_bytes(needs, images, T) / 2**20:.1f} MiB, plus one image's work). Raise "
                         "max_memory, record less (record=False, membrane={layer: neurons}) or pass fewer images.")
    low, high = 1, max(1, images)
    while low < high:  # the largest piece that fits
        middle = (low + high + 1) // 2
        fits = work_bytes(needs, middle, T, room, snn.chunk) <= room
        low, high = (middle, high) if fits else (low, middle - 1)
    return Plan(low, window(needs, low, T, room, snn.chunk), shapes, keep, needs)


__all__ = ["Footprint", "Plan", "footprint", "plan", "window", "recording_bytes", "work_bytes", "total_bytes",
           "check_max_memory", "WINDOW", "OTHER_DEVICES", "CONV_WORKSPACE", "HEADROOM"]
