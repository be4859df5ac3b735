"""Every figure has a title and labelled axes, and draws what it is given."""
import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

from cqlearn import plots  # noqa: E402


def labelled(ax):
    return ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_figures_are_labelled_and_show_their_data():
    spikes = torch.zeros(10, 3, 4, dtype=torch.bool)
    spikes[2, 1, 3] = spikes[5, 0, 0] = True
    ax = plots.raster(spikes)
    assert labelled(ax) and len(ax.collections[0].get_segments()) == 2
    ax = plots.traces(torch.rand(10, 12), spikes.reshape(10, 12), [0, 7], threshold=1.0)
    assert labelled(ax) and "θ" in ax.get_legend().get_texts()[-1].get_text()
    assert labelled(plots.staircase(4)) and "levels = 4" in plots.staircase(4).get_title()
    assert labelled(plots.activation_vs_rate(torch.rand(50), torch.rand(50)))
    ax = plots.accuracy_vs_timesteps({"spikes": {16: 0.9, 32: 0.95}}, reference=0.96)
    assert labelled(ax) and len(ax.lines) == 2


def slow_raster_neurons(spikes, max_neurons):
    """The picking rule spelled out: rounds over the spike counts present, one neuron each."""
    counts = spikes.reshape(spikes.shape[0], -1).sum(0).tolist()
    groups = {}
    for i, c in enumerate(counts):
        if c > 0:
            groups.setdefault(c, []).append(i)
    picked = []
    for round_ in range(max(map(len, groups.values()), default=0)):
        for c in sorted(groups, reverse=True):
            if round_ < len(groups[c]) and len(picked) < max_neurons:
                picked.append(groups[c][round_])
    return sorted(picked, key=lambda i: (-counts[i], i))


def test_raster_neurons_spread_over_the_rates():
    generator = torch.Generator().manual_seed(0)
    # 300 neurons: 200 saturated (fire every step), the rest at every rate from 1 to T - 1, some silent.
    T = 16
    rates = torch.cat([torch.ones(200), torch.rand(100, generator=generator)])
    spikes = torch.rand(T, 300, generator=generator) < rates
    spikes[:, 250:260] = False
    for max_neurons in (1, 7, 40, 64, 89, 290, 400):
        shown = plots.raster_neurons(spikes, max_neurons).tolist()
        assert shown == slow_raster_neurons(spikes, max_neurons)
    counts = spikes.sum(0)
    shown = plots.raster_neurons(spikes, 40)
    assert len(shown) == 40 and len(set(shown.tolist())) == 40 and (counts[shown] > 0).all()
    # every spike count present appears; saturated neurons do not crowd out the rest
    assert set(counts[shown].tolist()) == set(counts[counts > 0].tolist())
    assert (counts[shown] == T).sum() <= 40 // len(set(counts[counts > 0].tolist())) + 1
    # few firing neurons: all of them, busiest first; none firing: none
    few = torch.zeros(T, 5, dtype=torch.bool)
    few[:3, 1] = few[:9, 4] = True
    assert plots.raster_neurons(few).tolist() == [4, 1]
    assert plots.raster_neurons(torch.zeros(T, 2, 3, dtype=torch.bool)).tolist() == []


def test_raster_of_saturated_layer_is_not_vertical_stripes():
    spikes = torch.zeros(32, 500, dtype=torch.bool)
    spikes[:, :300] = True  # saturated
    for i in range(300, 500):
        spikes[:: 1 + i % 31, i] = True  # every period from 1 to 31
    ax = plots.raster(spikes, max_neurons=64)
    segments = ax.collections[0].get_segments()
    assert all(abs(s[1, 1] - s[0, 1]) < 1 for s in segments)  # a mark is shorter than a row
    per_row = torch.bincount(torch.tensor([round(s[:, 1].mean()) for s in segments]))
    assert len(per_row) == 64 and (per_row < 32).sum() > 50 and "64 of 500" in ax.get_ylabel()


def test_raster_points_are_every_spike_in_time_order():
    spikes = torch.zeros(4, 2, 3, dtype=torch.bool)
    spikes[0, 1, 2] = spikes[3, 0, 0] = spikes[0, 0, 1] = spikes[2, 1, 0] = True
    steps, neurons = plots.raster_points(spikes)
    assert steps.tolist() == [1, 1, 3, 4] and neurons.tolist() == [1, 5, 3, 0]
    steps, neurons = plots.raster_points(torch.zeros(5, 7, dtype=torch.bool))
    assert steps.numel() == neurons.numel() == 0
