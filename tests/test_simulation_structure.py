"""How the simulation spends work and memory, checked by counting, never by the clock.

The cost of T steps should be T times the synapses' arithmetic (the dense limit) plus elementwise IF
updates that are vectorised over neurons; nothing per step is kept unless asked for; the time window
(`chunk`) changes the speed only, never a spike. See benchmarks/ for the timings.
"""
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import cqlearn as cq
from cqlearn import memory
from cqlearn.memory import HEADROOM


def small_net(mode="floor"):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), cq.CQ(4, mode),
        nn.AvgPool2d(2), cq.CQ(4, mode),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), cq.CQ(4, mode),
        nn.Flatten(), nn.Linear(96, 5)).double()
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 1, 8, 8, dtype=torch.float64))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data *= 2
    return model.eval()


class Ops(TorchDispatchMode):
    """Counts aten calls and remembers the largest tensor any of them returned."""

    def __init__(self):
        super().__init__()
        self.calls, self.largest = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls += 1
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def synapse_images(snn, x, **run):
    """Images that pass through each spiking layer's synapse during snn.run(x)."""
    seen = [0] * len(snn.layers)
    hooks = [layer.synapse.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(i, seen[i] + len(a[0])))
             for i, layer in enumerate(snn.layers)]
    try:
        snn.run(x, **run)
    finally:
        for h in hooks:
            h.remove()
    return seen


