"""The integrate-and-fire neuron (chapter 3), the signed neuron (chapter 11) and the input encodings
(chapter 6).

Each step t the neuron adds its input current to its membrane potential v; if v reaches the
threshold it fires one spike and the threshold is subtracted (reset by subtraction):

    v[t] = v[t-1] + I[t] - threshold * s[t],      s[t] = 1 if v[t-1] + I[t] >= threshold else 0

With a constant current a in [0, 1], threshold 1 and v[0] = 0 this fires exactly floor(a * t) spikes
in t steps, so the rate after T steps is the CQ activation with T levels. A potential that float
rounding leaves a hair under the threshold (TOLERANCE, shared with the CQ staircase) still fires.

The signed neuron also sends a -1 spike when v < 0 and its net count so far is > 0, and then adds the
threshold back: it can take back a spike that later, negative input shows was one too many.
"""

from typing import NamedTuple

import torch

from .quant import TOLERANCE, is_whole

ENCODINGS = ("current", "spikes", "poisson")
NEURONS = ("if", "signed")
RESETS = ("subtract", "zero")
MAX_TIMESTEPS = 2**16
CACHE_ELEMENTS = 2**17  # float64 values per block of closed-form work (1 MB): measured best, 2**15-2**18
DEVICE_ELEMENTS = 2**22  # the same on accelerators, which prefer few large calls


def check_timesteps(timesteps):
    """`timesteps` as an int (16 and 16.0 alike, as `levels`), or a ValueError that says what a valid value is."""
    if not is_whole(timesteps, 1, MAX_TIMESTEPS):
        raise ValueError(f"timesteps must be a whole number >= 1 and <= {MAX_TIMESTEPS} (the number of simulation "
                         f"steps T), got {timesteps!r}; T = levels (16) is the smallest that can be exact.")
    return int(timesteps)


def check_flush(flush):
    """`flush` (steps without input after the T input steps, chapter 11) as an int, or a ValueError."""
    if not is_whole(flush, 0, MAX_TIMESTEPS):
        raise ValueError(f"flush must be a whole number of steps >= 0 and <= {MAX_TIMESTEPS} (0: no flush steps, "
                         f"as in the paper; 4 closes the late-input gap of signed neurons at T = L), got {flush!r}.")
    return int(flush)


def check_encoding(encoding):
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}: 'current' feeds pixels "
                         "as constant currents, 'spikes' as evenly spaced spikes, 'poisson' as random ones.")
    return encoding


def check_neuron(neuron):
    if neuron not in NEURONS:
        raise ValueError(f"neuron must be 'if' (integrate-and-fire, the paper's) or 'signed' (may also send "
                         f"-1 spikes, chapter 11), got {neuron!r}.")
    return neuron


def check_reset(reset):
    if reset not in RESETS:
        raise ValueError(f"reset must be 'subtract' (reset by subtraction, as in the paper) or 'zero' "
                         f"(reset to zero), got {reset!r}.")
    return reset


def initial_potential(threshold, mode):
    """0 for "floor" (CQ); threshold/2 for "round", which makes the count round instead of floor."""
    return threshold / 2 if mode == "round" else 0.0


