"""The spike raster explorer (chapter 6): image, layer, T and encoding -> the layer's spikes for that
image and the membrane potential of three of its neurons.

`raster_figure_data` is the update function (plain arrays, no browser); `raster_explorer` wires it to
sliders and a plotly FigureWidget, or draws `raster_small_multiples` (every layer of one image) in
`static_mode()`. `encodings_data` / `encodings_figure` show one image under the three input encodings.
"""
import numpy as np

from ..conversion import convert
from ..neuron import ENCODINGS, encode
from ..plots import raster_neurons, raster_points, small_multiples
from . import static_mode
from ._explorer import Simulations, explorer, single_threaded, slider_style, trace

MAX_NEURONS = 64  # neurons shown in a raster: a row per neuron must stay a few pixels tall
RASTER_PX = 270  # height of the explorer's raster panel in pixels, measured in JupyterLab (sets the marker size)


def _image(dataset, image):
    x, label = dataset[int(image)]
    return x, int(label)


def chosen_neurons(counts, timesteps):
    """Three flat neuron indices to trace: the neurons whose spike counts come closest to 3/4, 1/2
    and 1/5 of the T steps (saturated and silent neurons make dull traces)."""
    counts = counts.flatten().double()
    picks = []
    for share in (0.75, 0.5, 0.2):
        distance = (counts - share * timesteps).abs()
        distance[picks] = float("inf")
        picks.append(int(distance.argmin()))
    return picks


def raster_run(model, dataset, image=0, encoding="spikes", timesteps=128):
    """One image's recorded run (spikes, potentials and the output at every T) of `model` converted
    with `timesteps` and `encoding`: the first T steps of it are the run to T (chapter 6)."""
    snn = convert(model, int(timesteps), encoding)
    x, label = _image(dataset, image)
    return {"snn": snn, "x": x, "label": label, "image": int(image), "encoding": encoding,
            "recording": snn.run(x[None], record=True, all_timesteps=True)}


@single_threaded
def raster_figure_data(model, dataset, image=0, layer=0, timesteps=32, encoding="spikes", run=None):
    """Everything the raster explorer draws for one setting of its controls (chapter 6).

    model: a CQ-CNN (converted here with `timesteps` and `encoding`); dataset: images and labels.
    run: raster_run(model, dataset, image, encoding, T_max >= timesteps), which the explorer keeps per
    image and encoding, so that moving T or the layer only slices it (default: simulated here).
    Returns a dict of numpy arrays and numbers:
      picture          the image (H, W) or (H, W, 3) in [0, 1];  label, prediction (the SNN's class)
      raster_t/n       step (1..T) and row of every spike of the layer's shown neurons
      shown, neurons   neurons in the raster (at most MAX_NEURONS firing ones picked across the rates by
                       plots.raster_neurons, busiest in row 0) and in the layer
      spikes           spikes the layer fired for this image;  rate  spikes per neuron per step
      trace_t          steps 1..T;  traces  {neuron: membrane after reset (T,)};  trace_spikes  {neuron: steps}
      layers           number of spiking layers;  title
    """
    timesteps = int(timesteps)
    run = run or raster_run(model, dataset, image, encoding, timesteps)
    if (run["image"], run["encoding"]) != (int(image), encoding) or run["snn"].timesteps < timesteps:
        raise ValueError(f"run holds image {run['image']}, {run['encoding']!r} and T <= {run['snn'].timesteps}; make "
                         f"it with raster_run(model, dataset, {image}, {encoding!r}, timesteps>={timesteps}).")
    snn, rec, x, label = run["snn"], run["recording"], run["x"], run["label"]
    if not 0 <= layer < len(snn.layers):
        raise ValueError(f"layer must be in 0..{len(snn.layers) - 1}, got {layer!r}.")
    spikes = rec.spikes[layer][:timesteps, 0].reshape(timesteps, -1).cpu()
    membrane = rec.membrane[layer][:timesteps, 0].reshape(timesteps, -1).cpu()
    shown = raster_neurons(spikes, MAX_NEURONS)
    t, n = raster_points(spikes[:, shown])
    t_axis = np.arange(1, timesteps + 1)
    neurons = chosen_neurons(spikes.sum(0), timesteps)
    prediction = int(rec.outputs[timesteps - 1].argmax(1).cpu())
    total = int(spikes.sum())
    picture = x.permute(1, 2, 0).numpy() if x.shape[0] == 3 else x[0].numpy()
    return {
        "picture": picture, "label": label, "prediction": prediction,
        "raster_t": t.numpy(), "raster_n": n.numpy(), "shown": len(shown), "neurons": spikes.shape[1],
        "spikes": total, "rate": total / spikes.numel(), "trace_t": t_axis,
        "traces": {i: membrane[:, i].numpy() for i in neurons},
        "trace_spikes": {i: t_axis[spikes[:, i].numpy()] for i in neurons},
        "threshold": snn.layers[layer].threshold, "layers": len(snn.layers),
        "title": (f"image {image} (label {label}, SNN says {prediction}), layer {layer}, T = {timesteps}, "
                  f"{encoding}: {total} spikes, rate {total / spikes.numel():.3f}"),
    }


