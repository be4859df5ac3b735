"""The spiking network against a plain per-step reference and against the CQ-CNN (chapters 5 and 6)."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn.analysis import layer_agreement
from cqlearn.neuron import encode


def reference_run(model, x, timesteps, encoding, seed=0):
    """The obvious simulation, written from the method alone: step by step, the whole network at
    every step, every IF neuron updated by v += I; spike if v >= threshold; v -= threshold."""
    layers = list(cq.fold_batchnorm(model.eval()))
    layers = [m for m in layers if not isinstance(m, (nn.Dropout, nn.Identity))]
    mode = next(m.mode for m in layers if isinstance(m, cq.CQ))
    if encoding == "poisson":
        inputs = encode(x, timesteps, "poisson", torch.Generator().manual_seed(seed))
    elif encoding == "spikes":
        v, inputs = torch.zeros_like(x), []
        for _ in range(timesteps):  # the IF encoder, threshold 1, starting from 0
            v += x
            fire = v >= 1 - 1e-4
            v -= fire.to(x.dtype)
            inputs.append(fire)
    else:
        inputs = [x] * timesteps
    potentials, spikes, membranes, total = {}, {}, {}, 0
    for t in range(timesteps):
        h = inputs[t].to(x.dtype)
        for i, layer in enumerate(layers):
            if isinstance(layer, cq.CQ):
                v = potentials.setdefault(i, torch.full_like(h, 0.5 if mode == "round" else 0.0))
                v += h
                fire = v >= 1 - 1e-4
                v -= fire.to(x.dtype)
                spikes.setdefault(i, []).append(fire)
                membranes.setdefault(i, []).append(v.clone())
                h = fire.to(x.dtype)
            else:
                h = layer(h)
        total = total + h
    order = sorted(spikes)
    return total / timesteps, [torch.stack(spikes[i]) for i in order], [torch.stack(membranes[i]) for i in order]


def random_cq_net(levels=4, mode="floor"):
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), cq.CQ(levels, mode),
        nn.AvgPool2d(2), cq.CQ(levels, mode),
        nn.Conv2d(6, 5, 3), nn.BatchNorm2d(5), cq.CQ(levels, mode), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(20, 7), cq.CQ(levels, mode), nn.Linear(7, 3)).double()
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 2, 8, 8, dtype=torch.float64))
    for m in model.modules():  # spread the currents so that neurons fire at many rates
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data *= 2.5
    return model.eval()


@pytest.mark.parametrize("mode", ["floor", "round"])
@pytest.mark.parametrize("encoding", ["current", "spikes", "poisson"])
def test_fast_simulation_equals_the_per_step_reference_spike_for_spike(encoding, mode):
    model = random_cq_net(mode=mode)
    x = torch.rand(5, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, timesteps=23, encoding=encoding)
    rec = snn.run(x, record=True, seed=7)
    output, spikes, membranes = reference_run(model, x, 23, encoding, seed=7)
    assert len(rec.spikes) == len(spikes) == 4
    for fast, slow, v_fast, v_slow, n in zip(rec.spikes, spikes, rec.membrane, membranes, rec.counts):
        assert fast.dtype == torch.bool and fast.shape == slow.shape
        assert torch.equal(fast, slow)
        assert torch.allclose(v_fast, v_slow, atol=1e-9)
        assert torch.equal(n, slow.sum(0).to(n.dtype))
    assert torch.allclose(rec.output, output, atol=1e-9)
    assert any(s.any() and not s.all() for s in rec.spikes)  # the comparison is not vacuous


def test_linear_cq_linear_with_current_encoding_and_T_equal_L_is_exact():
    torch.manual_seed(0)
    L = 16
    model = nn.Sequential(nn.Linear(20, 50), cq.CQ(L), nn.Linear(50, 10)).eval()
    nn.init.uniform_(model[0].weight, -0.5, 0.5)
    x = torch.rand(200, 20)
    snn = cq.convert(model, timesteps=L, encoding="current")
    rec = snn.run(x)
    a = model[1](model[0](x))
    assert 0 < a.mean() < 1 and (a == 1).any() and (a == 0).any()
    assert torch.equal(rec.counts[0], a * L)
    assert torch.allclose(rec.output, model(x), atol=1e-5)


def test_conv_and_average_pooling_are_exact_with_current_encoding_and_T_equal_L():
    torch.manual_seed(0)
    L = 8
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), cq.CQ(L), nn.AvgPool2d(2), cq.CQ(L),
                          nn.Flatten(), nn.Linear(64, 5)).eval()
    x = torch.rand(30, 1, 8, 8)
    snn = cq.convert(model, timesteps=L, encoding="current")
    rows = layer_agreement(model, snn, x)
    assert [r["exact"] for r in rows] == [1.0, 1.0]
    assert torch.allclose(snn(x), model(x), atol=1e-5)


def test_record_false_keeps_no_per_step_tensors_and_record_true_keeps_chosen_membranes():
    model = random_cq_net()
    snn = cq.convert(model, 10, "spikes")
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    quiet = snn.run(x)
    assert quiet.spikes is None and all(v is None for v in quiet.membrane)
    assert [c.shape for c in quiet.counts] == [(3, 6, 8, 8), (3, 6, 4, 4), (3, 5, 2, 2), (3, 7)]
    chosen = snn.run(x, record=True, membrane=[1])
    assert [v is None for v in chosen.membrane] == [True, False, True, True]
    assert chosen.spikes[2].shape == (10, 3, 5, 2, 2) and chosen.spikes[2].dtype == torch.bool
    assert torch.equal(quiet.output, chosen.output)


def test_batches_split_under_a_memory_limit_give_the_same_answer():
    model = random_cq_net()
    x = torch.rand(9, 2, 8, 8, dtype=torch.float64)
    whole = cq.convert(model, 12, "poisson").run(x, record=True)
    snn = cq.convert(model, 12, "current")
    snn.max_memory = 1  # one image at a time
    assert snn.plan(x)[0] == 1
    split, joined = snn.run(x, record=True), cq.convert(model, 12, "current").run(x, record=True)
    assert torch.equal(split.output, joined.output)
    assert all(torch.equal(a, b) for a, b in zip(split.spikes, joined.spikes))
    assert whole.output.shape == (9, 3)


def test_weight_bits_scale_the_threshold_and_approach_full_precision():
    model = random_cq_net()
    x = torch.rand(20, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 32, "current")
    eight = snn.with_weight_bits(8)
    layer, original = eight.layers[0], snn.layers[0]
    scale = original.synapse[0].weight.abs().max()
    assert layer.threshold == pytest.approx(1 / scale.item())
    assert (layer.synapse[0].weight * 128).round().equal(layer.synapse[0].weight * 128)
    assert eight.layers[1].threshold == 1.0  # pooling has no weights to scale
    full = snn.run(x).counts
    low = eight.run(x).counts
    assert (full[0] - low[0]).abs().float().mean() < 0.5
    assert snn.layers[0].threshold == 1.0  # the original is untouched


def test_inputs_outside_0_1_are_rejected_with_the_fix():
    snn = cq.convert(random_cq_net(), 8, "spikes")
    with pytest.raises(ValueError, match=r"inputs must lie in \[0, 1\].*normalisation"):
        snn(torch.randn(2, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="tensor"):
        snn([[0.5]])


def test_digits_snn_agrees_with_its_cq_cnn():
    model = cq.load(cq.shipped("digits_cnn_cq16.pt"))
    test = cq.data.load("digits", "test")
    x = test.images[:100]
    snn = cq.convert(model, 16, "current")
    assert layer_agreement(model, snn, x)[0]["exact"] == 1.0
    assert (snn(x).argmax(1) == model(x).argmax(1)).float().mean() >= 0.97
