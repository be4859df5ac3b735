"""Naive conversion of a plain ReLU CNN by data-based normalisation (cqlearn.baseline, chapter 7)."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn import baseline


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread is fastest, and shared CI runners do not thrash
    yield
    torch.set_num_threads(threads)


def tiny(seed=0):
    """Linear -> ReLU -> Linear -> ReLU -> Linear readout, with positive first-layer biases so that
    most neurons are active."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        net[1].bias.uniform_(0.1, 0.5)
        net[3].bias.uniform_(0.1, 0.5)
    return net.eval()


def activations(net, x):
    with torch.no_grad():
        a1 = net[2](net[1](net[0](x)))
        a2 = net[4](net[3](a1))
        return [a1, a2], net(x)


@pytest.fixture
def x():
    return torch.rand(40, 1, 2, 3, generator=torch.Generator().manual_seed(1))


def test_scales_are_the_data_max_and_percentiles_lie_below(x):
    net = tiny()
    acts, _ = activations(net, x)
    assert baseline.scales(net, x) == pytest.approx([a.max().item() for a in acts], rel=1e-6)
    robust = baseline.scales(net, x, percentile=90)
    assert all(r < m for r, m in zip(robust, baseline.scales(net, x)))
    # a dataset gives the same scales as the batch
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    assert baseline.scales(net, dataset) == pytest.approx(baseline.scales(net, x), rel=1e-6)


def test_thresholds_and_readout_carry_the_scales(x):
    net = tiny()
    lam = baseline.scales(net, x)
    snn = baseline.normalise(net, x, timesteps=8)
    assert snn.scales == lam
    assert [layer.threshold for layer in snn.layers] == pytest.approx([lam[0], lam[1] / lam[0]])
    assert torch.allclose(snn.readout[-1].weight, net[5].weight * lam[1])
    assert torch.allclose(snn.layers[1].synapse[0].bias, net[3].bias / lam[0])
    # the model itself is untouched
    assert torch.equal(net[3].bias, tiny()[3].bias)


def test_rates_approach_relu_activations_over_the_layer_max(x):
    """First layer (constant current): |rate - a / lambda| <= 1 / T exactly. Deeper: the error shrinks
    as T grows, and the readout approaches the CNN's logits."""
    net = tiny()
    acts, logits = activations(net, x)
    lam = baseline.scales(net, x)
    errors, out_errors = [], []
    for T in (16, 256, 2048):
        rec = baseline.normalise(net, x, timesteps=T, encoding="current").run(x)
        rates = [n / T for n in rec.counts]
        assert (rates[0] - acts[0] / lam[0]).abs().max() <= 1 / T + 1e-6
        errors.append((rates[1] - acts[1] / lam[1]).abs().max().item())
        out_errors.append((rec.output - logits).abs().max().item())
    assert errors[0] > errors[-1] and errors[-1] < 0.01
    assert out_errors[-1] < 0.02 and out_errors[-1] < out_errors[0]


def test_percentile_saturates_the_largest_activations(x):
    net = tiny()
    acts, _ = activations(net, x)
    T = 64
    snn = baseline.normalise(net, x, timesteps=T, encoding="current", percentile=50)
    rec = snn.run(x)
    assert rec.counts[0].max().item() == T  # neurons above the 50th percentile fire every step
    assert (rec.counts[0] == T).sum() >= (acts[0] >= snn.scales[0]).sum()


def test_round_mode_starts_at_half_threshold(x):
    snn = baseline.normalise(tiny(), x, timesteps=4, mode="round")
    assert all(layer.mode == "round" and layer.v_init == layer.threshold / 2 for layer in snn.layers)


def test_digits_baseline_approaches_the_plain_cnn():
    plain = cq.load(cq.shipped("digits_cnn_plain.pt"))
    train, test = cq.data.load("digits", "train", limit=300), cq.data.load("digits", "test", limit=60)
    snn = baseline.normalise(plain, train, timesteps=64, encoding="current")
    relus = sum(isinstance(m, nn.ReLU) for m in plain.modules())
    assert len(snn.layers) == len(snn.scales) == relus and all(s > 0 for s in snn.scales)
    assert cq.evaluate(snn, test) >= cq.evaluate(plain, test) - 0.05


def test_clear_errors():
    x = torch.rand(4, 1, 2, 3)
    with pytest.raises(ValueError, match="percentile"):
        baseline.scales(tiny(), x, percentile=0)
    with pytest.raises(ValueError, match="CQ"):
        baseline.normalise(cq.to_cq(tiny(), 4), x)
    with pytest.raises(ValueError, match="MaxPool2d"):
        baseline.normalise(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(1), nn.Flatten(),
                                         nn.Linear(12, 2)), x)
    with pytest.raises(ValueError, match="no ReLU"):
        baseline.normalise(nn.Sequential(nn.Flatten(), nn.Linear(6, 2)), x)
    with pytest.raises(ValueError, match="Linear readout"):
        baseline.normalise(nn.Sequential(nn.Flatten(), nn.Linear(6, 2), nn.ReLU()), x)
    with pytest.raises(TypeError, match="Sequential"):
        baseline.normalise(nn.Linear(6, 2), x)
    with pytest.raises(ValueError, match="timesteps"):
        baseline.normalise(tiny(), x, timesteps=0)


def test_percentile_is_the_nearest_rank_of_all_activations(x):
    net = tiny()
    acts, _ = activations(net, x)
    values = acts[0].flatten().sort().values
    assert baseline.scales(net, x, percentile=50)[0] == pytest.approx(values[len(values) // 2 - 1].item())


def test_only_relu_networks():
    with pytest.raises(ValueError, match="Clamp"):
        baseline.normalise(cq.to_clamp(tiny()), torch.rand(4, 1, 2, 3))
