"""Conversion (chapter 5): how each spiking layer's counts compare with the CQ-CNN's activations.

`conversion_figure_data` is the update function of the conversion explorer: for T, an encoding and a
layer it tabulates each neuron's CQ-CNN activation a against its spike count N, so exact neurons
(N = a * T) lie on the diagonal.
"""
import numpy as np
import torch

from ..analysis import EXACT, cq_activations, spike_history
from ..conversion import convert
from ..neuron import ENCODINGS
from ..plots import small_multiples
from ..quant import cq_config
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace


def agreement_table(rows):
    """The rows of cq.analysis.layer_agreement as a fixed-width text table (chapter 5)."""
    lines = [f"{'layer':>5}  {'neurons':>7}  {'exact counts':>12}  {'mean error (spikes)':>19}", "-" * 50]
    lines += [f"{r['layer']:>5}  {r['neurons']:>7}  {100 * r['exact']:>10.2f} %  {r['mae_spikes']:>19.3f}"
              for r in rows]
    return "\n".join(lines)


def simulate_layers(model, x, timesteps, encoding="current"):
    """Per spiking layer: (CQ-CNN activations, SNN spike counts), both flattened to (N, neurons), for
    `model` converted at `timesteps` with `encoding`. The CNN sees the input as the SNN does."""
    return layer_pairs(model, spike_history(convert(model, timesteps, encoding), x, timesteps=[timesteps])[timesteps])


def layer_pairs(model, step):
    """simulate_layers' pairs for one entry of cq.analysis.spike_history (chapter 5): the counts stored
    there, and the CQ-CNN's activations for the input the SNN saw."""
    return [(a.flatten(1), n.flatten(1)) for a, n in zip(cq_activations(model, step["rates"]), step["counts"])]


@single_threaded
def conversion_figure_data(pairs, layer, timesteps, levels):
    """What the conversion explorer draws for one layer (chapter 5).

    pairs: simulate_layers(...). Returns a dict: grid ((levels + 1) x (timesteps + 1) neuron counts,
    row k: activation k / levels, column n: n spikes), exact (share of neurons with N = a * T),
    mae (mean |N - a * T| in spikes), activation, rate (axes of the grid), title."""
    a, n = pairs[layer]
    k = torch.round(a * levels).long().flatten().clamp(0, levels)
    n_flat = n.long().flatten().clamp(0, timesteps)
    grid = torch.zeros((levels + 1) * (timesteps + 1), dtype=torch.long)
    grid.index_add_(0, k * (timesteps + 1) + n_flat, torch.ones_like(k))
    error = (n - a * timesteps).abs()
    exact, mae = (error < EXACT).float().mean().item(), error.mean().item()
    title = f"layer {layer}, T = {timesteps}: {100 * exact:.1f} % exact (N = a·T), mean error {mae:.2f} spikes"
    return {"grid": grid.reshape(levels + 1, timesteps + 1).numpy(), "exact": exact, "mae": mae,
            "activation": np.arange(levels + 1) / levels, "rate": np.arange(timesteps + 1) / timesteps,
            "title": title}


def conversion_figure():
    import plotly.graph_objects as go

    fig = go.FigureWidget()
    fig.add_heatmap(name="neurons", meta="grid", colorscale="Viridis", colorbar={"title": {"text": "log10(1 + neurons)"}})
    fig.add_scatter(name="rate = activation", meta="diagonal", mode="lines", x=[0, 1], y=[0, 1], line={"color": "red", "dash": "dash"})
    fig.update_layout(height=500, width=760, margin={"t": 70, "l": 70, "r": 20, "b": 60}, title={"x": 0.5},
                      xaxis={"title": {"text": "CQ-CNN activation a"}, "range": [-0.05, 1.05]},
                      yaxis={"title": {"text": "SNN rate N/T (spikes per step)"}, "range": [-0.05, 1.05]},
                      showlegend=False)
    return fig


def conversion_small_multiples(pairs, timesteps, levels, title):
    figure, axes = small_multiples(1, len(pairs), width=3.0, height=3.0)
    for layer, ax in enumerate(axes[0]):
        d = conversion_figure_data(pairs, layer, timesteps, levels)
        ax.pcolormesh(d["activation"], d["rate"], np.log10(1 + d["grid"].T), shading="nearest", cmap="viridis")
        ax.plot([0, 1], [0, 1], color="r", ls="--", lw=0.8)
        ax.set(title=f"layer {layer}: {100 * d['exact']:.1f} % exact\nmean error {d['mae']:.2f} spikes",
               xlabel="CQ-CNN activation a", ylabel="SNN rate N/T", aspect="equal")
        ax.title.set_fontsize(9)
    figure.suptitle(title)
    return figure


def conversion_explorer(model, x, timesteps=16, layer=0, encoding="current"):
    """Chapter 5's explorer: T (first slider), the layer and the encoding; a heat map of CQ-CNN
    activation against SNN rate over the images x, the title giving the share of exact counts."""
    levels = cq_config(model).levels
    options = sorted({4, 8, 12, 16, 24, 32, 48, 64, timesteps})
    # one simulation per encoding, to the largest T, holds every T of the slider (its first T steps)
    history = lambda encoding: spike_history(convert(model, max(options), encoding), x, timesteps=options)
    if static_mode():
        return conversion_small_multiples(layer_pairs(model, history(encoding)[timesteps]), timesteps, levels,
                                          f"CQ-CNN activation against SNN rate, T = {timesteps}, {encoding} encoding")
    import ipywidgets as w

    histories = {e: history(e) for e in ENCODINGS}  # all up front: a new encoding only reads its history

    @single_threaded
    def redraw(fig, timesteps, layer, encoding):
        d = conversion_figure_data(layer_pairs(model, histories[encoding][timesteps]), layer, timesteps, levels)
        grid = trace(fig, "grid")
        grid.x, grid.y, grid.z = d["activation"], d["rate"], np.log10(1 + d["grid"].T)
        fig.layout.title.text = f"{d['title']}, {encoding} encoding"

    controls = {
        "timesteps": w.SelectionSlider(value=timesteps, options=options, description="time steps T",
                                       **slider_style()),
        "layer": w.IntSlider(value=layer, min=0, max=len(histories[encoding][timesteps]["counts"]) - 1,
                             description="layer", **slider_style()),
        "encoding": w.ToggleButtons(value=encoding, options=ENCODINGS, description="encoding",
                                    style={"description_width": "11em"}),
    }
    return explorer(controls, conversion_figure(), redraw)
