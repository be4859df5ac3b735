"""How much memory a spiking simulation needs, and how it is cut to fit (chapter 6).

`SpikingNetwork.run` simulates a batch in *pieces* of images, and each piece in *windows* of time steps
(one synapse call per window). Neither changes a spike; they set the speed and the memory. For a batch
of B images, a piece of P images and a window of W steps the memory is

    recording  B * (counts + T * spikes, if recorded) + T * B * (potentials asked for)
  + work       P * (potentials + one step's spike count)
             + P * W * (one synapse call's input and output, times CONV_WORKSPACE, + the first layer's spikes)

`plan` picks the largest piece whose work fits in HEADROOM * max_memory beside the whole batch's
recording, then the longest window that fits the cache (`WINDOW`) and half of the room left.
"""
from dataclasses import dataclass

# Steps per synapse call, chosen by measurement (benchmarks/, 1 thread on a 2-core EPYC): the fastest
# windows held 64-256 images and 16-32 MB of synapse input + output (digits_cnn B=16: 8-16 steps;
# vgg_small B=16: 4-8; vgg_star B=2: 8-16), 10-25 % faster than one step per call and 1.3-2x faster
# than all T steps in one call, which falls out of cache.
WINDOW = {"cpu": (256, 2**25)}  # at most this many images and bytes per synapse call
OTHER_DEVICES = (4096, 2**29)  # accelerators: a few large calls beat many small ones
CONV_WORKSPACE = 2  # a conv call's temporary memory, in units of its input + output
HEADROOM = 0.85  # plan within this share of max_memory: the allocator and libraries need the rest


@dataclass(frozen=True)
class Footprint:
    """One image's data in a simulation, in elements: the input, each spiking layer's output, the
    first layer's spikes per step, the potentials recorded per step; plus bytes per element."""
    input: int
    layers: tuple
    first: int
    kept: int
    itemsize: int
    device: str

    def step_bytes(self):
        """One image-step of the largest synapse call: its input and output."""
        sizes = (self.input, *self.layers)
        return max(sizes[i] + sizes[i + 1] for i in range(len(self.layers))) * self.itemsize

    def step_memory(self):
        """One image-step of a window: the synapse call with its workspace, and the first layer's spikes
        (bool, and float as the next synapse's input; the closed form's float64 work goes in blocks of a
        few MB, within HEADROOM)."""
        return CONV_WORKSPACE * self.step_bytes() + self.first * (1 + self.itemsize)


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


def recording_bytes(footprint, images, timesteps, record):
    """The Recording of `images`: counts, and spikes (bool) and potentials when kept."""
    neurons = sum(footprint.layers)
    spikes = timesteps * neurons if record else 0
    return images * (neurons * footprint.itemsize + spikes + timesteps * footprint.kept * footprint.itemsize)


def work_bytes(footprint, images, timesteps, room, chunk=None):
    """What a piece of `images` works in: potentials, one step's spike count, and one window."""
    per_image = (sum(footprint.layers) + max(footprint.layers)) * footprint.itemsize
    steps = window(footprint, images, timesteps, room, chunk)
    return images * (per_image + steps * footprint.step_memory())


def plan(footprint, images, timesteps, record, max_memory, chunk=None):
    """(images per piece, steps per window) that keep the Recording of all `images` and the work of one
    piece under HEADROOM * max_memory bytes; at least 1 image and 1 step."""
    room = HEADROOM * max_memory - recording_bytes(footprint, images, timesteps, record)
    low, high = 1, max(1, images)
    while low < high:  # the largest piece that fits
        middle = (low + high + 1) // 2
        fits = work_bytes(footprint, middle, timesteps, room, chunk) <= room
        low, high = (middle, high) if fits else (low, middle - 1)
    return low, window(footprint, low, timesteps, room, chunk)


def total_bytes(footprint, images, timesteps, record, max_memory=float("inf"), chunk=None):
    """Bytes that simulating `images` in one piece takes: recording and work."""
    return (recording_bytes(footprint, images, timesteps, record)
            + work_bytes(footprint, images, timesteps, max_memory, chunk))


__all__ = ["Footprint", "plan", "window", "recording_bytes", "work_bytes", "total_bytes", "WINDOW",
           "OTHER_DEVICES", "CONV_WORKSPACE", "HEADROOM"]