def raster_figure():
    """An empty plotly FigureWidget with the explorer's three panels and their labels. Traces carry a
    `meta` key ("image", "spikes", "neuron 0".."neuron 2", "threshold") that redraw_raster finds them by."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(rows=1, cols=3, column_widths=[0.2, 0.42, 0.38], horizontal_spacing=0.09,
                                        subplot_titles=("input image", "spike raster", "membrane potential")))
    fig.add_heatmap(z=[[0]], colorscale="gray", showscale=False, zmin=0, zmax=1, name="input image", meta="image",
                    row=1, col=1)
    fig.add_scatter(mode="markers", name="spike", meta="spikes", showlegend=False,
                    marker={"symbol": "line-ns-open", "size": 4, "color": "black", "line": {"width": 1}},
                    row=1, col=2)
    for k, color in enumerate(("#1f77b4", "#ff7f0e", "#2ca02c")):
        fig.add_scatter(mode="lines", line={"shape": "hv", "color": color}, name=f"neuron {k}",
                        meta=f"neuron {k}", row=1, col=3)
    fig.add_scatter(mode="lines", name="threshold θ", meta="threshold", line={"color": "red", "dash": "dash"},
                    row=1, col=3)
    fig.update_layout(height=RASTER_PX + 220, autosize=True, margin={"t": 90, "l": 20, "r": 20, "b": 100},
                      title={"x": 0.5, "font": {"size": 13}}, legend={"orientation": "h", "y": -0.25, "x": 0.45})
    # The digit keeps its square pixels: one y unit is as long as one x unit.
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x", scaleratio=1, constrain="domain",
                     row=1, col=1)
    fig.update_xaxes(showticklabels=False, constrain="domain", row=1, col=1)
    fig.update_xaxes(title_text="time step t", row=1, col=2)
    fig.update_yaxes(title_text="neuron (by rate)", title_standoff=4, row=1, col=2)
    fig.update_xaxes(title_text="time step t", row=1, col=3)
    fig.update_yaxes(title_text="v (after reset)", title_standoff=4, row=1, col=3)
    return fig


def redraw_raster(fig, model, dataset, image, layer, timesteps, encoding, run=None):
    """Write raster_figure_data(...) into the explorer's figure."""
    d = raster_figure_data(model, dataset, image, layer, timesteps, encoding, run)
    trace(fig, "image").z = d["picture"] if d["picture"].ndim == 2 else d["picture"].mean(-1)
    dots = trace(fig, "spikes")
    dots.x, dots.y = d["raster_t"], d["raster_n"]
    # a marker half as tall as a row (its outline adds a pixel), so that the rows stay apart
    dots.marker.size = max(1.5, min(8.0, 0.5 * RASTER_PX / max(d["shown"], 1)))
    traced = list(d["traces"].items())
    for k in range(3):
        line = trace(fig, f"neuron {k}")
        line.visible = k < len(traced)
        if line.visible:
            i, v = traced[k]
            line.x, line.y, line.name = d["trace_t"], v, f"neuron {i}: {len(d['trace_spikes'][i])} spikes"
    level = trace(fig, "threshold")
    level.x, level.y = [1, timesteps], [d["threshold"]] * 2
    fig.layout.title.text = d["title"]
    # the panels' axes by name (update_xaxes(row=, col=) searches the grid: slower by milliseconds)
    fig.layout.xaxis2.range = fig.layout.xaxis3.range = [0.5, timesteps + 0.5]
    fig.layout.yaxis2.range = [-0.5, max(d["shown"], 1) - 0.5]


