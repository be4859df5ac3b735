"""The time-step explorer (chapter 7): T and L -> how closely each spiking layer follows the CQ-CNN,
and both networks' accuracy; plus the two-input toy that shows where timing errors come from.

`timesteps_figure_data` is the update function (plain numbers, no browser); `timesteps_explorer` wires
it to sliders and a plotly FigureWidget, or draws `timesteps_small_multiples` in `static_mode()`.
`timing_toy` / `timing_toy_figure` step one IF neuron fed by an excitatory and an inhibitory input.
"""
import numpy as np
import torch

from ..analysis import agreement_at, spike_history
from ..conversion import convert
from ..fold import fold_batchnorm
from ..neuron import simulate
from ..plots import small_multiples
from ..quant import cq_config, to_cq
from . import static_mode
from ._explorer import explorer, first_images, single_threaded, slider_style, trace

ORDERS = ("positive first", "interleaved", "negative first")


def timesteps_history(model, dataset, encoding="current", images=64, max_timesteps=64):
    """The SNN of `model` run once to max_timesteps on the first `images` images of `dataset`
    (cq.analysis.spike_history), with their labels: the explorer reads every T and every L from it, since
    the SNN depends on neither (chapter 7)."""
    x, y = first_images(dataset, images, model)
    return {"steps": spike_history(convert(model, int(max_timesteps), encoding), x), "labels": y, "encoding": encoding,
            "folded": fold_batchnorm(model)}  # BatchNorm folded once: each L then copies a smaller network


@single_threaded
def timesteps_figure_data(model, dataset, timesteps=16, levels=16, encoding="current", images=64, history=None):
    """What the time-step explorer draws for one T and L (chapter 7): the CQ-CNN `model` given `levels`
    levels (cq.to_cq: same weights, no retraining) against its SNN after T steps, on the first `images`
    images of `dataset`.

    history: timesteps_history(model, dataset, encoding, images, T_max >= timesteps) of this `model`, which
    the explorer makes once, so that an update only reads it (default: simulated here, to T).
    Returns a dict:
      layer               0, 1, ... (depth)
      exact               fraction of spike counts equal to a * T, per layer
      error_levels        mean |count / T - a| per layer, in units of one CQ level (1 / L)
      cnn, snn            accuracies on the batch;  agreement  fraction of images with the same class
      title
    """
    timesteps = int(timesteps)
    history = history or timesteps_history(model, dataset, encoding, images, timesteps)
    if history["encoding"] != encoding or timesteps not in history["steps"]:
        raise ValueError(f"history holds the {history['encoding']} encoding and T <= {max(history['steps'])}; make it "
                         f"with timesteps_history(model, dataset, encoding={encoding!r}, max_timesteps>={timesteps}).")
    cnn = to_cq(history["folded"], levels, cq_config(model).mode)
    d, y = agreement_at(cnn, history["steps"][timesteps]), history["labels"]
    acc = lambda p: (p == y).float().mean().item()
    exact = d["exact"].numpy()
    error = d["mae_spikes"].numpy() / timesteps * levels
    return {
        "layer": np.arange(len(exact)), "exact": exact, "error_levels": error,
        "cnn": acc(d["cnn"]), "snn": acc(d["snn"]), "agreement": (d["cnn"] == d["snn"]).float().mean().item(),
        "title": (f"L = {levels}, T = {timesteps}: CQ-CNN {100 * acc(d['cnn']):.1f} %, SNN {100 * acc(d['snn']):.1f} %"
                  f" ({len(y)} images); {100 * exact.mean():.0f} % of spike counts exact"),
    }


def timesteps_figure():
    """An empty plotly FigureWidget: exact counts and rate error against depth."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=(
        "spike counts equal to a·T", "mean rate error |N/T − a|")))
    fig.add_bar(name="exact counts", meta="exact", marker_color="#1f77b4", row=1, col=1)
    fig.add_scatter(name="rate error", meta="error", mode="lines+markers", line={"color": "#d62728"}, row=1, col=2)
    fig.update_layout(height=380, margin={"t": 90, "l": 60, "r": 20, "b": 50}, title={"x": 0.5, "font": {"size": 13}},
                      showlegend=False)
    fig.update_xaxes(title_text="spiking layer (depth)", dtick=1)
    fig.update_yaxes(title_text="fraction of neurons", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="error (CQ levels, 1/L)", rangemode="tozero", row=1, col=2)
    return fig


def redraw_timesteps(fig, model, dataset, timesteps, levels, encoding, images, history=None):
    """Write timesteps_figure_data(...) into the explorer's figure."""
    d = timesteps_figure_data(model, dataset, timesteps, levels, encoding, images, history)
    bars, line = trace(fig, "exact"), trace(fig, "error")
    bars.x, bars.y = d["layer"], d["exact"]
    line.x, line.y = d["layer"], d["error_levels"]
    fig.layout.title.text = d["title"]