def if_step(v, current, threshold=1.0, *, reset="subtract", signed=False, count=None, out=None, limit=None):
    """One step of a population of IF neurons, in place on v (chapter 3). Returns the spikes: bool, int8
    (-1, 0, +1) when signed, or written into `out` (any dtype, e.g. the next synapse's float input).

    reset: "subtract" (the paper's: v -= threshold) or "zero" (v = 0, chapter 3's comparison: under a
    constant current a in (0, threshold] it fires every ceil(threshold / a) steps, not floor(a * T) times).
    signed: the signed neuron (chapter 11): also a -1 spike when v < 0 and the neuron's net count so
    far, `count`, is > 0; v -= spike * threshold either way. At most one spike per step.
    count: the net spike counts so far (needed when signed); the step's spikes are added to it in place.
    limit: no +1 spike from a neuron whose net count has reached `limit` (the flush steps' cap, chapter 11):
    its potential keeps the charge; -1 spikes are not limited. Needs count.
    The TOLERANCE band keeps float rounding from firing: +1 from v >= threshold * (1 - TOLERANCE),
    -1 below -threshold * TOLERANCE, so a neuron that just fired never takes the spike back at once."""
    check_reset(reset)
    v += current
    spikes = torch.ge(v, threshold * (1 - TOLERANCE), out=out)
    if limit is not None:
        if count is None:
            raise ValueError("a spike limit needs the net count so far: pass count= with limit=.")
        spikes.mul_(torch.lt(count, limit))
    if signed:
        if count is None or reset != "subtract":
            raise ValueError("the signed neuron resets by subtraction and needs its net count so far: pass count=.")
        # 1 where a -1 spike fires: min(v < 0, count), as count >= 0 is whole. Float masks, not bool ones:
        # on the CPU, comparisons into float and arithmetic are several times faster than masked_fill.
        negative = torch.lt(v, -threshold * TOLERANCE, out=torch.empty_like(v))
        torch.minimum(negative, count, out=negative)
        spikes = spikes.to(torch.int8).sub_(negative.to(torch.int8)) if out is None else spikes.sub_(negative)
    if reset == "zero":
        v.masked_fill_(spikes.bool(), 0.0)
    else:
        v.sub_(spikes.to(v.dtype), alpha=threshold)
    if count is not None:
        count += spikes
    return spikes


class Trace(NamedTuple):
    """One neuron (or a tensor of them) stepped through time by `simulate`; each field is (T, ...)."""
    spikes: torch.Tensor  # bool, or int8 (-1, 0, +1) for the signed neuron
    before: torch.Tensor  # potential after the step's input, before the reset
    after: torch.Tensor  # potential after the reset
    counts: torch.Tensor  # net spike count so far, N(t)


def simulate(current, timesteps=None, threshold=1.0, *, reset="subtract", signed=False, v_init=0.0):
    """Step neurons with `if_step` and keep everything (chapters 3 and 11): `current` is a (T, ...)
    sequence of input currents, or, with `timesteps`, a constant current (a number or a tensor) held
    for that many steps. Float64 throughout. Returns a Trace: spikes, potentials before and after each
    reset, and the net count after each step."""
    currents = torch.as_tensor(current, dtype=torch.float64)
    if timesteps is not None:  # the same current at every step
        currents = currents.expand(check_timesteps(timesteps), *currents.shape)
    v = torch.full_like(currents[0], float(v_init))
    count = torch.zeros_like(v)
    steps = []
    for current_t in currents:
        before = v + current_t
        spikes = if_step(v, current_t, threshold, reset=reset, signed=signed, count=count)
        steps.append((spikes, before, v.clone(), count.clone()))
    return Trace(*(torch.stack(field) for field in zip(*steps)))


def cnn_counts(currents, threshold=1.0):
    """The count the CNN gives a neuron after each step t of a (T, ...) input sequence: the count of
    the mean input so far held for t steps, clamp(floor(S(t) / threshold), 0, t) with S(t) the input
    summed to step t (chapter 11). A neuron that counts exactly ends on its last value."""
    currents = torch.as_tensor(currents, dtype=torch.float64)
    t = torch.arange(1, len(currents) + 1, dtype=torch.float64).reshape(-1, *[1] * (currents.dim() - 1))
    return constant_current_counts(currents.cumsum(0) / t, t, threshold)


