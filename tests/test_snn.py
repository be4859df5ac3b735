"""The spiking network: `run` against its definition `run_stepwise`, and both against the CQ-CNN (chapters 5 and 6)."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn import memory
from cqlearn.analysis import layer_agreement


def every_setting(test):
    """Run `test(encoding, mode, neuron)` for every encoding, CQ mode and neuron."""
    for name, values in (("encoding", ["current", "spikes", "poisson"]), ("mode", ["floor", "round"]),
                         ("neuron", ["if", "signed"])):
        test = pytest.mark.parametrize(name, values)(test)
    return test


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


@every_setting
def test_run_equals_run_stepwise_spike_for_spike(encoding, mode, neuron):
    model = random_cq_net(mode=mode)
    x = torch.rand(5, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, timesteps=23, encoding=encoding, neuron=neuron)
    snn.chunk = 5  # windows of 5 steps: 23 = 5 + 5 + 5 + 5 + 3
    rec = snn.run(x, record=True, seed=7, all_timesteps=True)
    step = snn.run_stepwise(x, record=True, seed=7, all_timesteps=True)
    assert len(rec.spikes) == len(step.spikes) == 4
    kind = torch.int8 if neuron == "signed" else torch.bool
    for fast, slow, v_fast, v_slow, n, m in zip(rec.spikes, step.spikes, rec.membrane, step.membrane, rec.counts,
                                                 step.counts):
        assert fast.dtype == slow.dtype == kind and fast.shape == slow.shape
        assert torch.equal(fast, slow)
        assert torch.allclose(v_fast, v_slow, atol=1e-9)
        assert torch.equal(n, m) and torch.equal(n, slow.sum(0).to(n.dtype))
    for fast, slow, spikes in zip(rec.fired, step.fired, step.spikes):
        assert torch.equal(fast, slow) and torch.equal(fast, (spikes != 0).sum(0).to(fast.dtype))
    assert torch.allclose(rec.output, step.output, atol=1e-9) and torch.allclose(rec.outputs, step.outputs, atol=1e-9)
    assert (rec.input_counts is None) == (step.input_counts is None) == (encoding == "current")
    assert rec.input_counts is None or torch.equal(rec.input_counts, step.input_counts)
    assert any(s.any() and not s.all() for s in rec.spikes)  # the comparison is not vacuous
    assert (neuron == "signed") == any((s < 0).any() for s in rec.spikes)  # -1 spikes, signed neurons only


def test_convert_folds_batchnorm_as_the_method_says():
    """W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta, computed here
    independently of cq.fold_batchnorm."""
    model = random_cq_net()
    snn = cq.convert(model, 8, "spikes")
    for conv, bn, layer in ((model[0], model[1], snn.layers[0]), (model[5], model[6], snn.layers[2])):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        assert torch.allclose(layer.weighted.weight, conv.weight * scale[:, None, None, None], atol=1e-12)
        assert torch.allclose(layer.weighted.bias, (conv.bias - bn.running_mean) * scale + bn.bias, atol=1e-12)
    assert snn.layers[1].weighted is None and snn.layers[3].weighted is model[10]


def test_run_stepwise_of_a_net_without_batchnorm_is_the_if_rule():
    """Two IF neurons by hand: input currents 0.6 and 0.3 every step; then one neuron summing both."""
    model = nn.Sequential(nn.Linear(1, 2), cq.CQ(4), nn.Linear(2, 1), cq.CQ(4), nn.Linear(1, 1)).double()
    with torch.no_grad():
        model[0].weight[:] = torch.tensor([[0.6], [0.3]])
        model[0].bias.zero_()
        model[2].weight[:] = torch.tensor([[1.0, -1.0]])
        model[2].bias.zero_()
    rec = cq.convert(model, 4, "current").run_stepwise(torch.ones(1, 1, dtype=torch.float64), record=True)
    # v: 0.6, 1.2 -> spike, 0.2 + 0.6 = 0.8, 1.4 -> spike   |   0.3, 0.6, 0.9, 1.2 -> spike
    assert rec.spikes[0][:, 0].tolist() == [[False, False], [True, False], [False, False], [True, True]]
    # input +1 at step 2, 0 at step 4 (+1 - 1): v = 0, 1 -> spike, 0, 0
    assert rec.spikes[1][:, 0, 0].tolist() == [False, True, False, False]


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


def one_image_at_a_time(snn, x, **run):
    """A max_memory that fits the whole batch's recording and the work of one image only."""
    plan = memory.plan(snn, x, **run)
    return (memory.recording_bytes(plan.footprint, len(x), snn.timesteps)
            + memory.work_bytes(plan.footprint, 1, snn.timesteps, float("inf"), 1)) / memory.HEADROOM + 1


@pytest.mark.parametrize("encoding", ["current", "poisson"])
def test_pieces_windows_and_batch_neighbours_change_no_spike(encoding):
    model = random_cq_net()
    x = torch.rand(9, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 12, encoding)
    joined = snn.run(x, record=True, seed=3)
    snn.max_memory, snn.chunk = one_image_at_a_time(snn, x, record=True), 1
    assert memory.plan(snn, x, record=True).piece == 1
    split = snn.run(x, record=True, seed=3)
    assert torch.equal(split.output, joined.output)
    assert all(torch.equal(a, b) for a, b in zip(split.spikes, joined.spikes))
    snn.max_memory, snn.chunk = 2**30, None
    alone = snn.run(x[:1], record=True, seed=3)  # the first image without its neighbours
    assert all(torch.equal(a, b[:, :1]) for a, b in zip(alone.spikes, joined.spikes))
    assert torch.equal(snn.run(x[:4], seed=3).counts[2], joined.counts[2][:4])
    if encoding == "poisson":
        assert torch.equal(joined.input_counts, cq.neuron.encode(x, 12, "poisson", seed=3).sum(0).double())
        assert not torch.equal(snn.run(x, seed=4).counts[0], joined.counts[0])