def timesteps_small_multiples(model, dataset, timesteps=(4, 8, 16, 32, 64), levels=16, encoding="current", images=64):
    """Matplotlib figure: exact counts (top) and rate error (bottom) against depth, one column per T."""
    figure, axes = small_multiples(2, len(timesteps), width=2.8, height=2.6)
    history = timesteps_history(model, dataset, encoding, images, max(timesteps))  # one simulation
    data = [timesteps_figure_data(model, dataset, T, levels, encoding, images, history) for T in timesteps]
    top = 1.1 * max(d["error_levels"].max() for d in data) or 1.0
    for col, (T, d) in enumerate(zip(timesteps, data)):
        axes[0, col].bar(d["layer"], d["exact"], color="C0")
        axes[0, col].set(title=f"T = {T}: SNN {100 * d['snn']:.1f} %", xlabel="spiking layer",
                         ylabel="fraction exact", ylim=(0, 1.05))
        axes[1, col].plot(d["layer"], d["error_levels"], "o-", color="C3")
        axes[1, col].set(title="rate error", xlabel="spiking layer", ylabel="error (levels 1/L)", ylim=(0, top))
    figure.suptitle(f"CQ-CNN with L = {levels} levels ({100 * d['cnn']:.1f} %) as an SNN, {encoding} encoding, "
                    f"{images} images")
    return figure


def timesteps_explorer(model, dataset, timesteps=16, levels=16, encoding="current", images=64, max_timesteps=64):
    """Chapter 7's explorer: T and L sliders drive the per-layer agreement between the CQ-CNN (with L
    levels, same weights) and its SNN (T steps), and both accuracies in the title. The SNN is simulated
    once, to max_timesteps: it is the same for every L, and its first T steps are the run to T, so
    moving either slider only compares a stored row with the CQ-CNN. In static_mode() returns a
    matplotlib small multiple over T instead."""
    if static_mode():
        return timesteps_small_multiples(model, dataset, levels=levels, encoding=encoding, images=images)
    import ipywidgets as w

    history = timesteps_history(model, dataset, encoding, images, max(max_timesteps, timesteps))
    controls = {
        "timesteps": w.IntSlider(value=timesteps, min=1, max=max(max_timesteps, timesteps), description="time steps T",
                                 **slider_style()),
        "levels": w.IntSlider(value=levels, min=1, max=64, description="levels L", **slider_style()),
    }
    return explorer(controls, timesteps_figure(),
                    lambda fig, timesteps, levels: redraw_timesteps(fig, model, dataset, timesteps, levels, encoding,
                                                                    images, history))


def timing_toy(timesteps=16, order="positive first", weight=0.5, threshold=1.0):
    """One IF neuron with two inputs, weights +weight and -weight, each firing T/2 spikes (chapter 7).

    The CNN sees equal rates and computes clamp(weight * r - weight * r) = 0: no spikes. The SNN sees
    the spikes in `order`: "positive first" (all excitatory spikes, then all inhibitory ones) fires
    before the inhibition arrives and cannot take those spikes back; "interleaved" and "negative
    first" stay silent. Returns a dict of numpy arrays: t, positive, negative (input trains),
    current, membrane (after reset), spikes, count, and expected (the CNN's count, 0)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
    steps = np.arange(timesteps)
    n = 2 * (timesteps // 2)  # an even number of input spikes: n / 2 from each input
    if order == "interleaved":
        positive = (steps < n) & (steps % 2 == 0)
    elif order == "positive first":
        positive = steps < n // 2
    else:
        positive = (steps >= n // 2) & (steps < n)
    negative = (steps < n) & ~positive
    current = torch.tensor(weight * (positive.astype(float) - negative.astype(float)))
    run = simulate(current, threshold=threshold)
    spikes = run.spikes.numpy()
    return {"t": np.arange(1, timesteps + 1), "positive": positive, "negative": negative,
            "current": current.numpy(), "membrane": run.after.numpy(), "spikes": spikes,
            "count": int(spikes.sum()), "expected": 0, "order": order, "threshold": threshold}


def timing_toy_figure(timesteps=16, weight=0.5):
    """Matplotlib figure: the toy neuron's inputs and membrane potential for each order of arrival."""
    figure, axes = small_multiples(2, len(ORDERS), width=3.4, height=2.4)
    for col, order in enumerate(ORDERS):
        d = timing_toy(timesteps, order, weight)
        top, bottom = axes[0, col], axes[1, col]
        top.eventplot([d["t"][d["positive"]], d["t"][d["negative"]]], colors=["C2", "C3"], lineoffsets=[1, 0])
        top.set(title=order, xlabel="time step t", yticks=[0, 1], yticklabels=[f"−{weight:g}", f"+{weight:g}"],
                ylabel="input (weight)", xlim=(0.5, timesteps + 0.5))
        bottom.step(d["t"], d["membrane"], where="post", color="C0")
        bottom.plot(d["t"][d["spikes"]], np.full(d["count"], 1.05 * d["threshold"]), "v", color="C0")
        bottom.axhline(d["threshold"], color="r", ls="--", lw=1)
        bottom.set(title=f"{d['count']} spikes (the CNN says {d['expected']})", xlabel="time step t",
                   ylabel="membrane v (after reset)", xlim=(0.5, timesteps + 0.5))
    figure.suptitle(f"Equal excitatory and inhibitory rates, T = {timesteps}: only the order of arrival differs")
    return figure
