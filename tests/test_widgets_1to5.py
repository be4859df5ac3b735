"""The widgets of chapters 1-5, without a browser: update functions against closed forms, explorers
that build and redraw, and the matplotlib path of static_mode()."""
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import cqlearn as cq
from cqlearn import analysis
from cqlearn.widgets import clamp, conversion, neuron, quantization, training
from cqlearn.widgets._explorer import single_threaded, trace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def few():
    return cq.data.load("digits", "test", limit=48)


def _spiking_layers(model):
    return sum(isinstance(m, cq.CQ) for m in model.modules())


# Chapter 3: the integrate-and-fire explorer -------------------------------------------------------

def test_neuron_figure_data_count_title_and_trace():
    d = neuron.neuron_figure_data(0.3, 16, 1.0, "subtract")
    assert d["count"] == d["expected"] == 4
    assert d["title"] == "a = 0.30, T = 16: 4 spikes, ⌊aT⌋ = 4"
    assert d["spike_t"].tolist() == [4, 7, 10, 14]
    assert len(d["trace_t"]) == len(d["trace_v"]) == 2 * 16 + 1
    assert d["cumulative"][-1] == 4 and d["rate"] == 0.25
    d = neuron.neuron_figure_data(1.2, 16, 1.0, "subtract")  # at most one spike per step
    assert d["count"] == 16 and d["expected"] == 19
    d = neuron.neuron_figure_data(0.3, 16, 0.5, "zero")
    assert "θ = 0.50" in d["title"] and "⌊aT/θ⌋ = 9" in d["title"] and d["title"].endswith("(reset to zero)")
    assert d["count"] == 8  # 0.3, 0.6 -> spike: every second step
    with pytest.raises(ValueError, match="reset"):
        neuron.neuron_figure_data(0.3, 16, 1.0, "leaky")


def test_neuron_explorer_first_slider_is_current_and_redraws_title(live):
    box = neuron.neuron_explorer()
    names = list(box.controls)
    assert names[0] == "current" and type(box.controls["current"]).__name__ == "FloatSlider"
    before = box.figure.layout.title.text
    assert before == "a = 0.30, T = 16: 4 spikes, ⌊aT⌋ = 4"
    box.controls["current"].value = 0.5
    assert box.figure.layout.title.text == "a = 0.50, T = 16: 8 spikes, ⌊aT⌋ = 8"
    d = neuron.neuron_figure_data(0.5, 16)
    assert list(trace(box.figure, "train").x) == list(d["spike_t"]) == list(range(2, 17, 2))  # the spike train
    assert np.array_equal(trace(box.figure, "potential").y, d["trace_v"])
    assert np.array_equal(trace(box.figure, "count").y[1:], d["cumulative"])
    assert list(trace(box.figure, "ideal").y) == [0, 8.0] and list(trace(box.figure, "threshold").y) == [1.0, 1.0]
    box.controls["timesteps"].value = 5
    assert box.figure.layout.title.text.startswith("a = 0.50, T = 5: 2 spikes")


def test_count_vs_current_plots_both_resets_under_the_floor_law():
    ax = neuron.count_vs_current(timesteps=8)
    law, subtract, zero = (line.get_ydata() for line in ax.lines)
    a = ax.lines[0].get_xdata()
    inside = a <= 1
    assert np.array_equal(subtract[inside], law[inside]) and (zero <= subtract).all() and (zero < subtract).any()
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_neuron_explorer_static_is_a_matplotlib_small_multiple(static):
    figure = neuron.neuron_explorer()
    assert isinstance(figure, Figure) and len(figure.axes) == 6
    assert all(ax.get_title() and ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)


def test_update_functions_are_fast():
    values = np.random.default_rng(0).uniform(-0.5, 1.5, 30_000).astype(np.float32)
    for update in (lambda: neuron.neuron_figure_data(0.37, 64, 0.8, "subtract"),
                   lambda: quantization.quantization_figure_data(7, "round", values),
                   lambda: clamp.clamp_figure_data(1.5, values)):
        update()
        best = min(_seconds(update) for _ in range(5))
        assert best < 0.1, best


def _seconds(f):
    import time
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def test_single_threaded_restores_the_thread_count():
    torch.set_num_threads(2)
    assert single_threaded(torch.get_num_threads)() == 1
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)