def raster_small_multiples(model, dataset, image=0, timesteps=32, encoding="spikes"):
    """Matplotlib figure: the raster (top) and three membrane traces (bottom) of every layer for one image."""
    run = raster_run(model, dataset, image, encoding, timesteps)  # one simulation for every layer
    first = raster_figure_data(model, dataset, image, 0, timesteps, encoding, run)
    layers = first["layers"]
    figure, axes = small_multiples(2, layers, width=3.0, height=2.8)
    for layer in range(layers):
        d = first if layer == 0 else raster_figure_data(model, dataset, image, layer, timesteps, encoding, run)
        top, bottom = axes[0, layer], axes[1, layer]
        top.vlines(d["raster_t"], d["raster_n"] - 0.35, d["raster_n"] + 0.35, color="k", lw=0.8)
        top.set(title=f"layer {layer}: {d['spikes']} spikes\n({d['shown']} of {d['neurons']} neurons shown)",
                xlabel="time step t", ylabel="neuron (by rate)", xlim=(0.5, timesteps + 0.5),
                ylim=(-0.5, max(d["shown"], 1) - 0.5))
        for k, (i, v) in enumerate(d["traces"].items()):
            bottom.step(d["trace_t"], v, where="post", color=f"C{k}", lw=1, label=f"n{i}: {len(d['trace_spikes'][i])}")
        bottom.axhline(d["threshold"], color="r", ls="--", lw=1)
        bottom.set(title="membrane potential", xlabel="time step t", ylabel="v (after reset)")
        bottom.legend(fontsize=6, loc="lower right")
        top.title.set_fontsize(8)
        bottom.title.set_fontsize(8)
    figure.suptitle(f"Image {image} (label {first['label']}, SNN says {first['prediction']}), "
                    f"T = {timesteps}, {encoding} encoding: every layer")
    return figure


def raster_explorer(model, dataset, image=0, layer=0, timesteps=32, encoding="spikes", max_timesteps=128):
    """Chapter 6's explorer: sliders for the image, the layer, T and the encoding drive the input image,
    the layer's spike raster and three membrane traces. Each image and encoding is simulated once, to
    max_timesteps; moving T or the layer slices that run. In static_mode() returns a matplotlib small
    multiple of every layer instead."""
    if static_mode():
        return raster_small_multiples(model, dataset, image, timesteps, encoding)
    import ipywidgets as w

    max_timesteps = max(max_timesteps, timesteps)
    run = Simulations(lambda key, upto: raster_run(model, dataset, *key, upto), lambda r: r["snn"].timesteps,
                      max_timesteps)
    layers = len(run((image, encoding), timesteps)["snn"].layers)
    controls = {
        "image": w.IntSlider(value=image, min=0, max=len(dataset) - 1, description="image", **slider_style()),
        "layer": w.IntSlider(value=layer, min=0, max=layers - 1, description="layer", **slider_style()),
        "timesteps": w.IntSlider(value=timesteps, min=1, max=max_timesteps, description="time steps T",
                                 **slider_style()),
        "encoding": w.ToggleButtons(value=encoding, options=list(ENCODINGS), description="encoding",
                                    style={"description_width": "11em"}),
    }
    return explorer(controls, raster_figure(),
                    lambda fig, image, layer, timesteps, encoding: redraw_raster(
                        fig, model, dataset, image, layer, timesteps, encoding, run((image, encoding), timesteps)))


def encodings_data(x, timesteps=32, seed=0):
    """One image under the three encodings (chapter 6): {encoding: (T, pixels) array}. "current" is the
    pixel value at every step (an analog input, no spikes); "spikes" and "poisson" are 0/1 trains."""
    x = x.reshape(1, -1).float()
    return {"current": x.expand(timesteps, -1).numpy(),
            "spikes": encode(x, timesteps, "spikes")[:, 0].float().numpy(),
            "poisson": encode(x, timesteps, "poisson", seed)[:, 0].float().numpy()}


def encodings_figure(x, timesteps=32, seed=0):
    """Matplotlib figure: the input of one image over T steps under each encoding, pixels as rows."""
    data = encodings_data(x, timesteps, seed)
    figure, axes = small_multiples(1, 3, width=3.6, height=3.4)
    for ax, (name, values) in zip(axes[0], data.items()):
        image = ax.imshow(values.T, aspect="auto", cmap="gray_r", vmin=0, vmax=1, interpolation="nearest",
                          extent=(0.5, timesteps + 0.5, values.shape[1] - 0.5, -0.5))
        what = "input current" if name == "current" else f"{int(values.sum())} spikes"
        ax.set(title=f"{name}: {what}", xlabel="time step t", ylabel="pixel")
    figure.colorbar(image, ax=axes[0, 2], label="input (spike = 1)")
    figure.suptitle(f"One image, three input encodings, T = {timesteps}")
    return figure
