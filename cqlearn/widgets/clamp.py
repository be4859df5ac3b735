"""Why clamp ReLU (chapter 1): firing rates live in [0, 1], ReLU activations do not.

`clamp_figure_data` is the update function of the clamp-ceiling explorer: for a ceiling c every
activation becomes min(max(x, 0), c), and the figure shows which activations of a trained ReLU
network c cuts off and what that costs in accuracy without retraining.
"""
import math

import numpy as np
import torch

from ..analysis import activations, sweep_ceilings
from ..neuron import constant_current_counts
from ..plots import small_multiples
from ..train import evaluate
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace


def rate_vs_current(timesteps=(4, 16), ax=None):
    """Firing rate N/T of an IF neuron (threshold 1) against a constant input current, next to ReLU:
    the rate never passes 1 spike per step (chapter 1)."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)[1]
    a = torch.linspace(-0.5, 2.0, 1001)
    ax.plot(a, a.clamp(min=0), color="0.6", lw=1.5, label="ReLU(a)")
    for k, T in enumerate(timesteps):
        rate = constant_current_counts(a, T) / T
        ax.step(a, rate, where="post", color=f"C{k}", lw=1.5, label=f"IF rate N/T, T = {T}")
    ax.axhline(1, color="r", ls="--", lw=1, label="one spike per step")
    ax.set(title="An IF neuron's rate saturates at 1 spike per step",
           xlabel="input current a (threshold units per step)", ylabel="rate (spikes per step)",
           ylim=(-0.1, 2.05))
    ax.legend(loc="upper left", fontsize=8)
    return ax


def sample_values(values, cap=30_000, seed=0):
    """Flat numpy copy of one layer's pre-activations, subsampled to at most `cap` values (below
    torch's 32768-element grain, so updates never wait for busy threads on a shared CPU)."""
    flat = values.flatten().numpy()
    if flat.size > cap:
        flat = np.random.default_rng(seed).choice(flat, cap, replace=False)
    return flat


def clamp_title(ceiling, layer, clipped, accuracy=None, reference=None):
    text = f"ceiling c = {ceiling:.2f}: {100 * clipped:.1f} % of layer {layer} activations clipped"
    if accuracy is not None:
        text += f", accuracy {100 * accuracy:.1f} %"
        if reference is not None:
            text += f" (ReLU {100 * reference:.1f} %)"
    return text


@single_threaded
def clamp_figure_data(ceiling, values, layer=0, accuracies=None, reference=None, bins=60):
    """What the clamp explorer draws for one ceiling c (chapter 1).

    values: pre-activations of one layer of a trained ReLU network (tensor or array, any shape).
    accuracies: {ceiling: accuracy} from sweep_ceilings (None where c is not in it); reference: the
    ReLU network's accuracy.
    Returns a dict: x, relu, clamped (the two activation functions); centers, counts (histogram of
    the positive ReLU outputs, as a fraction of all activations), over (True for bins above c);
    clipped (fraction of activations above c); lost (mean of max(x - c, 0)); accuracy; title."""
    v = values.flatten().numpy() if torch.is_tensor(values) else np.asarray(values).ravel()
    positive = v[v > 0]
    top = max(float(positive.max()) if positive.size else 1.0, ceiling)
    x = np.linspace(-0.5, max(4.0, 1.05 * top), 401)  # the activation panel spans every activation
    counts, edges = np.histogram(positive, bins=bins, range=(0.0, top))
    centers = (edges[:-1] + edges[1:]) / 2
    clipped = float(np.mean(v > ceiling))
    accuracy = (accuracies or {}).get(ceiling)
    return {
        "x": x, "relu": np.maximum(x, 0), "clamped": np.clip(x, 0, ceiling),
        "centers": centers, "counts": counts / v.size, "width": edges[1] - edges[0], "over": centers > ceiling,
        "clipped": clipped, "lost": float(np.maximum(v - ceiling, 0).mean()), "accuracy": accuracy,
        "title": clamp_title(ceiling, layer, clipped, accuracy, reference),
    }


