"""Quantizing activations (chapter 2): the CQ staircase, floor against round, the straight-through
estimator, and accuracy against the number of levels L.

`quantization_figure_data` is the update function of the levels explorer: for L levels it returns the
staircase and the histogram of the quantization error clamp(x) - CQ(x) over the pre-activations of a
trained layer.
"""
import numpy as np
import torch

from .. import plots
from ..analysis import activations, sweep_levels
from ..plots import small_multiples
from ..quant import MODES, check_levels, check_mode, error_bounds, quantization_error, quantize, ste_gradient
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace
from .clamp import sample_values


def ste_figure(levels=4, mode="floor"):
    """Matplotlib figure: CQ's forward staircase and its true derivative against the straight-through
    gradient that training uses."""
    figure, axes = small_multiples(1, 2, width=4.2, height=3.2)
    left, right = axes[0]
    x = torch.linspace(-0.5, 1.5, 2001)
    left.plot(x, quantize(x, levels, mode), color="C0", lw=2, label=f"CQ, L = {levels}")
    left.plot(x, x.clamp(0, 1), color="0.5", ls="--", lw=1, label="clamp")
    left.set(title="Forward: the staircase", xlabel="pre-activation x", ylabel="activation y")
    left.legend(loc="upper left", fontsize=8)
    jumps = torch.arange(1, levels + 1) / levels - (0.5 / levels if mode == "round" else 0.0)
    right.plot(x, torch.zeros_like(x), color="0.5", lw=1.5, label="true derivative (0, spikes at the jumps)")
    right.vlines(jumps, 0, 1.4, color="0.5", lw=0.8, ls=":")
    right.plot(x, ste_gradient(x, levels, mode), color="C3", lw=2, label="straight-through gradient")
    right.set(title="Backward: straight-through", xlabel="pre-activation x", ylabel="dy/dx used by training",
              ylim=(-0.1, 1.6))
    right.legend(loc="upper left", fontsize=8)
    figure.suptitle(f"CQ with L = {levels} levels ({mode})")
    return figure


def accuracy_vs_levels(curves, reference=None, ax=None, title="Accuracy against levels L (no retraining)"):
    """curves: {label: {L: accuracy}}; reference: a horizontal line, e.g. the network's own accuracy."""
    ax = plots.accuracy_curves(curves, "levels L", reference, ax=ax, title=title)
    ax.set_ylim(0, 102)
    return ax


def quantization_title(levels, mode, mean_error, accuracy=None):
    bound = "1/L" if mode == "floor" else "1/(2L)"
    limit = 1 / levels if mode == "floor" else 0.5 / levels
    text = f"L = {levels} ({mode}): |error| ≤ {bound} = {limit:.3f}, mean |error| {mean_error:.3f}"
    if accuracy is not None:
        text += f", accuracy {100 * accuracy:.1f} %"
    return text


@single_threaded
def quantization_figure_data(levels, mode="floor", values=None, accuracies=None, bins=40):
    """What the levels explorer draws for L = `levels` (chapter 2).

    values: pre-activations of a trained layer (any shape; None skips the histogram).
    accuracies: {mode: {L: accuracy}}, one sweep_levels per mode.
    Returns a dict: x, y (the staircase on a grid), clamp; edges, centers, fraction, width (histogram
    of L * (clamp(x) - CQ(x)), the error in steps of 1/L, over the values inside [0, 1], as a fraction
    of them, in `bins` bins across one step: [0, 1) for floor, [-1/2, 1/2) for round, whatever L is);
    mean_error, max_error (of |error|, in activation units: they shrink as 1/L); accuracy; title."""
    levels, mode = check_levels(levels), check_mode(mode)
    x = torch.linspace(-0.25, 1.25, 1201)
    out = {"x": x.numpy(), "y": quantize(x, levels, mode).numpy(), "clamp": x.clamp(0, 1).numpy(),
           "edges": np.zeros(0), "centers": np.zeros(0), "fraction": np.zeros(0), "width": 0.0,
           "mean_error": float("nan"),
           "max_error": float("nan")}
    if values is not None:
        error = quantization_error(values, levels, mode).double().numpy()
        lo, hi = (levels * bound for bound in error_bounds(levels, mode))
        # clip: the staircase counts x within TOLERANCE of a level as on it (cqlearn.quant.TOLERANCE)
        counts, edges = np.histogram(np.clip(levels * error, lo, hi), bins=np.linspace(lo, hi, bins + 1))
        out.update(edges=edges, centers=(edges[:-1] + edges[1:]) / 2, fraction=counts / max(1, error.size),
                   width=edges[1] - edges[0], mean_error=float(np.abs(error).mean()) if error.size else 0.0,
                   max_error=float(np.abs(error).max()) if error.size else 0.0)
    out["accuracy"] = (accuracies or {}).get(mode, {}).get(levels)
    out["title"] = quantization_title(levels, mode, out["mean_error"], out["accuracy"])
    return out


