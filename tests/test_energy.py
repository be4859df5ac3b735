"""Synaptic operations, multiply-accumulates and the energy estimate (cqlearn.energy, chapter 10)."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn import energy


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_linear(levels=4):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), cq.CQ(levels), nn.Linear(5, 3))
    with torch.no_grad():
        net[1].bias.fill_(0.3)
    return net.eval()


def test_conv_macs_are_cin_k2_cout_hout_wout():
    for conv, size in ((nn.Conv2d(3, 8, 3, padding=1), 10), (nn.Conv2d(4, 6, 5, stride=2), 13),
                       (nn.Conv2d(4, 8, 3, groups=2, padding=1), 6)):
        x = torch.zeros(2, conv.in_channels, size, size)
        h, w = conv(x).shape[-2:]
        macs, adds = energy.cnn_operations(nn.Sequential(conv), x)
        k = conv.kernel_size[0] * conv.kernel_size[1]
        assert (macs, adds) == (conv.in_channels // conv.groups * k * conv.out_channels * h * w, 0)
    assert energy.cnn_operations(nn.Sequential(nn.Flatten(), nn.Linear(12, 7)), torch.zeros(1, 3, 4)) == (84, 0)
    assert energy.cnn_operations(nn.Sequential(nn.AvgPool2d(2)), torch.zeros(1, 3, 4, 4)) == (0, 48)


def test_conv_synops_equal_counts_times_fanout_slow_reference():
    """Each input spike at (c, i, j) reaches every output channel at every position whose window
    covers (i, j): fan-out counted by brute force, padding and stride included."""
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    counts = torch.randint(0, 5, (2, 2, 7, 7)).float()
    h_out, w_out = conv(counts).shape[-2:]
    fanout = torch.zeros(2, 7, 7)
    for oi in range(h_out):
        for oj in range(w_out):
            for di in range(3):
                for dj in range(3):
                    i, j = oi * 2 - 1 + di, oj * 2 - 1 + dj
                    if 0 <= i < 7 and 0 <= j < 7:
                        fanout[:, i, j] += conv.out_channels
    expected = (counts * fanout).flatten(1).sum(1)
    assert torch.equal(energy.synaptic_operations(nn.Sequential(conv), counts), expected)
    pool = energy.synaptic_operations(nn.Sequential(nn.AvgPool2d(2)), counts[:, :, :6, :6])
    assert torch.equal(pool, counts[:, :, :6, :6].flatten(1).sum(1))  # fan-out 1


def test_count_on_a_tiny_linear_net_matches_closed_forms():
    T = 10
    x = torch.rand(7, 1, 2, 3, generator=torch.Generator().manual_seed(2))
    snn = cq.convert(tiny_linear(), T, "spikes")
    rows = energy.count(snn, x)
    rec = snn.run(x)
    input_spikes = torch.floor(x * T + 1e-4).sum() / len(x)  # "spikes" encoding: floor(x T) per pixel
    hidden = rec.counts[0].sum() / len(x)
    assert [r["layer"] for r in rows] == [0, "readout"]
    assert rows[0]["input_spikes"] == pytest.approx(input_spikes.item())
    assert rows[0]["synops"] == pytest.approx(5 * input_spikes.item())  # fan-out: 5 hidden neurons
    assert rows[0]["macs"] == 30 and rows[1]["macs"] == 15
    assert rows[0]["spikes"] == pytest.approx(hidden.item())
    assert rows[1]["synops"] == pytest.approx(3 * hidden.item())  # fan-out: 3 classes
    assert rows[0]["rate"] == pytest.approx(hidden.item() / (5 * T))
    assert rows[0]["sparsity"] == pytest.approx(1 - rows[0]["rate"])


def test_count_reads_the_input_spikes_the_simulation_used():
    x = torch.rand(9, 1, 2, 3, generator=torch.Generator().manual_seed(3))
    snn = cq.convert(tiny_linear(), 12, "poisson")
    rec = snn.run(x, seed=5)
    rows = energy.count(snn, x, seed=5)
    assert rows[0]["input_spikes"] == pytest.approx(rec.input_counts.sum().item() / len(x))
    assert rows[0]["synops"] == pytest.approx(5 * rec.input_counts.sum().item() / len(x))
    snn.max_memory = 20_000  # in pieces: the same spikes, so the same count
    assert energy.count(snn, x, seed=5) == rows


def test_signed_spikes_each_count_as_a_synaptic_event():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), cq.CQ(4), nn.Linear(8, 8), cq.CQ(4), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        model[3].weight.mul_(4)
    x = torch.rand(16, 1, 2, 3)
    snn = cq.convert(model, 16, "spikes", neuron="signed")
    rec = snn.run(x, record=True)
    events = [(s != 0).sum(0).float() for s in rec.spikes]
    assert any((s < 0).any() for s in rec.spikes) and not torch.equal(events[1], rec.counts[1])
    rows = energy.count(snn, x)
    assert rows[1]["spikes"] == pytest.approx(events[1].sum().item() / len(x))
    assert rows[2]["synops"] == pytest.approx(3 * events[1].sum().item() / len(x))  # fan-out 3, -1 included


def test_current_encoding_pays_the_first_layer_macs_once():
    x = torch.rand(3, 1, 2, 3)
    rows = energy.count(cq.convert(tiny_linear(), 16, "current"), x)
    assert rows[0]["synops"] == 0 and rows[0]["snn_macs"] == rows[0]["macs"] == 30
    assert rows[1]["synops"] > 0


def test_energy_uses_the_cited_figures():
    assert (energy.MAC_PJ, energy.ADD_PJ) == (4.6, 0.9)
    rows = [{"macs": 100, "cnn_adds": 10, "synops": 50, "snn_macs": 2}]
    e = energy.energy(rows)
    assert e["cnn"] == pytest.approx(100 * 4.6 + 10 * 0.9)
    assert e["snn"] == pytest.approx(50 * 0.9 + 2 * 4.6)
    assert e["ratio"] == pytest.approx(e["cnn"] / e["snn"])
    assert energy.energy([{"macs": 1, "cnn_adds": 0, "synops": 0, "snn_macs": 0}])["ratio"] == float("inf")


def test_synops_grow_linearly_with_T_on_digits():
    model = cq.load(cq.shipped("digits_cnn_cq16.pt"))
    x = cq.data.load("digits", "test", limit=8).images
    ops = {T: sum(r["synops"] for r in energy.count(cq.convert(model, T, "spikes"), x)) for T in (16, 32)}
    assert ops[32] == pytest.approx(2 * ops[16], rel=0.1)
    rows = energy.count(cq.convert(model, 16, "spikes"), x)
    assert all(0 <= r["sparsity"] <= 1 for r in rows[:-1]) and rows[-1]["layer"] == "readout"


def test_count_names_every_layer_of_a_small_cnn():
    model = cq.models.build([4, "P", 8, "P"], (1, 8, 8), 10, activation="cq").eval()
    x = torch.rand(3, 1, 8, 8)
    rows = energy.count(cq.convert(model, 8, "spikes"), x)
    assert [r["name"] for r in rows] == ["Conv2d 1->4", "AvgPool2d 4", "Conv2d 4->8", "AvgPool2d 4", "Linear 32->10"]
    assert [r["macs"] for r in rows] == [1 * 9 * 4 * 64, 0, 4 * 9 * 8 * 16, 0, 32 * 10]
    assert [r["cnn_adds"] for r in rows] == [0, 4 * 4 * 16, 0, 4 * 8 * 4, 0]
    assert rows[1]["synops"] == pytest.approx(rows[0]["spikes"])  # a pooling neuron's spike reaches 1 neuron


def test_unsupported_synapse_is_a_clear_error():
    with pytest.raises(ValueError, match="exactly one"):
        energy.synaptic_operations(nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 1, 1)), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="exactly one"):
        energy.cnn_operations(nn.Sequential(nn.MaxPool2d(2)), torch.ones(1, 1, 4, 4))


def test_cnn_costs_list_shapes_and_macs_without_simulating():
    model = cq.models.vgg_small(activation="cq")
    rows = energy.cnn_costs(cq.convert(model, 4), (3, 32, 32))
    assert rows[0] == {"layer": 0, "name": "Conv2d 3->32", "shape": (32, 32, 32), "neurons": 32 * 32 * 32,
                       "macs": 3 * 9 * 32 * 32 * 32, "cnn_adds": 0}
    assert rows[2]["name"] == "AvgPool2d 4" and rows[2]["cnn_adds"] == 4 * 32 * 16 * 16
    assert rows[-1]["layer"] == "readout" and rows[-1]["macs"] == 256 * 10
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len([r for r in rows if r["name"].startswith("Conv2d")]) == len(convs) == 7