def clamp_figure(accuracies=None, reference=None):
    """Empty FigureWidget: activation functions, histogram of ReLU outputs, accuracy against ceiling."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(
        rows=1, cols=3, horizontal_spacing=0.13,  # room for each panel's y-axis title
        subplot_titles=("activation", "ReLU outputs of the layer", "accuracy, no retraining")))
    fig.add_scatter(name="ReLU", meta="relu", mode="lines", line={"color": "gray"}, row=1, col=1)
    fig.add_scatter(name="clamp at c", meta="clamped", mode="lines", line={"color": "#1f77b4", "width": 3}, row=1, col=1)
    fig.add_bar(name="activations", meta="histogram", showlegend=False, row=1, col=2)
    fig.add_scatter(name="ceiling c", meta="ceiling", mode="lines", line={"color": "red", "dash": "dash"}, row=1, col=2)
    ceilings = sorted(accuracies or {})
    finite = [c for c in ceilings if math.isfinite(c)]
    fig.add_scatter(name="accuracy", meta="accuracy", mode="lines+markers", x=finite,
                    y=[100 * accuracies[c] for c in finite], line={"color": "black"}, row=1, col=3)
    fig.add_scatter(name="this ceiling", meta="this ceiling", mode="markers", marker={"color": "red", "size": 12},
                    row=1, col=3)
    if reference is not None and finite:
        fig.add_scatter(name="ReLU network", meta="reference", mode="lines", x=[finite[0], finite[-1]],
                        y=[100 * reference] * 2, line={"color": "gray", "dash": "dot"}, row=1, col=3)
    fig.update_layout(height=420, bargap=0, margin={"t": 90, "l": 60, "r": 20, "b": 60}, title={"x": 0.5},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text="pre-activation x", row=1, col=1)
    fig.update_yaxes(title_text="activation", title_standoff=2, row=1, col=1)
    fig.update_xaxes(title_text="ReLU output", row=1, col=2)
    fig.update_yaxes(title_text="fraction of activations", title_standoff=2, type="log", exponentformat="power",
                     row=1, col=2)
    fig.update_xaxes(title_text="ceiling c", row=1, col=3)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=3)
    return fig


def _explorer_state(model, dataset, ceilings, images, progress):
    x = dataset.images[:images] if hasattr(dataset, "images") else torch.stack([dataset[i][0] for i in range(images)])
    values = [sample_values(v) for v in activations(model, x)]
    accuracies = sweep_ceilings(model, dataset, ceilings, progress)
    return values, accuracies, evaluate(model, dataset)


def clamp_small_multiples(values, layer, accuracies, reference, ceilings=(0.5, 1.0, 2.0, 3.0)):
    """Matplotlib figure: one layer's ReLU outputs with the part each ceiling clips in red."""
    figure, axes = small_multiples(1, len(ceilings), width=3.3, height=2.9)
    for ax, c in zip(axes[0], ceilings):
        d = clamp_figure_data(c, values, layer, accuracies, reference)
        colors = np.where(d["over"], "tab:red", "tab:blue")
        ax.bar(d["centers"], d["counts"], width=d["width"], color=colors)
        ax.axvline(c, color="r", ls="--", lw=1)
        ax.set_yscale("log")
        title = f"c = {c:g}: {100 * d['clipped']:.1f} % clipped"
        if d["accuracy"] is not None:
            title += f"\naccuracy {100 * d['accuracy']:.1f} %"
        ax.set(title=title, xlabel="ReLU output", ylabel="fraction of activations")
        ax.title.set_fontsize(9)
    figure.suptitle(f"Clamping layer {layer} of the ReLU network at a ceiling c (red: clipped)")
    return figure


def clamp_explorer(model, dataset, ceiling=1.0, layer=0, images=256, ceilings=None, progress=True):
    """Chapter 1's explorer: the clamp ceiling c (first slider) and the layer of the trained ReLU
    network `model`; the figure shows the activation, which outputs c clips (over the first `images`
    of `dataset`), and the test accuracy on `dataset` with every activation clamped at c (no
    retraining), swept over `ceilings` (default 0.25, 0.5, ..., 3; the slider's steps).
    Static: small multiples."""
    ceilings = sorted(ceilings or [round(0.25 * k, 2) for k in range(1, 13)])
    values, accuracies, reference = _explorer_state(model, dataset, ceilings, images, progress)
    if static_mode():
        return clamp_small_multiples(values[layer], layer, accuracies, reference)
    import ipywidgets as w

    def redraw(fig, ceiling, layer):
        d = clamp_figure_data(ceiling, values[layer], layer, accuracies, reference)
        relu, clamped, bars, line = (trace(fig, k) for k in ("relu", "clamped", "histogram", "ceiling"))
        marker = trace(fig, "this ceiling")
        relu.x, relu.y, clamped.x, clamped.y = d["x"], d["relu"], d["x"], d["clamped"]
        bars.x, bars.y, bars.width = d["centers"], d["counts"], d["width"]
        bars.marker.color = np.where(d["over"], "crimson", "steelblue")
        line.x, line.y = [ceiling, ceiling], [float(d["counts"][d["counts"] > 0].min()), 1.0]
        marker.x, marker.y = ([ceiling], [100 * d["accuracy"]]) if d["accuracy"] is not None else ([], [])
        fig.layout.title.text = d["title"]

    controls = {
        "ceiling": w.SelectionSlider(value=ceiling, options=ceilings, description="clamp ceiling c",
                                     **slider_style()),
        "layer": w.IntSlider(value=layer, min=0, max=len(values) - 1, description="layer", **slider_style()),
    }
    return explorer(controls, clamp_figure(accuracies, reference), redraw)
