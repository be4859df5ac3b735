"""The widgets of chapters 6-10, without a browser: update functions against closed forms and the
library, explorers that build and redraw, and the matplotlib path of static_mode()."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import cqlearn as cq
from cqlearn.widgets import bits, energy, raster, timesteps

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def few():
    return cq.data.load("digits", "test", limit=24)


# Chapter 6: rasters and membranes -------------------------------------------------------------------

def test_raster_data_matches_the_recording(cq16, few):
    d = raster.raster_figure_data(cq16, few, image=3, layer=1, timesteps=20, encoding="spikes")
    rec = cq.convert(cq16, 20, "spikes").run(few.images[3:4], record=True)
    assert d["spikes"] == int(rec.counts[1].sum())
    assert d["neurons"] == rec.counts[1][0].numel() and d["shown"] <= raster.MAX_NEURONS
    assert len(d["raster_t"]) == len(d["raster_n"]) and d["raster_t"].min() >= 1 and d["raster_t"].max() <= 20
    assert d["prediction"] == int(rec.output.argmax()) and d["label"] == int(few.labels[3])
    v = rec.membrane[1][:, 0].reshape(20, -1)
    s = rec.spikes[1][:, 0].reshape(20, -1)
    for i, trace in d["traces"].items():
        assert np.allclose(trace, v[:, i].numpy())
        assert np.array_equal(d["trace_spikes"][i], np.nonzero(s[:, i].numpy())[0] + 1)
    assert len(set(d["traces"])) == 3 and "layer 1, T = 20, spikes" in d["title"]
    with pytest.raises(ValueError, match="layer"):
        raster.raster_figure_data(cq16, few, layer=len(cq.convert(cq16, 1).layers))


def test_raster_shows_the_range_of_rates():
    spikes = torch.zeros(10, 400, dtype=torch.bool)
    for n in range(400):
        spikes[: n % 11, n] = True  # counts 0..10
    assert raster.MAX_NEURONS <= 80, "a row per neuron must stay a few pixels tall"
    d_counts = spikes.sum(0)[cq.plots.raster_neurons(spikes, max_neurons=50)]
    assert len(d_counts) == 50 and set(d_counts.tolist()) == set(range(1, 11))  # every rate, 5 rows each
    assert torch.all(d_counts[:-1] >= d_counts[1:])  # most active first
    chosen = raster.chosen_neurons(spikes.sum(0), timesteps=12)  # counts nearest 9, 6 and 2.4
    assert spikes.sum(0)[chosen].tolist() == [9, 6, 2] and len(set(chosen)) == 3


def test_raster_data_spreads_over_rates_on_a_real_layer(cq16, few):
    d = raster.raster_figure_data(cq16, few, image=0, layer=0, timesteps=32, encoding="spikes")
    per_row = np.bincount(d["raster_n"], minlength=d["shown"])
    assert d["shown"] == raster.MAX_NEURONS and np.all(per_row > 0)
    assert (per_row == 32).sum() < d["shown"] / 4, "not a picture of neurons that fire every step"
    assert len(np.unique(per_row)) > 20


def test_encodings_data_follow_their_definitions(few):
    x = few.images[0]
    T = 24
    d = raster.encodings_data(x, T)
    assert np.allclose(d["current"], np.broadcast_to(x.flatten().numpy(), (T, x.numel())))
    counts = torch.floor(x.flatten().double() * T + 1e-4)
    assert np.array_equal(d["spikes"].sum(0), counts.numpy())
    assert set(np.unique(d["poisson"])) <= {0.0, 1.0}
    assert abs(d["poisson"].sum() - counts.sum().item()) < 0.25 * counts.sum().item()
    assert isinstance(raster.encodings_figure(x, 8), Figure)


# Chapter 7: time steps and accuracy -----------------------------------------------------------------

def test_timesteps_data_is_exact_in_the_first_layer_at_T_equal_L(cq16, few):
    d = timesteps.timesteps_figure_data(cq16, few, timesteps=16, levels=16, encoding="current", images=16)
    assert d["exact"][0] == 1.0 and d["error_levels"][0] == 0.0
    assert len(d["layer"]) == len(cq.convert(cq16, 1).layers) and np.all((0 <= d["exact"]) & (d["exact"] <= 1))
    assert 0 <= d["agreement"] <= 1 and "L = 16, T = 16" in d["title"]
    rows = cq.analysis.layer_agreement(cq16, cq.convert(cq16, 16, "current"), few.images[:16])
    assert np.allclose(d["exact"], [r["exact"] for r in rows])
    snn_pred = cq.convert(cq16, 16, "current")(few.images[:16]).argmax(1)
    assert d["snn"] == (snn_pred == few.labels[:16]).float().mean().item()
    coarse = timesteps.timesteps_figure_data(cq16, few, timesteps=4, levels=16, encoding="current", images=16)
    assert coarse["error_levels"][0] > 0  # 4 steps cannot count 16 levels


def test_timing_toy_closed_forms():
    for T in (8, 16, 33):
        first = timesteps.timing_toy(T, "positive first", weight=0.5)
        # T//2 excitatory spikes of 0.5 each: one spike every second step, then inhibition only
        assert first["count"] == (T // 2) // 2 and first["expected"] == 0
        assert first["positive"].sum() == first["negative"].sum() == T // 2
        for order in ("interleaved", "negative first"):
            assert timesteps.timing_toy(T, order, weight=0.5)["count"] == 0
    d = timesteps.timing_toy(16, "positive first", weight=1.0)
    assert d["count"] == 8 and d["membrane"][-1] == -8
    with pytest.raises(ValueError, match="order"):
        timesteps.timing_toy(8, "sideways")
    assert isinstance(timesteps.timing_toy_figure(8), Figure)


# Chapter 8: low-precision weights -------------------------------------------------------------------

def test_bits_data_rounds_to_n_bit_steps(cq16, few):
    snn = cq.convert(cq16, 8, "spikes")
    weighted = bits.weighted_layers(snn)
    for n in (2, 4, 8):
        d = bits.bits_figure_data(snn, few, bits=n, layer=weighted[1], images=16)
        assert len(d["values"]) <= 2 ** n and d["counts"].sum() == len(d["weights"])
        assert np.all(np.abs(d["quantized"] - d["weights"]) <= d["step"] / 2 + 1e-6 + (d["weights"] > 1 - d["step"]))
        assert np.allclose(d["values"] / d["step"], np.round(d["values"] / d["step"]))
    fine = bits.bits_figure_data(snn, few, bits=12, layer=0, images=16)
    assert fine["agreement"] >= 0.9 and fine["layer_error"].max() < 0.5
    coarse = bits.bits_figure_data(snn, few, bits=2, layer=0, images=16)
    assert coarse["layer_error"].mean() > fine["layer_error"].mean()
    assert "the readout" in bits.bits_figure_data(snn, few, 4, layer=len(snn.layers), images=4)["title"]
    pools = [i for i, layer in enumerate(snn.layers) if isinstance(layer.synapse[0], torch.nn.AvgPool2d)]
    with pytest.raises(ValueError, match="no weights"):
        bits.bits_figure_data(snn, few, bits=4, layer=pools[0])
    assert weighted == [i for i in range(len(snn.layers)) if i not in pools] + [len(snn.layers)]


def test_bits_data_with_a_precomputed_reference_is_the_same(cq16, few):
    snn = cq.convert(cq16, 8, "spikes")
    reference = bits.full_precision_run(snn, few, images=16)
    fresh, cached = (bits.bits_figure_data(snn, few, bits=4, images=16, reference=r) for r in (None, reference))
    for key in ("layer_error", "accuracy", "reference", "agreement", "title"):
        assert np.array_equal(fresh[key], cached[key]), key
    with pytest.raises(ValueError, match="reference holds 16 images"):
        bits.bits_figure_data(snn, few, bits=4, images=8, reference=reference)


# Chapter 10: energy ---------------------------------------------------------------------------------

def test_energy_data_matches_the_energy_module(cq16, few):
    d = energy.energy_figure_data(cq16, few, timesteps=16, images=8)
    rows = cq.energy.count(cq.convert(cq16, 16, "spikes"), few.images[:8])
    assert np.allclose(d["synops"], [r["synops"] for r in rows])
    assert np.allclose(d["macs"], [r["macs"] + r["cnn_adds"] for r in rows])
    assert d["cnn_uj"] == pytest.approx(cq.energy.energy(rows)["cnn"] / 1e6)
    assert len(d["sparsity"]) == len(rows) - 1 and np.all((0 < d["sparsity"]) & (d["sparsity"] < 1))
    double = energy.energy_figure_data(cq16, few, timesteps=32, images=8)
    assert double["snn_uj"] > 1.5 * d["snn_uj"] and double["cnn_uj"] == d["cnn_uj"]
    assert ("less" in d["title"]) == (d["ratio"] >= 1)


# Explorers: live (plotly FigureWidget) and static (matplotlib) -------------------------------------

def test_explorers_build_from_their_starting_values_and_redraw(live, cq16, few):
    snn = cq.convert(cq16, 8, "spikes")
    cases = [
        (raster.raster_explorer(cq16, few, image=2, layer=1, timesteps=12), "image", 5, "image 2"),
        (timesteps.timesteps_explorer(cq16, few, timesteps=12, levels=16, images=8), "timesteps", 16, "T = 12"),
        (bits.bits_explorer(snn, few, bits=5, images=8), "bits", 3, "5-bit"),
        (energy.energy_explorer(cq16, few, timesteps=12, images=4), "timesteps", 24, "T = 12"),
    ]
    for box, name, value, first in cases:
        title = box.figure.layout.title.text
        assert first in title
        box.controls[name].value = value
        assert box.figure.layout.title.text != title


def by_meta(fig):
    return {t.meta: t for t in fig.data}


def test_raster_explorer_plots_the_data_of_its_controls(live, cq16, few):
    box = raster.raster_explorer(cq16, few, image=2, layer=1, timesteps=12, encoding="spikes")
    for name, value in (("image", 5), ("layer", 2), ("timesteps", 20), ("encoding", "current")):
        box.controls[name].value = value
        values = {k: c.value for k, c in box.controls.items()}
        d = raster.raster_figure_data(cq16, few, **values)
        t = by_meta(box.figure)
        assert np.array_equal(t["image"].z, d["picture"])
        assert np.array_equal(t["spikes"].x, d["raster_t"]) and np.array_equal(t["spikes"].y, d["raster_n"])
        # a marker is shorter than a row, so rows stay apart
        assert t["spikes"].marker.size + 1 <= 0.8 * raster.RASTER_PX / max(d["shown"], 1)
        for k, (i, v) in enumerate(d["traces"].items()):
            line = t[f"neuron {k}"]
            assert line.visible and np.allclose(line.y, v) and line.name.startswith(f"neuron {i}:")
        assert t["threshold"].name == "threshold θ" and list(t["threshold"].y) == [d["threshold"]] * 2
        assert list(box.figure.layout.xaxis2.range) == list(box.figure.layout.xaxis3.range) == [0.5, values["timesteps"] + 0.5]
        assert box.figure.layout.title.text == d["title"]
    layout = box.figure.layout
    assert layout.yaxis.scaleanchor == "x", "the digit keeps square pixels"
    # the panels' y-axis titles need room: gaps between the panels' domains
    assert layout.xaxis2.domain[0] - layout.xaxis.domain[1] >= 0.08
    assert layout.xaxis3.domain[0] - layout.xaxis2.domain[1] >= 0.08


def test_timesteps_bits_energy_explorers_plot_the_data_of_their_controls(live, cq16, few):
    box = timesteps.timesteps_explorer(cq16, few, timesteps=12, levels=16, images=8)
    box.controls["levels"].value = 8
    d = timesteps.timesteps_figure_data(cq16, few, timesteps=12, levels=8, encoding="current", images=8)
    t = by_meta(box.figure)
    assert np.array_equal(t["exact"].y, d["exact"]) and np.array_equal(t["error"].y, d["error_levels"])

    snn = cq.convert(cq16, 8, "spikes")
    box = bits.bits_explorer(snn, few, bits=5, images=8)
    box.controls["bits"].value = 3
    d = bits.bits_figure_data(snn, few, bits=3, layer=box.controls["layer"].value, images=8)
    t = by_meta(box.figure)
    assert np.array_equal(t["full"].x, d["weights"]) and np.array_equal(t["n-bit"].x, d["values"])
    assert np.array_equal(t["n-bit"].y, d["counts"]) and len(t["n-bit"].x) <= 2 ** 3
    assert np.allclose(t["count error"].y, d["layer_error"])

    box = energy.energy_explorer(cq16, few, timesteps=12, images=4)
    box.controls["timesteps"].value = 24
    d = energy.energy_figure_data(cq16, few, timesteps=24, images=4)
    t = by_meta(box.figure)
    assert np.allclose(t["snn"].y, d["synops"]) and np.allclose(t["cnn"].y, d["macs"])
    assert np.allclose(t["sparsity"].y, d["sparsity"]) and list(t["cnn"].x) == list(d["names"])


def test_timesteps_explorer_simulates_once_and_every_update_reads_the_history(live, cq16, few, monkeypatch):
    runs = []
    monkeypatch.setattr(timesteps, "spike_history", lambda snn, x: runs.append(snn.timesteps) or
                        cq.analysis.spike_history(snn, x))
    box = timesteps.timesteps_explorer(cq16, few, timesteps=12, levels=16, encoding="spikes", images=8, max_timesteps=40)
    assert runs == [40]  # one run, to the slider's end
    assert box.controls["levels"].continuous_update and box.controls["timesteps"].continuous_update
    for name, value in (("levels", 5), ("timesteps", 37), ("levels", 30), ("timesteps", 3)):
        runs.clear()
        box.controls[name].value = value  # a new L, then T past the start: no simulation
        assert runs == []
        values = {k: c.value for k, c in box.controls.items()}
        d = timesteps.timesteps_figure_data(cq16, few, encoding="spikes", images=8, **values)  # simulated at T
        t = by_meta(box.figure)
        assert np.allclose(t["exact"].y, d["exact"]) and np.allclose(t["error"].y, d["error_levels"])
        assert box.figure.layout.title.text == d["title"]
    history = timesteps.timesteps_history(cq16, few, "spikes", images=8, max_timesteps=10)
    with pytest.raises(ValueError, match="timesteps_history"):
        timesteps.timesteps_figure_data(cq16, few, 12, 16, "spikes", 8, history)  # holds T <= 10 only
    with pytest.raises(ValueError, match="current"):
        timesteps.timesteps_figure_data(cq16, few, 8, 16, "current", 8, history)  # another encoding


def test_static_mode_draws_matplotlib_small_multiples(static, cq16, few):
    snn = cq.convert(cq16, 8, "spikes")
    figures = [raster.raster_explorer(cq16, few, timesteps=8),
               timesteps.timesteps_explorer(cq16, few, images=4),
               bits.bits_explorer(snn, few, images=4),
               energy.energy_explorer(cq16, few, images=2)]
    assert all(isinstance(f, Figure) for f in figures)
    assert all(f.get_suptitle() for f in figures)
    for f in figures:
        for ax in f.axes:
            if ax.get_label() != "<colorbar>":
                assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_simulations_run_each_setting_once_then_slice():
    from cqlearn.widgets._explorer import Simulations

    calls = []
    runs = Simulations(lambda key, upto: calls.append((key, upto)) or {"key": key, "steps": upto},
                       lambda run: run["steps"], longest=64)
    assert runs("a", 16)["steps"] == 64 and calls == [("a", 64)]  # the first setting: to the longest at once
    assert runs("a", 40)["steps"] == 64 and len(calls) == 1  # moving T slices
    assert runs("b", 16)["steps"] == 16 and calls[-1] == ("b", 16)  # a new setting: as far as asked
    assert runs("b", 12)["steps"] == 16 and len(calls) == 2
    assert runs("b", 20)["steps"] == 64 and calls[-1] == ("b", 64)  # past what it holds: to the longest
    assert runs("c", 100)["steps"] == 100 and calls[-1] == ("c", 100)  # beyond the longest: as asked