def flops(snn, x):
    with FlopCounterMode(display=False) as counter:
        snn.run(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("encoding", ["spikes", "poisson", "current"])
def test_synapse_work_is_T_frames_per_layer_and_the_constant_current_is_computed_once(encoding):
    model, x = small_net(), torch.rand(3, 1, 8, 8, dtype=torch.float64)
    for T in (5, 16, 40):
        snn = cq.convert(model, T, encoding)
        seen = [n - 1 for n in synapse_images(snn, x)]  # less the shape probe: one image per synapse
        first = len(x) if encoding == "current" else T * len(x)
        assert seen == [first] + [T * len(x)] * (len(snn.layers) - 1)


@pytest.mark.parametrize("encoding", ["spikes", "current"])
def test_flops_grow_linearly_in_T_at_the_cnn_rate(encoding):
    model, x = small_net(), torch.rand(4, 1, 8, 8, dtype=torch.float64)
    f = {T: flops(cq.convert(model, T, encoding), x) for T in (8, 16, 32)}
    slope = (f[32] - f[16]) / 16
    assert f[16] - f[8] == 8 * slope  # exactly affine in T
    synapses = cq.convert(model, 8, encoding).layers
    with FlopCounterMode(display=False) as counter:  # one step: every synapse that sees spikes, once
        h = synapses[0].synapse(x)
        for layer in synapses[1:]:
            h = layer.synapse(h)
    per_step = counter.get_total_flops()
    if encoding == "current":
        with FlopCounterMode(display=False) as counter:
            synapses[0].synapse(x)
        per_step -= counter.get_total_flops()
    assert slope == per_step > 0


def test_the_if_scan_is_vectorised_over_neurons_and_images():
    """Tensor operations: the same for 1 image as for 7 (the closed forms work in cache-sized blocks of
    2**17 values, one block here), a handful per step and layer, linear in T."""
    model = small_net()
    calls = {}
    for T, batch in [(12, 1), (12, 7), (24, 7), (36, 7)]:
        snn = cq.convert(model, T, "spikes")
        snn.chunk = 4
        with Ops() as ops:
            snn.run(torch.rand(batch, 1, 8, 8, dtype=torch.float64))
        calls[T, batch] = ops.calls
    assert calls[12, 1] == calls[12, 7]
    per_12_steps = calls[24, 7] - calls[12, 7]
    assert calls[36, 7] - calls[24, 7] == per_12_steps
    assert per_12_steps <= 12 * 7 * len(snn.layers)  # a handful per step and layer


@pytest.mark.parametrize("encoding", ["spikes", "poisson", "current"])
def test_record_false_keeps_no_tensor_that_grows_with_T(encoding):
    model, x = small_net(), torch.rand(2, 1, 8, 8, dtype=torch.float64)
    largest = {}
    for T in (8, 64):
        snn = cq.convert(model, T, encoding)
        snn.chunk = 4
        with Ops() as ops:
            rec = snn.run(x)
        largest[T] = ops.largest
        assert rec.spikes is None and all(v is None for v in rec.membrane)
    assert largest[8] == largest[64]
    neurons = 4 * 8 * 8
    assert largest[64] <= (4 + 1) * len(x) * neurons  # one window of the largest layer, not T steps


def test_recordings_are_compact_and_only_what_was_asked_for():
    model, x = small_net(), torch.rand(2, 1, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 16, "spikes")
    full = snn.run(x, record=True)
    assert all(s.dtype == torch.bool for s in full.spikes)
    chosen = snn.run(x, membrane={0: [3, 70, 255], 2: (1, slice(None), 2)})
    assert chosen.spikes is None and chosen.membrane[1] is None
    assert torch.equal(chosen.membrane[0], full.membrane[0].flatten(2)[:, :, [3, 70, 255]])
    assert torch.equal(chosen.membrane[2], full.membrane[2][:, :, 1, :, 2])
    assert torch.equal(chosen.output, full.output)
    with pytest.raises(ValueError, match="layers"):
        snn.run(x, membrane={5: [0]})


@pytest.mark.parametrize("mode", ["floor", "round"])
@pytest.mark.parametrize("encoding", ["spikes", "poisson", "current"])
def test_the_time_window_changes_no_spike(encoding, mode):
    model, x = small_net(mode), torch.rand(3, 1, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 13, encoding)
    runs = []
    for chunk in (1, 3, 5, 13, None):
        snn.chunk = chunk
        runs.append(snn.run(x, record=True, seed=4))
    for other in runs[1:]:
        assert torch.equal(other.output, runs[0].output)
        assert all(torch.equal(a, b) for a, b in zip(other.spikes, runs[0].spikes))
        assert all(torch.equal(a, b) for a, b in zip(other.membrane, runs[0].membrane))
        assert all(torch.equal(a, b) for a, b in zip(other.counts, runs[0].counts))


def test_pieces_fit_the_memory_limit_and_recording_is_counted():
    model, x = small_net(), torch.rand(50, 1, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 64, "spikes")
    quiet, loud = memory.plan(snn, x).footprint, memory.plan(snn, x, record=True).footprint
    assert memory.total_bytes(loud, 50, 64) - memory.total_bytes(quiet, 50, 64) == (
        50 * 64 * (4 * 64 + 4 * 16 + 6 * 16)  # one byte per recorded spike
        + 50 * 64 * (4 * 64 + 4 * 16 + 6 * 16) * 8)  # and every potential, in float64
    for record in (False, True):
        snn.max_memory = 2**30
        footprint = memory.plan(snn, x, record).footprint
        whole = memory.recording_bytes(footprint, 50, 64)  # the Recording of all 50 images
        snn.chunk = 1
        snn.max_memory = (whole + memory.work_bytes(footprint, 20, 64, float("inf"), chunk=1)) / HEADROOM
        plan = memory.plan(snn, x, record)
        assert (plan.piece, plan.window) == (20, 1)
        snn.chunk = None  # windows shrink to fit too: at most half the room left by the Recording
        room = HEADROOM * snn.max_memory - whole
        piece, window = memory.plan(snn, x, record).piece, memory.plan(snn, x, record).window
        assert memory.work_bytes(footprint, piece, 64, room) <= room < memory.work_bytes(footprint, piece + 1, 64, room)
        assert window == memory.window(footprint, piece, 64, room)
        assert window == 1 or piece * window * footprint.step_memory() <= room / 2
        rec = snn.run(x, record=record)
        assert rec.output.shape == (50, 5) and rec.counts[0].shape == (50, 4, 8, 8)


@pytest.mark.parametrize("encoding", ["spikes", "current"])
def test_the_signed_neuron_does_the_same_synapse_work_and_a_handful_more_per_step(encoding):
    model, x = small_net(), torch.rand(3, 1, 8, 8, dtype=torch.float64)
    work = {}
    for neuron in ("if", "signed"):
        snn = cq.convert(model, 16, encoding, neuron=neuron)
        snn.chunk = 4
        with Ops() as ops:
            snn.run(x)
        work[neuron] = ops.calls, flops(snn, x), synapse_images(snn, x)
    assert work["signed"][1:] == work["if"][1:]  # the same synapse calls on the same frames
    extra = work["signed"][0] - work["if"][0]
    assert 0 < extra <= 16 * 7 * len(snn.layers)  # a handful more per step and layer
