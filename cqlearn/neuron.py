"""The integrate-and-fire neuron (chapter 3).

Each step t the neuron adds its input current to its membrane potential v; if v reaches the
threshold it fires one spike and the threshold is subtracted (reset by subtraction):

    v[t] = v[t-1] + I[t] - threshold * s[t],      s[t] = 1 if v[t-1] + I[t] >= threshold else 0

With a constant current a in [0, 1], threshold 1 and v[0] = 0 this fires exactly floor(a * t) spikes
in t steps, so the rate after T steps is the CQ activation with T levels. A potential that float
rounding leaves a hair under the threshold (TOLERANCE, shared with the CQ staircase) still fires.
"""
import torch

from .quant import TOLERANCE

ENCODINGS = ("current", "spikes", "poisson")
WINDOW_BYTES = 2**25  # float64 working memory of one window of closed-form steps
CACHE_ELEMENTS = 2**17  # float64 values per block of closed-form work (1 MB): measured best, 2**15-2**18


def check_timesteps(timesteps):
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a whole number >= 1 (the number of simulation steps T), "
                         f"got {timesteps!r}; T = levels (16) is the smallest that can be exact.")
    return timesteps


def check_encoding(encoding):
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}: 'current' feeds pixels "
                         "as constant currents, 'spikes' as evenly spaced spikes, 'poisson' as random ones.")
    return encoding


def initial_potential(threshold, mode):
    """0 for "floor" (CQ); threshold/2 for "round", which makes the count round instead of floor."""
    return threshold / 2 if mode == "round" else 0.0


def if_step(v, current, threshold):
    """One step of a population of IF neurons, in place on v. Returns the spikes (bool)."""
    v += current
    spikes = v >= threshold * (1 - TOLERANCE)
    v -= spikes.to(v.dtype) * threshold
    return spikes


def constant_current_counts(current, t, threshold=1.0, v_init=0.0):
    """Spikes fired in the first t steps under a constant current: the IF dynamics in closed form,

        N(t) = clamp(floor((v_init + t * current) / threshold), 0, t),

    computed in float64 so that long windows do not drift."""
    current = current.double()
    counts = torch.floor((v_init + t * current) / threshold + TOLERANCE)
    return counts.clamp(min=0).clamp(max=t)


def constant_current_steps(current, timesteps, threshold=1.0, v_init=0.0):
    """Yield (spikes, membrane) per step for a constant current, without accumulating rounding error."""
    before = torch.zeros_like(current, dtype=torch.float64)
    for t in range(1, timesteps + 1):
        after = constant_current_counts(current, t, threshold, v_init)
        membrane = v_init + t * current.double() - after * threshold
        yield after > before, membrane.to(current.dtype)
        before = after


def constant_current_window(current, start, steps, threshold=1.0, v_init=0.0, membrane=False, out=None):
    """Steps start+1 .. start+steps of `constant_current_steps` at once: spikes (steps, ...) and the
    membrane after reset (steps, ...) in current's dtype if asked, else None. The float64 arithmetic is
    `constant_current_counts`'s, element for element, so the spikes are the same. The spikes are bool,
    or written into `out` (any dtype, e.g. the float input of the next synapse). The work goes in blocks
    of neurons small enough to stay in cache, which makes it 2-3x faster than whole windows."""
    shape, dtype, flat = current.shape, current.dtype, current.reshape(-1)
    spikes = torch.empty((steps, *shape), dtype=torch.bool, device=current.device)
    trace = torch.empty((steps, *shape), dtype=dtype, device=current.device) if membrane else None
    t = torch.arange(start, start + steps + 1, dtype=torch.float64, device=current.device)[:, None]
    block = max(1, CACHE_ELEMENTS // (steps + 1)) if current.device.type == "cpu" else max(1, flat.numel())
    for j in range(0, flat.numel(), block):
        columns = slice(j, j + block)
        drive = t * flat[columns].double()  # v_init + t * current; adding 0 or dividing by 1 changes no bit
        if v_init != 0:
            drive += v_init
        counts = drive / threshold if threshold != 1 else (drive.clone() if membrane else drive)
        counts = torch.minimum(counts.add_(TOLERANCE).floor_().clamp_(min=0), t, out=counts)
        torch.gt(counts[1:], counts[:-1], out=spikes.view(steps, -1)[:, columns])
        if membrane:
            trace.view(steps, -1)[:, columns] = drive[1:] - counts[1:] * threshold
    return (spikes if out is None else out.copy_(spikes)), trace


def encode(x, timesteps, encoding, generator=None, start=0):
    """Input spikes (T, B, ...) as bool for the "spikes" and "poisson" encodings (chapter 6).

    "spikes": an IF neuron per pixel with the pixel as constant current: floor(x * T) evenly spaced
    spikes. "poisson": each step a spike with probability x. `start` gives steps start+1 ..
    start+timesteps of the "spikes" train; "poisson" draws the next `timesteps` steps from `generator`,
    so consecutive calls give the same train as one call (on the CPU)."""
    if encoding == "spikes":
        spikes = torch.empty((timesteps, *x.shape), dtype=torch.bool, device=x.device)
        window = max(1, WINDOW_BYTES // (8 * max(1, x.numel())))
        for t in range(0, timesteps, window):
            steps = min(window, timesteps - t)
            spikes[t:t + steps] = constant_current_window(x, start + t, steps)[0]
        return spikes
    if encoding == "poisson":
        noise = torch.rand((timesteps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        return noise < x
    raise ValueError(f"encode takes 'spikes' or 'poisson', got {encoding!r}")