def quantization_figure(accuracies=None):
    """Empty FigureWidget: the staircase, the error histogram, accuracy against L."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(
        rows=1, cols=3, horizontal_spacing=0.13,  # room for each panel's y-axis title
        subplot_titles=("CQ staircase", "error clamp(x) − CQ(x)", "accuracy, no retraining")))
    # every trace is named and created with its data's type, so no legend entry reads "trace N"
    fig.add_scatter(name="clamp(x)", meta="clamp", mode="lines", x=[], y=[], line={"color": "gray", "dash": "dash"},
                    row=1, col=1)
    fig.add_scatter(name="CQ(x)", meta="cq", mode="lines", x=[], y=[], line={"color": "#1f77b4", "width": 3},
                    row=1, col=1)
    # the histogram as a filled outline: thin bars would render faintly
    fig.add_scatter(name="error", meta="error", showlegend=False, mode="lines", x=[], y=[], fill="tozeroy",
                    line={"color": "#1f77b4"}, row=1, col=2)
    for mode, color in zip(MODES, ("black", "darkorange")):
        points = sorted((accuracies or {}).get(mode, {}))
        fig.add_scatter(name=f"accuracy, {mode}", meta=f"accuracy {mode}", mode="lines+markers", x=points,
                        line={"color": color}, y=[100 * accuracies[mode][L] for L in points], row=1, col=3)
    fig.add_scatter(name="this L", meta="this L", mode="markers", x=[], y=[], marker={"color": "red", "size": 12},
                    row=1, col=3)
    fig.update_layout(height=420, bargap=0, margin={"t": 90, "l": 60, "r": 20, "b": 60}, title={"x": 0.5},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title_text="pre-activation x", row=1, col=1)
    fig.update_yaxes(title_text="activation y", title_standoff=2, row=1, col=1)
    fig.update_xaxes(title_text="error in steps of 1/L", range=[-0.55, 1.05], row=1, col=2)
    fig.update_yaxes(title_text="fraction of activations", title_standoff=2, row=1, col=2)
    ticks = sorted({L for points in (accuracies or {}).values() for L in points})
    fig.update_xaxes(title_text="levels L", type="log", tickvals=ticks or None, row=1, col=3)
    fig.update_yaxes(title_text="test accuracy (%)", range=[0, 102], row=1, col=3)
    return fig


def redraw_quantization(fig, levels, mode, values=None, accuracies=None):
    d = quantization_figure_data(levels, mode, values, accuracies)
    clamp, cq, bars, marker = (trace(fig, k) for k in ("clamp", "cq", "error", "this L"))
    clamp.x, clamp.y, cq.x, cq.y = d["x"], d["clamp"], d["x"], d["y"]
    bars.x = np.repeat(d["edges"], 2)
    bars.y = np.concatenate([[0.0], np.repeat(d["fraction"], 2), [0.0]]) if len(d["edges"]) else []
    marker.x, marker.y = ([levels], [100 * d["accuracy"]]) if d["accuracy"] is not None else ([], [])
    fig.layout.title.text = d["title"]


def quantization_small_multiples(values=None, accuracies=None, levels=(2, 4, 16), mode="floor"):
    """Matplotlib figure: the staircase (top) and the error histogram (bottom) for a few L."""
    figure, axes = small_multiples(2, len(levels), width=3.4, height=2.7)
    for k, L in enumerate(levels):
        d = quantization_figure_data(L, mode, values, accuracies)
        top, bottom = axes[0, k], axes[1, k]
        top.plot(d["x"], d["clamp"], color="0.5", ls="--", lw=1)
        top.plot(d["x"], d["y"], color="C0", lw=2)
        head = f"L = {L}" + (f", accuracy {100 * d['accuracy']:.1f} %" if d["accuracy"] is not None else "")
        top.set(title=head, xlabel="pre-activation x", ylabel="activation y")
        bottom.bar(d["centers"], d["fraction"], width=d["width"], color="C0")
        bottom.set(title=f"mean |error| {d['mean_error']:.3f}", xlabel="error clamp(x) − CQ(x), steps of 1/L",
                   ylabel="fraction of activations in [0, 1]", xlim=(-0.55, 1.05))
        for ax in (top, bottom):
            ax.title.set_fontsize(9)
    figure.suptitle(f"CQ staircase and quantization error of a trained layer ({mode})")
    return figure


def quantization_explorer(model, dataset, levels=16, mode="floor", layer=0, sweep=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
                          images=256, accuracies=None, progress=True):
    """Chapter 2's explorer: levels L (first slider) and floor/round drive the staircase, the
    histogram of clamp(x) - CQ(x) over layer `layer`'s pre-activations in the trained `model`
    (first `images` of `dataset`), and the test accuracy on `dataset` with L levels and no
    retraining. accuracies: {mode: sweep_levels(...)} already computed (else computed here over
    `sweep`). Static: small multiples."""
    x = dataset.images[:images]
    values = sample_values(activations(model, x)[layer])
    if accuracies is None:
        accuracies = {m: sweep_levels(model, dataset, sweep, m, progress) for m in MODES}
    sweep = sorted(set(accuracies.get("floor", {})) | set(accuracies.get("round", {}))) or list(sweep)
    if static_mode():
        return quantization_small_multiples(values, accuracies, mode=mode,
                                            levels=[L for L in (2, 4, 16) if L in sweep] or sweep[:3])
    import ipywidgets as w

    def redraw(fig, levels, mode):
        redraw_quantization(fig, levels, mode, values, accuracies)

    controls = {
        "levels": w.SelectionSlider(value=levels, options=list(sweep), description="levels L", **slider_style()),
        "mode": w.ToggleButtons(value=mode, options=list(MODES), description="rounding",
                                style={"description_width": "11em"}),
    }
    return explorer(controls, quantization_figure(accuracies), redraw)
