"""The integrate-and-fire explorer (chapter 3): input current, T, threshold and reset mode -> membrane
trace, spike train and spike count against floor(a * T / threshold).

`neuron_figure_data` is the update function (plain arrays, no browser); `neuron_explorer` wires it to
sliders and a plotly FigureWidget, or draws a matplotlib small multiple in `static_mode()`.
"""
import math

import numpy as np
import torch

from ..neuron import RESETS, simulate
from ..plots import small_multiples
from ..quant import TOLERANCE
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace


def floor_law(current, timesteps, threshold=1.0):
    """floor(a * T / threshold), the count that reset by subtraction reaches for 0 <= a <= threshold."""
    return math.floor(round(current * timesteps / threshold, 9))


def neuron_title(current, timesteps, threshold, reset, count, expected):
    law = "⌊aT⌋" if threshold == 1 else "⌊aT/θ⌋"
    head = f"a = {current:.2f}, T = {timesteps}" + ("" if threshold == 1 else f", θ = {threshold:.2f}")
    tail = "" if reset == "subtract" else " (reset to zero)"
    return f"{head}: {count} spike{'' if count == 1 else 's'}, {law} = {expected}{tail}"


@single_threaded
def neuron_figure_data(current, timesteps, threshold=1.0, reset="subtract"):
    """Everything the neuron explorer draws, for one setting of its controls (chapter 3).

    Returns a dict of numpy arrays and numbers:
      t            steps 1..T
      trace_t/v    the sawtooth of the membrane potential: from the potential after the previous
                   reset up to the potential before this step's reset, then down to after it
      after        potential after the reset at each step
      spike_t      the steps with a spike;  spike_v  the potential that crossed the threshold
      cumulative   spikes fired so far, N(t);  ideal  a * t / threshold (no reset, no rounding)
      count        N(T);  expected  floor(a * T / threshold);  rate  count / T
      title        e.g. "a = 0.30, T = 16: 4 spikes, ⌊aT⌋ = 4"
    """
    timesteps = int(timesteps)
    spikes, before, after, _ = (x.numpy() for x in simulate(float(current), timesteps, threshold, reset=reset))
    t = np.arange(1, timesteps + 1)
    trace_t = np.concatenate([[0], np.repeat(t, 2)])
    trace_v = np.concatenate([[0.0], np.column_stack([before, after]).ravel()])
    count = int(spikes.sum())
    expected = floor_law(current, timesteps, threshold)
    return {
        "t": t, "trace_t": trace_t, "trace_v": trace_v, "after": after,
        "spike_t": t[spikes], "spike_v": before[spikes],
        "cumulative": np.cumsum(spikes), "ideal": current * t / threshold,
        "count": count, "expected": expected, "rate": count / timesteps,
        "title": neuron_title(current, timesteps, threshold, reset, count, expected),
    }


def count_vs_current(timesteps=16, threshold=1.0, ax=None):
    """Matplotlib axes: spikes in T steps against a constant current for both reset modes, next to
    floor(a * T / threshold). Subtraction follows the floor law up to a = threshold; reset to zero
    falls below it wherever threshold / a is not a whole number (chapter 3)."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)[1]
    a = torch.linspace(0, 1.25 * threshold, 1001, dtype=torch.float64)
    law = torch.floor(a * timesteps / threshold + TOLERANCE)
    ax.plot(a, law, color="0.6", lw=4, alpha=0.6, label="⌊aT/θ⌋" if threshold != 1 else "⌊aT⌋")
    for reset, style in zip(RESETS, ("-", "--")):
        counts = simulate(a, timesteps, threshold, reset=reset).spikes.sum(0)
        ax.plot(a, counts, style, lw=1.5, label=f"IF, reset {'by subtraction' if reset == 'subtract' else 'to zero'}")
    ax.set(title=f"Spikes in T = {timesteps} steps against input current (θ = {threshold:g})",
           xlabel="input current a (per step, same units as θ)", ylabel="spike count N")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def neuron_figure():
    """An empty plotly FigureWidget with the explorer's three panels and their labels."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(
        rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, row_heights=[0.5, 0.14, 0.36],
        subplot_titles=("membrane potential", "spike train", "spike count N(t) against a·t/θ")))
    fig.add_scatter(name="potential v", meta="potential", mode="lines", line={"color": "#1f77b4", "width": 2}, row=1, col=1)
    fig.add_scatter(name="threshold θ", meta="threshold", mode="lines", line={"color": "red", "dash": "dash"}, row=1, col=1)
    fig.add_scatter(name="spike", meta="spike", mode="markers", marker={"color": "red", "size": 8, "symbol": "triangle-up"},
                    row=1, col=1)
    fig.add_scatter(name="spikes", meta="train", mode="markers", showlegend=False,
                    marker={"color": "black", "size": 18, "symbol": "line-ns-open", "line": {"width": 2}},
                    row=2, col=1)
    fig.add_scatter(name="N(t), spikes so far", meta="count", mode="lines", line={"shape": "hv", "color": "black"}, row=3, col=1)
    fig.add_scatter(name="a·t/θ", meta="ideal", mode="lines", line={"color": "gray", "dash": "dot"}, row=3, col=1)
    fig.update_layout(height=620, margin={"t": 80, "l": 70, "r": 20, "b": 50}, title={"x": 0.5},
                      legend={"orientation": "h", "y": -0.12})
    fig.update_yaxes(title_text="v (threshold units)", row=1, col=1)
    fig.update_yaxes(showticklabels=False, range=[0.5, 1.5], row=2, col=1)
    fig.update_yaxes(title_text="spikes", row=3, col=1)
    fig.update_xaxes(title_text="time step t", row=3, col=1)
    return fig


