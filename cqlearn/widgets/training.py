"""CQ training (chapter 4): the training curves of the staged recipe plain -> clamp -> CQ, and an
explorer of what each stage does to the activations of each layer.

`stage_figure_data` is the update function of the explorer: the histogram of one layer's
activations after one stage, with the share above 1 and the number of distinct values.
"""
import numpy as np
import torch

from ..analysis import activations
from ..plots import small_multiples
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace

STAGES = ("plain", "clamp", "cq")
NAMES = {"plain": "plain (ReLU)", "clamp": "clamp", "cq": "CQ"}


def training_curves(stages, title="The staged recipe: plain → clamp → CQ"):
    """Matplotlib figure: training loss and test accuracy per epoch across the stages of
    `cq.staged(...)` (a dict stage -> (model, history)), one colour and a shaded band per stage."""
    figure, axes = small_multiples(1, 2, width=4.8, height=3.4)
    loss_ax, acc_ax = axes[0]
    start = 0
    for k, (name, (_, history)) in enumerate(stages.items()):
        epochs = np.arange(start + 1, start + len(history["loss"]) + 1)
        color = f"C{k}"
        loss_ax.plot(epochs, history["loss"], "o-", color=color, label=NAMES.get(name, name))
        if history["test_accuracy"]:
            acc_ax.plot(epochs, 100 * np.asarray(history["test_accuracy"]), "o-", color=color,
                        label=f"{NAMES.get(name, name)}: {100 * history['test_accuracy'][-1]:.1f} %")
        for ax in (loss_ax, acc_ax):
            ax.axvspan(start + 0.5, epochs[-1] + 0.5, color=color, alpha=0.08)
        start = epochs[-1]
    loss_ax.set(title="Training loss", xlabel="epoch (all stages)", ylabel="cross-entropy (nats)")
    acc_ax.set(title="Test accuracy", xlabel="epoch (all stages)", ylabel="test accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.legend(fontsize=8)
    figure.suptitle(title)
    return figure


def stage_activations(stages, x):
    """{stage: [activation outputs of every layer for the batch x]} for the models of cq.staged."""
    return {name: activations(model, x, where="output") for name, (model, _) in stages.items()}


def stage_title(stage, layer, above, distinct):
    many = f"{distinct} distinct values" if distinct <= 1000 else "more than 1000 distinct values"
    return f"{NAMES.get(stage, stage)}, layer {layer}: {100 * above:.1f} % of activations above 1, {many}"


@single_threaded
def stage_figure_data(stage, layer, acts, top=3.0, bin_width=1 / 64):
    """What the stage explorer draws (chapter 4). acts: stage_activations(...).

    Returns a dict: centers, fraction (histogram of the layer's activations over [0, top], the last
    bin holding everything above top), width, above (share of activations above 1), distinct (number
    of distinct values), zero (share exactly 0), title."""
    a = acts[stage][layer].flatten()
    edges = np.arange(0.0, top + bin_width, bin_width)
    counts, edges = np.histogram(a.clamp(max=top - bin_width / 2).numpy(), bins=edges)
    above = (a > 1).float().mean().item()
    distinct = int(torch.unique(a[:100_000]).numel()) if a.numel() else 0
    return {"centers": (edges[:-1] + edges[1:]) / 2, "fraction": counts / max(1, a.numel()), "width": bin_width,
            "above": above, "distinct": distinct, "zero": (a == 0).float().mean().item(),
            "title": stage_title(stage, layer, above, distinct)}


def stage_figure():
    import plotly.graph_objects as go

    fig = go.FigureWidget()
    fig.add_bar(name="activations", meta="histogram", marker={"color": "#1f77b4"})
    fig.add_scatter(name="1 spike per step", meta="one", mode="lines", x=[1, 1], y=[1e-6, 1], line={"color": "red", "dash": "dash"})
    fig.update_layout(height=380, bargap=0, margin={"t": 70, "l": 70, "r": 20, "b": 50}, title={"x": 0.5},
                      xaxis={"title": {"text": "activation (values above 3 in the last bin)"}, "range": [-0.06, 3.06]},
                      yaxis={"title": {"text": "fraction of activations"}, "type": "log", "exponentformat": "power"})
    return fig


def stage_small_multiples(acts, layer=0):
    figure, axes = small_multiples(1, len(acts), width=3.5, height=2.9)
    for ax, stage in zip(axes[0], acts):
        d = stage_figure_data(stage, layer, acts)
        ax.bar(d["centers"], d["fraction"], width=d["width"], color="C0")
        ax.axvline(1, color="r", ls="--", lw=0.8, alpha=0.7)
        ax.set_yscale("log")
        values = f"{d['distinct']} distinct values" if d["distinct"] <= 1000 else "> 1000 distinct values"
        ax.set(title=f"{NAMES.get(stage, stage)}: {100 * d['above']:.1f} % above 1\n{values}",
               xlabel="activation (> 3 in the last bin)", ylabel="fraction of activations", xlim=(-0.06, 3.06),
               ylim=(1e-5, 1))
        ax.title.set_fontsize(9)
    figure.suptitle(f"Layer {layer}'s activations after each stage of the recipe")
    return figure


def stage_explorer(stages, x, stage="plain", layer=0):
    """Chapter 4's explorer: pick a stage of the recipe and a layer (first slider) and see the layer's
    activation histogram: spread above 1 (plain), piled at 1 (clamp), on L + 1 values (CQ)."""
    acts = stage_activations(stages, x)
    if static_mode():
        return stage_small_multiples(acts, layer)
    import ipywidgets as w

    # every stage and layer once, here: moving a control then only redraws
    data = {(s, i): stage_figure_data(s, i, acts) for s in acts for i in range(len(acts[s]))}

    def redraw(fig, layer, stage):
        d = data[stage, layer]
        bars = trace(fig, "histogram")
        bars.x, bars.y, bars.width = d["centers"], d["fraction"], d["width"]
        fig.layout.title.text = d["title"]

    controls = {
        "layer": w.IntSlider(value=layer, min=0, max=len(acts[stage]) - 1, description="layer", **slider_style()),
        "stage": w.ToggleButtons(value=stage, options=[(NAMES[s], s) for s in acts], description="stage",
                                 style={"description_width": "11em"}),
    }
    return explorer(controls, stage_figure(), redraw)