# Chapter 1: clamping -------------------------------------------------------------------------------

def test_with_ceiling_is_the_librarys_clamp(plain, few):
    x = few.images[:16]
    assert not hasattr(clamp, "with_ceiling")  # the book calls the library, cq.quant.with_ceiling
    assert torch.equal(cq.quant.with_ceiling(plain, math.inf)(x), plain(x))
    assert torch.allclose(cq.quant.with_ceiling(plain, 1.0)(x), cq.to_clamp(plain)(x))
    assert not any(isinstance(m, nn.ReLU) for m in cq.quant.with_ceiling(plain, 2.0).modules())
    assert torch.equal(cq.quant.Clamp(0.5)(torch.tensor([-1.0, 0.2, 0.9])), torch.tensor([0.0, 0.2, 0.5]))


def test_activations_inputs_and_outputs(cq16, few):
    inputs = analysis.activations(cq16, few)
    outputs = analysis.activations(cq16, few.images, where="output")
    assert len(inputs) == len(outputs) == _spiking_layers(cq16) and inputs[0].shape[:1] == (48,)
    with pytest.raises(ValueError, match="where"):
        analysis.activations(cq16, few.images, where="inside")
    assert torch.equal(outputs[0], cq.quant.quantize(inputs[0], 16))
    assert all(torch.equal(o, a) for o, a in zip(outputs, analysis.cq_activations(cq16, few.images)))


def test_clamp_figure_data():
    values = np.array([-1.0, 0.0, 0.5, 1.5, 2.5])
    d = clamp.clamp_figure_data(1.0, values, layer=2, accuracies={1.0: 0.9, 2.0: 0.95}, reference=0.97)
    assert d["clipped"] == pytest.approx(0.4) and d["lost"] == pytest.approx((0.5 + 1.5) / 5)
    assert d["title"] == "ceiling c = 1.00: 40.0 % of layer 2 activations clipped, accuracy 90.0 % (ReLU 97.0 %)"
    assert d["counts"].sum() == pytest.approx(3 / 5)  # the positive values
    assert d["over"][d["centers"] > 1].all() and d["clamped"].max() == 1.0


def test_clamp_explorer_live_and_static(plain, few, live, monkeypatch):
    box = clamp.clamp_explorer(plain, few, images=48, ceilings=[0.5, 1.0, 3.0], progress=False)
    assert list(box.controls)[0] == "ceiling"
    before = box.figure.layout.title.text
    box.controls["ceiling"].value = 3.0
    assert box.figure.layout.title.text != before and "c = 3.00" in box.figure.layout.title.text
    for layer in (0, 2):
        box.controls["layer"].value = layer
        values = clamp.sample_values(analysis.activations(plain, few.images)[layer])
        d = clamp.clamp_figure_data(3.0, values, layer)
        t = {k: trace(box.figure, k) for k in ("relu", "clamped", "histogram", "ceiling", "this ceiling")}
        assert np.array_equal(t["clamped"].y, np.clip(t["clamped"].x, 0, 3.0)) and np.array_equal(t["relu"].y, d["relu"])
        assert max(t["relu"].x) >= values.max(), "the ReLU line spans every activation"
        assert np.allclose(t["histogram"].y, d["counts"]) and np.allclose(t["histogram"].x, d["centers"])
        assert list(t["histogram"].marker.color) == ["crimson" if o else "steelblue" for o in d["over"]]
        assert list(t["ceiling"].x) == [3.0, 3.0] and list(t["this ceiling"].x) == [3.0]
    layout = box.figure.layout  # each panel's y-axis title has room between the panels
    assert layout.xaxis2.domain[0] - layout.xaxis.domain[1] >= 0.12
    assert all(t.name and t.meta for t in box.figure.data)
    monkeypatch.setenv("CQ_STATIC", "1")
    assert isinstance(clamp.clamp_explorer(plain, few, images=48, ceilings=[0.5, 1.0, 2.0, 4.0], progress=False),
                      Figure)


def test_rate_vs_current_never_passes_one():
    ax = clamp.rate_vs_current((4,))
    rates = ax.lines[1].get_ydata()
    assert max(rates) == 1 and ax.get_title() and ax.get_xlabel()