def redraw_neuron(fig, current, timesteps, threshold, reset):
    """Write neuron_figure_data(...) into the explorer's figure."""
    d = neuron_figure_data(current, timesteps, threshold, reset)
    line, level, fired, train, count, ideal = (trace(fig, k) for k in ("potential", "threshold", "spike", "train",
                                                                      "count", "ideal"))
    line.x, line.y = d["trace_t"], d["trace_v"]
    level.x, level.y = [0, timesteps], [threshold, threshold]
    fired.x, fired.y = d["spike_t"], d["spike_v"]
    train.x, train.y = d["spike_t"], np.ones(len(d["spike_t"]))
    count.x, count.y = np.concatenate([[0], d["t"]]), np.concatenate([[0], d["cumulative"]])
    ideal.x, ideal.y = [0, timesteps], [0, current * timesteps / threshold]
    fig.layout.title.text = d["title"]
    for axis in ("xaxis", "xaxis2", "xaxis3"):  # by name: update_xaxes searches the grid, slower by milliseconds
        fig.layout[axis].range = [0, timesteps + 0.5]
    fig.layout.yaxis.range = [-0.05, 1.1 * max(threshold, float(d["trace_v"].max()))]


def neuron_small_multiples(currents=(0.3, 0.45, 0.7), timesteps=16, threshold=1.0):
    """Matplotlib figure: membrane traces for a few currents (columns), both reset modes (rows)."""
    figure, axes = small_multiples(len(RESETS), len(currents))
    for row, reset in zip(axes, RESETS):
        for ax, current in zip(row, currents):
            d = neuron_figure_data(current, timesteps, threshold, reset)
            ax.plot(d["trace_t"], d["trace_v"], color="C0", lw=1.5)
            ax.axhline(threshold, color="r", ls="--", lw=1)
            ax.plot(d["spike_t"], d["spike_v"], "^", color="r", ms=4)
            ax.set(title=d["title"].replace(f", T = {timesteps}", ""), xlabel="time step t",
                   ylabel="membrane potential v", xlim=(0, timesteps + 0.5))
            ax.title.set_fontsize(8)
    figure.suptitle(f"IF neuron over T = {timesteps} steps: reset by subtraction (top), reset to zero (bottom)")
    return figure


def neuron_explorer(current=0.3, timesteps=16, threshold=1.0, reset="subtract"):
    """Chapter 3's explorer. Sliders (input current first), T, threshold and reset mode drive the
    membrane trace, the spike train and the count against floor(aT), which the title states.
    In static_mode() returns a matplotlib small multiple instead."""
    if static_mode():
        return neuron_small_multiples(timesteps=timesteps, threshold=threshold)
    import ipywidgets as w

    controls = {
        "current": w.FloatSlider(value=current, min=0.0, max=1.5, step=0.01, readout_format=".2f",
                                 description="input current a", **slider_style()),
        "timesteps": w.IntSlider(value=timesteps, min=1, max=64, description="time steps T", **slider_style()),
        "threshold": w.FloatSlider(value=threshold, min=0.25, max=2.0, step=0.05, readout_format=".2f",
                                   description="threshold θ", **slider_style()),
        "reset": w.ToggleButtons(value=reset, options=[("by subtraction", "subtract"), ("to zero", "zero")],
                                 description="reset", style={"description_width": "11em"}),
    }
    return explorer(controls, neuron_figure(), redraw_neuron)
