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
    assert labelled(ax) and len(ax.collections[0].get_offsets()) == 2
    ax = plots.traces(torch.rand(10, 12), spikes.reshape(10, 12), [0, 7], threshold=1.0)
    assert labelled(ax) and "θ" in ax.get_legend().get_texts()[-1].get_text()
    assert labelled(plots.staircase(4)) and "levels = 4" in plots.staircase(4).get_title()
    assert labelled(plots.activation_vs_rate(torch.rand(50), torch.rand(50)))
    ax = plots.accuracy_vs_timesteps({"spikes": {16: 0.9, 32: 0.95}}, reference=0.96)
    assert labelled(ax) and len(ax.lines) == 2
