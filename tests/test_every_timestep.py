"""Every T from one simulation, as the explorers of chapters 5, 7 and 10 use it: each row of
analysis.every_timestep / agreement_every_timestep and energy.count_every_timestep equals what the
network converted at that T gives."""
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
def test_every_timestep_equals_the_run_at_each_T(cq16, x, encoding, neuron):
    checked = []
    for step in analysis.every_timestep(cq16, cq.convert(cq16, 18, encoding, neuron), x, seed=3):
        T = step["timesteps"]
        if T not in (1, 7, 16, 18):
            continue
        snn = cq.convert(cq16, T, encoding, neuron)
        rec = snn.run(x, seed=3)
        assert all(torch.equal(a, b) for a, b in zip(rec.counts, step["counts"]))
        assert torch.allclose(rec.output, step["output"], atol=1e-5)
        rates = analysis.input_rates(snn, x, seed=3)
        assert all(torch.equal(a, b) for a, b in zip(analysis.cq_activations(cq16, rates), step["activations"]))
        assert torch.equal(cq16.eval()(rates).argmax(1), step["cnn_output"].argmax(1))
        checked.append(T)
    assert checked == [1, 7, 16, 18]


def test_agreement_every_timestep_equals_layer_agreement(cq16, x):
    sweep = analysis.agreement_every_timestep(cq16, cq.convert(cq16, 20, "spikes"), x)
    assert sweep["exact"].shape == (20, 4) and sweep["snn"].shape == (20, len(x))
    for T in (4, 16, 20):
        rows = analysis.layer_agreement(cq16, cq.convert(cq16, T, "spikes"), x)
        assert torch.allclose(sweep["exact"][T - 1], torch.tensor([r["exact"] for r in rows], dtype=torch.float64))
        assert torch.allclose(sweep["mae_spikes"][T - 1],
                              torch.tensor([r["mae_spikes"] for r in rows], dtype=torch.float64), atol=1e-6)
        assert torch.equal(sweep["snn"][T - 1], cq.convert(cq16, T, "spikes")(x).argmax(1))


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