def constant_current_counts(current, t, threshold=1.0, v_init=0.0, potential=False):
    """Spikes fired in the first t steps under a constant current: the IF dynamics in closed form,

        N(t) = clamp(floor((v_init + t * current) / threshold), 0, t),   v(t) = v_init + t * current - N(t) * threshold

    in float64, so that long windows do not drift; t is a number or a tensor that broadcasts against
    current. Returns N(t), or (N(t), v(t)) when potential=True. The signed neuron obeys it too: under
    a constant current its potential never falls below 0 after a spike."""
    drive = t * current.double()
    if v_init != 0:
        drive += v_init
    counts = (drive / threshold).add_(TOLERANCE).floor_().clamp_(min=0)
    counts = torch.minimum(counts, torch.as_tensor(t, dtype=counts.dtype, device=counts.device), out=counts)
    return (counts, drive.sub_(counts * threshold)) if potential else counts


def constant_current_window(current, start, steps, threshold=1.0, v_init=0.0, membrane=False, out=None):
    """Steps start+1 .. start+steps of the closed form at once: spikes (steps, ...) as bool, or written
    into `out` (any dtype), and the membrane after reset (steps, ...) in current's dtype if asked, else
    None. The work goes in blocks of neurons small enough to stay in cache (2-3x faster than whole
    windows); the spikes are where N(t) steps up."""
    shape, flat = current.shape, current.reshape(-1)
    spikes = torch.empty((steps, *shape), dtype=torch.bool, device=current.device)
    trace = torch.empty((steps, *shape), dtype=current.dtype, device=current.device) if membrane else None
    t = torch.arange(start, start + steps + 1, dtype=torch.float64, device=current.device)[:, None]
    block = max(1, (CACHE_ELEMENTS if current.device.type == "cpu" else DEVICE_ELEMENTS) // (steps + 1))
    for j in range(0, flat.numel(), block):
        columns = slice(j, j + block)
        counts = constant_current_counts(flat[columns], t, threshold, v_init, potential=membrane)
        if membrane:
            counts, v = counts
            trace.view(steps, -1)[:, columns] = v[1:]
        torch.gt(counts[1:], counts[:-1], out=spikes.view(steps, -1)[:, columns])
    return (spikes if out is None else out.copy_(spikes)), trace


# Input encodings (chapter 6): each gives steps start+1 .. start+steps for a batch x of images in [0, 1].

def current_train(x, start, steps):
    """"current": the pixel value is the input current at every step (float, a view of x)."""
    return x.expand(steps, *x.shape)


def spike_train(x, start, steps):
    """"spikes": an IF neuron per pixel driven by the pixel: floor(x * t) evenly spaced spikes (bool)."""
    return constant_current_window(x, start, steps)[0]


MASK, MIX = 0xFFFFFFFF, 0x45D9F3B


def _hash(h):
    """A 32-bit integer hash of int64 tensors holding 32-bit values (xor-shift-multiply, two rounds)."""
    for _ in range(2):
        h = ((h >> 16) ^ h) * MIX & MASK
    return (h >> 16) ^ h


def poisson_train(x, start, steps, seed=0, first_image=0):
    """"poisson": each step a spike with probability x (bool). The draw is a hash of (seed, image, step,
    pixel), where image counts from `first_image`: an image's train depends only on the seed, its index
    in the batch and the step, so pieces, windows and devices never change a spike."""
    device, (batch, pixels) = x.device, (len(x), x[0].numel())
    step = _hash(_hash(torch.tensor(int(seed) & MASK)) ^ torch.arange(start, start + steps))
    image = _hash(step[:, None] ^ torch.arange(first_image, first_image + batch)).to(device)
    draw = _hash(image[:, :, None] ^ _hash(torch.arange(pixels, device=device)))
    return (draw.double() * 2.0**-32 < x.double().reshape(1, batch, pixels)).view(steps, *x.shape)


def encode(x, timesteps, encoding, seed=0, start=0, first_image=0):
    """The input (timesteps, B, ...) of steps start+1 .. start+timesteps under `encoding` (chapter 6):
    float currents for "current", bool spikes for "spikes" and "poisson" (seeded by `seed`)."""
    if check_encoding(encoding) == "current":
        return current_train(x, start, timesteps)
    if encoding == "spikes":
        return spike_train(x, start, timesteps)
    return poisson_train(x, start, timesteps, seed, first_image)