# Chapter 2: quantization ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["floor", "round"])
@pytest.mark.parametrize("levels", [1, 3, 16])
def test_quantization_error_bounds(levels, mode):
    x = torch.rand(10_000)
    error = quantization.quantization_error(x, levels, mode)
    lo, hi = quantization.error_bounds(levels, mode)
    slack = cq.quant.TOLERANCE / levels + 1e-6
    assert error.min() >= lo - slack and error.max() <= hi + slack
    d = quantization.quantization_figure_data(levels, mode, x)
    assert d["fraction"].sum() == pytest.approx(1.0) and d["mean_error"] <= max(abs(lo), hi)


def test_quantization_figure_data_title_and_staircase():
    d = quantization.quantization_figure_data(4, "floor", accuracies={"floor": {4: 0.5}})
    assert d["title"] == "L = 4 (floor): |error| ≤ 1/L = 0.250, mean |error| nan, accuracy 50.0 %"
    assert sorted(set(np.round(d["y"], 6))) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match="levels"):
        quantization.quantization_figure_data(0)


def test_ste_gradient():
    g = quantization.ste_gradient(torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.2]), 4)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_levels_sweep_matches_evaluate(cq16, few):
    sweep = quantization.sweep_levels(cq16, few, (1, 16), progress=False)
    assert sweep[16] == cq.evaluate(cq16, few) and sweep[1] < sweep[16]


def test_quantization_explorer_live_and_static(cq16, few, live, monkeypatch):
    box = quantization.quantization_explorer(cq16, few, sweep=(2, 16), images=48, progress=False)
    assert list(box.controls)[0] == "levels" and box.figure.layout.title.text.startswith("L = 16 (floor)")
    error = trace(box.figure, "error")
    edges, heights = error.x, error.y
    box.controls["levels"].value = 2
    assert box.figure.layout.title.text.startswith("L = 2 (floor)") and not np.array_equal(error.y, heights)
    assert np.array_equal(error.x, edges) and min(edges) == 0 and max(edges) == 1  # one step, any L
    box.controls["mode"].value = "round"
    assert "1/(2L) = 0.250" in box.figure.layout.title.text
    assert min(error.x) == -0.5 and max(error.x) == 0.5
    values = clamp.sample_values(analysis.activations(cq16, few.images[:48])[0])
    d = quantization.quantization_figure_data(2, "round", values)
    assert np.array_equal(trace(box.figure, "cq").y, d["y"]) and np.array_equal(trace(box.figure, "clamp").y, d["clamp"])
    assert np.allclose(error.y[1:-1:2], d["fraction"]) and np.allclose(error.x[::2], d["edges"])
    assert list(trace(box.figure, "this L").x) == [2]
    # no unnamed traces (a legend would read "trace 0"), and room for each panel's y-axis title
    assert all(t.name and not t.name.startswith("trace") for t in box.figure.data)
    assert box.figure.layout.xaxis2.domain[0] - box.figure.layout.xaxis.domain[1] >= 0.12
    monkeypatch.setenv("CQ_STATIC", "1")
    assert isinstance(quantization.quantization_explorer(cq16, few, sweep=(2, 4, 16), images=48,
                                                         progress=False), Figure)


# Chapter 4: the staged recipe ---------------------------------------------------------------------

def _fake_stages(plain, cq16):
    history = {"loss": [1.0, 0.5], "train_accuracy": [0.5, 0.8], "test_accuracy": [0.6, 0.9]}
    return {"plain": (plain, history), "clamp": (cq.to_clamp(plain), history), "cq": (cq16, history)}


def test_stage_figure_data(plain, cq16, few):
    acts = training.stage_activations(_fake_stages(plain, cq16), few.images)
    plain_d, clamp_d, cq_d = (training.stage_figure_data(s, 0, acts) for s in training.STAGES)
    assert plain_d["above"] > 0 and clamp_d["above"] == 0 and cq_d["above"] == 0
    assert cq_d["distinct"] <= 17 and plain_d["distinct"] > 1000
    assert cq_d["title"] == f"CQ, layer 0: 0.0 % of activations above 1, {cq_d['distinct']} distinct values"
    assert cq_d["fraction"].sum() == pytest.approx(1.0)


