"""Every T from one simulation, as the explorers of chapters 5, 7 and 10 use it: each entry of
analysis.spike_history (compared by agreement_at) and each row of energy.count_every_timestep equals what
the network converted at that T gives."""
import pytest
import torch

import cqlearn as cq
from cqlearn import analysis, energy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def x():
    return cq.data.load("digits", "test", limit=10).images


@pytest.mark.parametrize("encoding", ["current", "spikes", "poisson"])
@pytest.mark.parametrize("neuron", ["if", "signed"])
def test_spike_history_equals_the_run_at_each_T(cq16, x, encoding, neuron):
    history = analysis.spike_history(cq.convert(cq16, 18, encoding, neuron), x, seed=3)
    assert sorted(history) == list(range(1, 19))
    for T in (1, 7, 16, 18):
        step, snn = history[T], cq.convert(cq16, T, encoding, neuron)
        rec = snn.run(x, seed=3)
        assert step["timesteps"] == T and all(c.dtype == torch.int8 for c in step["counts"])
        assert all(torch.equal(a, b.to(a.dtype)) for a, b in zip(rec.counts, step["counts"]))
        assert torch.allclose(rec.output, step["output"], atol=1e-5)
        assert torch.equal(analysis.input_rates(snn, x, seed=3), step["rates"])


@pytest.mark.parametrize("levels", [16, 5])
def test_agreement_at_equals_layer_agreement_for_any_levels(cq16, x, levels):
    history = analysis.spike_history(cq.convert(cq16, 20, "spikes"), x)  # the SNN of L = 16 serves every L
    model = cq.to_cq(cq16, levels)
    for T in (4, 16, 20):
        got, snn = analysis.agreement_at(model, history[T]), cq.convert(model, T, "spikes")
        rows = analysis.layer_agreement(model, snn, x)
        assert torch.allclose(got["exact"], torch.tensor([r["exact"] for r in rows], dtype=torch.float64))
        assert torch.allclose(got["mae_spikes"], torch.tensor([r["mae_spikes"] for r in rows], dtype=torch.float64),
                              atol=1e-6)
        assert torch.equal(got["snn"], snn(x).argmax(1))
        assert torch.equal(got["cnn"], model.eval()(analysis.input_rates(snn, x)).argmax(1))


@pytest.mark.parametrize("encoding", ["current", "spikes"])
def test_energy_count_every_timestep_equals_count(cq16, x, encoding):
    every = energy.count_every_timestep(cq.convert(cq16, 12, encoding), x)
    assert len(every) == 12
    for T in (1, 5, 12):
        for want, got in zip(energy.count(cq.convert(cq16, T, encoding), x), every[T - 1]):
            assert set(want) == set(got)
            for key, value in want.items():
                assert got[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-6)), (T, key)


def test_fan_out_counts_the_connections_of_each_input():
    conv = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1))
    fan = energy.fan_out(conv, (2, 5, 5))
    assert fan.shape == (2, 5, 5)
    assert fan[0, 2, 2] == 3 * 9 and fan[1, 0, 0] == 3 * 4 and fan[0, 0, 2] == 3 * 6  # centre, corner, edge
    pool = torch.nn.Sequential(torch.nn.AvgPool2d(2))
    assert torch.equal(energy.fan_out(pool, (1, 4, 4)), torch.ones(1, 4, 4))


def test_activations_inputs_outputs_and_batches(plain, cq16, x):
    pre = analysis.activations(plain, x, "input")
    post = analysis.activations(plain, x, "output")
    assert len(pre) == len(post) == sum(isinstance(m, torch.nn.ReLU) for m in plain.modules())
    for a, b in zip(pre, post):
        assert torch.equal(b, a.clamp(min=0))
    dataset = cq.data.load("digits", "test", limit=10)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(analysis.activations(plain, dataset, "input", batch_size=3), pre))
    assert all(torch.equal(a, b) for a, b in zip(analysis.activations(cq16, x, "output", (cq.CQ,)),
                                                 analysis.cq_activations(cq16, x)))
    with pytest.raises(ValueError, match="where"):
        analysis.activations(plain, x, "middle")


def test_spike_history_keeps_only_the_asked_timesteps(cq16, x):
    snn = cq.convert(cq16, 9, "spikes")
    every, some = analysis.spike_history(snn, x), analysis.spike_history(snn, x, timesteps=[7, 3])
    assert sorted(some) == [3, 7]
    for T in some:
        assert all(torch.equal(a, b) for a, b in zip(some[T]["counts"], every[T]["counts"]))
        assert torch.equal(some[T]["rates"], every[T]["rates"]) and torch.equal(some[T]["output"], every[T]["output"])
    with pytest.raises(ValueError, match="1..9"):
        analysis.spike_history(snn, x, timesteps=[10])
    with pytest.raises(ValueError, match="flush"):  # flush steps follow step T: no run to t < T inside it
        analysis.spike_history(cq.convert(cq16, 4, "current", "signed", flush=2), x)


def test_spike_history_counts_past_the_int8_range(cq16, x):
    assert [analysis.count_dtype(T) for T in (1, 127, 128, 32767, 32768)] == [torch.int8] * 2 + [torch.int16] * 2 + [
        torch.int32]
    snn = cq.convert(cq16, 130, "current")
    step = analysis.spike_history(snn, x[:2], timesteps=[130])[130]
    assert all(c.dtype == torch.int16 for c in step["counts"]) and max(c.max() for c in step["counts"]) > 127
    assert all(torch.equal(a, b.to(a.dtype)) for a, b in zip(snn.run(x[:2]).counts, step["counts"]))


def test_running_sum_is_the_cumulative_sum_and_leaves_its_input():
    steps = torch.randint(-1, 2, (9, 3, 4), dtype=torch.int8)
    before = steps.clone()
    total = analysis.running_sum(steps, torch.int8)
    assert torch.equal(total, steps.cumsum(0).to(torch.int8)) and torch.equal(steps, before)
    assert torch.equal(analysis.running_sum(steps > 0, torch.float32), (steps > 0).float().cumsum(0))