def test_max_memory_must_be_a_number_and_hold_the_recording():
    model, x = random_cq_net(), torch.rand(20, 2, 8, 8, dtype=torch.float64)
    for bad in (None, "1GB", 0, -5, True):
        with pytest.raises(ValueError, match="max_memory must be a number of bytes"):
            cq.SpikingNetwork(cq.convert(model, 8).layers, nn.Linear(7, 3), max_memory=bad)
        snn = cq.convert(model, 8)
        snn.max_memory = bad
        with pytest.raises(ValueError, match="max_memory must be a number of bytes"):
            snn.run(x)
    snn = cq.convert(model, 64)
    snn.max_memory = 2**20  # 1 MiB; the recording of 20 images over 64 steps is about 4 MiB
    with pytest.raises(ValueError, match=r"needs at least \d+\.\d MiB.*record less"):
        snn.run(x, record=True)
    assert snn.run(x).output.shape == (20, 3)  # without the recording it fits, in pieces


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_inputs_are_rejected_like_values_outside_0_1(bad):
    snn = cq.convert(random_cq_net(), 8, "spikes")
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    x[1, 0, :4] = bad
    for run in (snn.run, snn.run_stepwise):
        with pytest.raises(ValueError, match=r"inputs must lie in \[0, 1\].*32 NaN or infinite values"):
            run(x)


def test_an_image_without_a_batch_dimension_or_in_the_wrong_layout_is_named():
    snn = cq.convert(random_cq_net(), 8, "spikes")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got shape \(2, 8, 8\).*x\[None\]"):
        snn(torch.rand(2, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"2 channels.*got shape \(1, 8, 8, 2\)"):
        snn(torch.rand(1, 8, 8, 2, dtype=torch.float64))


@pytest.mark.parametrize("neurons, message", [
    ([3, 384], r"layer 0 has 384 neurons per image \(shape \(6, 8, 8\)\)"),
    ([-1], "layer 0 has 384 neurons"),
    ([1.5], "pick whole numbers 0..383"),
    ((6, 0, 0), r"does not index layer 0, whose neurons have shape \(6, 8, 8\)"),
    ((0, 0.5), "does not index layer 0"),
])
def test_membrane_neurons_outside_the_layer_are_named(neurons, message):
    snn = cq.convert(random_cq_net(), 8, "spikes")
    with pytest.raises(ValueError, match=message):
        snn.run(torch.rand(1, 2, 8, 8, dtype=torch.float64), membrane={0: neurons})


def test_digits_snn_agrees_with_its_cq_cnn():
    model = cq.load(cq.shipped("digits_cnn_cq16.pt"))
    test = cq.data.load("digits", "test")
    x = test.images[:100]
    snn = cq.convert(model, 16, "current")
    assert layer_agreement(model, snn, x)[0]["exact"] == 1.0
    assert (snn(x).argmax(1) == model(x).argmax(1)).float().mean() >= 0.97


@every_setting
def test_every_T_from_one_run_equals_a_run_converted_at_that_T(encoding, mode, neuron):
    model = random_cq_net(mode=mode)
    x = torch.rand(6, 2, 8, 8, dtype=torch.float64)
    rec = cq.convert(model, 20, encoding, neuron=neuron).run(x, seed=2, all_timesteps=True)
    assert rec.outputs.shape == (20, 6, 3) and torch.equal(rec.outputs[-1], rec.output)
    for t in (1, 4, 7, 16, 19):
        assert torch.equal(rec.outputs[t - 1], cq.convert(model, t, encoding, neuron=neuron).run(x, seed=2).output)
    assert not torch.allclose(rec.outputs[3], rec.outputs[-1])  # the outputs do change with t


def test_all_timesteps_in_pieces_and_without_it():
    model, x = random_cq_net(), torch.rand(7, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 10, "spikes")
    whole = snn.run(x, all_timesteps=True)
    assert snn.run(x).outputs is None
    snn.max_memory = one_image_at_a_time(snn, x, all_timesteps=True)
    assert torch.equal(snn.run(x, all_timesteps=True).outputs, whole.outputs)


def test_accuracy_against_T_from_one_simulation_equals_converting_at_each_T():
    model = cq.load(cq.shipped("digits_cnn_cq16.pt"))
    test = cq.data.load("digits", "test", limit=60)
    for neuron in ("if", "signed"):
        curve = cq.analysis.sweep_timesteps(model, test, (4, 8, 16), "spikes", neuron, progress=False)
        assert curve == {T: cq.evaluate(cq.convert(model, T, "spikes", neuron), test) for T in (4, 8, 16)}
    with pytest.raises(ValueError, match="timesteps must lie in 1..8"):
        cq.analysis.predict_every_timestep(cq.convert(model, 8), test, (4, 16))
