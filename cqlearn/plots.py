"""Matplotlib figures of the method (chapters 2, 3, 6 and 7). Each function draws into `ax` (a new
figure when None) and returns the axes, so figures can be composed and saved; the multi-panel ones
return their figure."""
import matplotlib.pyplot as plt
import numpy as np
import torch

from .quant import quantize

PLUS, MINUS = "#1f1f1f", "#d62728"  # +1 spikes black, -1 spikes red (chapter 11)


def _axes(ax, figsize=(6, 3.5)):
    return plt.subplots(figsize=figsize, constrained_layout=True)[1] if ax is None else ax


def small_multiples(rows, cols, width=3.4, height=2.6):
    """A matplotlib Figure with a rows x cols grid of axes (a 2-d array). The figure is made by pyplot,
    which sets up the notebook's inline display, and closed at once, so pyplot does not show it again
    at the end of the cell: a notebook shows it once, when it is the value of a cell."""
    figure = plt.figure(figsize=(width * cols, height * rows), layout="constrained")
    plt.close(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def staircase(levels=16, mode="floor", ax=None):
    """The CQ activation against ReLU and clamp, for inputs from -0.25 to 1.25 (chapter 2)."""
    ax = _axes(ax)
    x = torch.linspace(-0.25, 1.25, 1501)
    ax.plot(x, x.clamp(min=0), color="0.7", lw=1, label="ReLU")
    ax.plot(x, x.clamp(0, 1), color="0.4", lw=1, ls="--", label="clamp")
    ax.plot(x, quantize(x, levels, mode), color="C0", lw=2, label=f"CQ, {levels} levels ({mode})")
    ax.set(title=f"CQ activation, levels = {levels}", xlabel="pre-activation x", ylabel="activation y",
           ylim=(-0.1, 1.3))
    ax.legend(loc="upper left")
    return ax


def raster_neurons(spikes, max_neurons=64):
    """Which neurons a raster of one image shows (chapter 6): flat indices into spikes (T, ...), most
    active first. Silent neurons are left out. When more than max_neurons fire, they are picked in
    rounds, one neuron of each spike count present per round (lowest index first), so every rate
    present is shown about equally often; the busiest neurons alone would all fire every step."""
    counts = spikes.reshape(spikes.shape[0], -1).sum(0)
    firing = torch.nonzero(counts > 0).flatten()
    if len(firing) > max_neurons:
        grouped = firing[counts[firing].argsort(stable=True)]  # by count, index order inside a count
        _, group, sizes = torch.unique_consecutive(counts[grouped], return_inverse=True, return_counts=True)
        rank = torch.arange(len(grouped)) - (sizes.cumsum(0) - sizes)[group]  # place within its count
        top = int(counts.max())
        by_round = (rank * (top + 1) + top - counts[grouped]).argsort(stable=True)  # round, then busiest
        firing = grouped[by_round[:max_neurons]]
    return firing[counts[firing].argsort(descending=True, stable=True)]


def raster_points(spikes):
    """The raster of one image (chapter 6): (steps, neurons), the step (1..T) and flat neuron index of
    every spike of spikes (T, ...), in time order and, within a step, by neuron."""
    steps, neurons = torch.nonzero(spikes.reshape(spikes.shape[0], -1), as_tuple=True)
    return steps + 1, neurons


def raster(spikes, ax=None, max_neurons=64, title="Spike raster"):
    """Dots at (step, neuron) for every spike. spikes: (T, ...) for one image; neurons are flattened
    and at most max_neurons firing ones are shown, picked across the rates by `raster_neurons`
    (chapter 6)."""
    ax = _axes(ax)
    s = spikes.reshape(spikes.shape[0], -1).bool()
    shown = raster_neurons(s, max_neurons)
    t, n = raster_points(s[:, shown])
    ax.vlines(t, n - 0.35, n + 0.35, color="k", lw=0.8)  # 70 % of a row: the rows stay apart
    picked = "all firing neurons" if len(shown) == int(s.any(0).sum()) else "picked across the rates"
    ax.set(title=title, xlabel="time step t", ylabel=f"neuron ({len(shown)} of {s.shape[1]}: {picked})",
           xlim=(0.5, spikes.shape[0] + 0.5), ylim=(-0.5, max(len(shown), 1) - 0.5))
    return ax


def traces(membrane, spikes, neurons, threshold=1.0, ax=None, title="Membrane potential"):
    """Membrane potential of chosen neurons over time with the threshold and spike times marked.
    membrane, spikes: (T, ...) for one image; neurons: flat indices (chapter 6)."""
    ax = _axes(ax)
    v, s = membrane.reshape(membrane.shape[0], -1), spikes.reshape(spikes.shape[0], -1)
    t = torch.arange(1, v.shape[0] + 1)
    for k, i in enumerate(neurons):
        color = f"C{k % 10}"
        ax.step(t, v[:, i], where="post", color=color, lw=1.2, label=f"neuron {i}: {int(s[:, i].sum())} spikes")
        fired = s[:, i].bool()
        ax.plot(t[fired], torch.full((int(fired.sum()),), threshold * 1.08), "v", color=color, ms=5)
    ax.axhline(threshold, color="r", ls="--", lw=1, label=f"threshold θ = {threshold:g}")
    ax.set(title=title, xlabel="time step t", ylabel="membrane potential v (after reset)")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def activation_vs_rate(activation, rate, ax=None, title="CQ-CNN activation against SNN rate"):
    """Scatter of each neuron's CQ-CNN activation against its SNN firing rate (chapter 5)."""
    ax = _axes(ax, figsize=(4, 4))
    ax.scatter(activation.flatten(), rate.flatten(), s=6, alpha=0.3)
    ax.plot([0, 1], [0, 1], color="r", lw=1, label="rate = activation")
    ax.set(title=title, xlabel="CQ-CNN activation", ylabel="SNN rate (spikes / T)", xlim=(-0.05, 1.05),
           ylim=(-0.05, 1.05), aspect="equal")
    ax.legend(loc="upper left")
    return ax


def accuracy_curves(curves, xlabel, reference=None, reference_label="reference", ax=None, title=None, colors=None):
    """curves: {label: {x: accuracy}} on a log2 x axis with a tick at every x, plus an optional
    horizontal reference line; accuracies in [0, 1], drawn in %. colors: {label: color}, so that a
    network keeps its colour from figure to figure (default: matplotlib's cycle)."""
    ax = _axes(ax)
    for label, points in curves.items():
        xs = sorted(points)
        ax.plot(xs, [100 * points[x] for x in xs], "o-", label=label, color=(colors or {}).get(label))
    if reference is not None:
        ax.axhline(100 * reference, color="k", ls="--", lw=1, label=f"{reference_label} {100 * reference:.2f} %")
    ax.set_xscale("log", base=2)
    ticks = sorted({x for points in curves.values() for x in points})
    ax.set_xticks(ticks, [str(x) for x in ticks])
    ax.minorticks_off()
    ax.set(title=title, xlabel=xlabel, ylabel="test accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def accuracy_vs_timesteps(curves, reference=None, ax=None, title="SNN accuracy against time steps", colors=None):
    """curves: {label: {T: accuracy}}; reference: the CQ-CNN accuracy as a horizontal line (chapter 7)."""
    return accuracy_curves(curves, "time steps T", reference, "CQ-CNN", ax, title, colors)


def layer_errors(results, title="Spike counts against the CQ-CNN, per layer"):
    """Matplotlib figure: for each {label: analysis.classify_errors rows}, stacked bars per layer of the shares
    exact, too many and too few."""
    figure, axes = small_multiples(1, len(results), width=3.6, height=2.8)
    for ax, (label, rows) in zip(axes[0], results.items()):
        layer = [r["layer"] for r in rows]
        exact, many, few = (np.array([r[k] for r in rows]) for k in ("exact", "too_many", "too_few"))
        ax.bar(layer, exact, color="#1f77b4", label="exact")
        ax.bar(layer, many, bottom=exact, color=MINUS, label="too many")
        ax.bar(layer, few, bottom=exact + many, color="#ff7f0e", label="too few")
        ax.set(title=label, xlabel="spiking layer", ylabel="share of neurons", ylim=(0, 1.02), xticks=layer)
        ax.title.set_fontsize(9)
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return figure