def test_training_curves_and_stage_explorer(plain, cq16, few, live, monkeypatch):
    stages = _fake_stages(plain, cq16)
    figure = training.training_curves(stages)
    assert len(figure.axes) == 2 and all(ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)
    box = training.stage_explorer(stages, few.images)
    before = box.figure.layout.title.text
    box.controls["stage"].value = "cq"
    assert box.figure.layout.title.text != before and box.figure.layout.title.text.startswith("CQ, layer 0")
    box.controls["layer"].value = 1
    d = training.stage_figure_data("cq", 1, training.stage_activations(stages, few.images))
    bars = trace(box.figure, "histogram")
    assert np.array_equal(bars.x, d["centers"]) and np.allclose(bars.y, d["fraction"]) and bars.width == d["width"]
    monkeypatch.setenv("CQ_STATIC", "1")
    assert len(training.stage_explorer(stages, few.images).axes) == 3


# Chapter 5: conversion ----------------------------------------------------------------------------

def test_conversion_figure_data_matches_layer_agreement(cq16, few):
    x = few.images[:16]
    pairs = conversion.simulate_layers(cq16, x, 16, "current")
    rows = analysis.layer_agreement(cq16, cq.convert(cq16, 16, "current"), x)
    for row in rows:
        d = conversion.conversion_figure_data(pairs, row["layer"], 16, 16)
        assert d["exact"] == pytest.approx(row["exact"]) and d["mae"] == pytest.approx(row["mae_spikes"], abs=1e-6)
        assert d["grid"].sum() == len(x) * row["neurons"]
    first = conversion.conversion_figure_data(pairs, 0, 16, 16)
    assert first["exact"] == 1.0 and np.count_nonzero(first["grid"] - np.diag(np.diag(first["grid"]))) == 0
    lines = conversion.agreement_table(rows).splitlines()
    assert len(lines) == 2 + len(rows) and lines[2].split()[:4] == ["0", str(rows[0]["neurons"]), "100.00", "%"]


def test_conversion_explorer_live_and_static(cq16, few, live, monkeypatch):
    box = conversion.conversion_explorer(cq16, few.images[:16])
    assert box.figure.layout.title.text.startswith("layer 0, T = 16: 100.0 %")
    last = _spiking_layers(cq16) - 1
    box.controls["layer"].value = last
    assert box.figure.layout.title.text.startswith(f"layer {last}, T = 16")
    box.controls["timesteps"].value = 32
    grid = trace(box.figure, "grid")
    assert grid.z.shape == (33, 17)
    d = conversion.conversion_figure_data(conversion.simulate_layers(cq16, few.images[:16], 32), last, 32, 16)
    assert np.allclose(grid.z, np.log10(1 + d["grid"].T)) and box.figure.layout.title.text.startswith(d["title"])
    box.controls["encoding"].value = "spikes"
    d = conversion.conversion_figure_data(conversion.simulate_layers(cq16, few.images[:16], 32, "spikes"), last, 32, 16)
    assert np.allclose(grid.z, np.log10(1 + d["grid"].T))
    monkeypatch.setenv("CQ_STATIC", "1")
    assert len(conversion.conversion_explorer(cq16, few.images[:16]).axes) == _spiking_layers(cq16)


def test_conversion_explorer_simulates_each_encoding_once_at_build(cq16, few, live, monkeypatch):
    runs = []
    monkeypatch.setattr(conversion, "spike_history", lambda snn, x, timesteps: runs.append(snn.encoding) or
                        analysis.spike_history(snn, x, timesteps=timesteps))
    box = conversion.conversion_explorer(cq16, few.images[:8], timesteps=16)
    assert runs == ["current", "spikes", "poisson"]
    for name, value in (("encoding", "poisson"), ("timesteps", 48), ("layer", 2), ("encoding", "spikes")):
        box.controls[name].value = value
    assert len(runs) == 3  # the updates only read the histories
    d = conversion.conversion_figure_data(conversion.simulate_layers(cq16, few.images[:8], 48, "spikes"), 2, 48, 16)
    assert np.allclose(trace(box.figure, "grid").z, np.log10(1 + d["grid"].T))
