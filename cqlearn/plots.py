"""Matplotlib figures of the method (chapters 2, 3, 6 and 7). Each function draws into `ax` (a new
figure when None) and returns the axes, so figures can be composed and saved."""
import matplotlib.pyplot as plt
import torch

from .quant import staircase as cq_staircase


def _axes(ax, figsize=(6, 3.5)):
    return plt.subplots(figsize=figsize, constrained_layout=True)[1] if ax is None else ax


def staircase(levels=16, mode="floor", ax=None):
    """The CQ activation against ReLU and clamp, for inputs from -0.25 to 1.25 (chapter 2)."""
    ax = _axes(ax)
    x = torch.linspace(-0.25, 1.25, 1501)
    ax.plot(x, x.clamp(min=0), color="0.7", lw=1, label="ReLU")
    ax.plot(x, x.clamp(0, 1), color="0.4", lw=1, ls="--", label="clamp")
    ax.plot(x, cq_staircase(x, levels, mode), color="C0", lw=2, label=f"CQ, {levels} levels ({mode})")
    ax.set(title=f"CQ activation, levels = {levels}", xlabel="pre-activation x", ylabel="activation y",
           ylim=(-0.1, 1.3))
    ax.legend(loc="upper left")
    return ax


def raster(spikes, ax=None, max_neurons=200, title="Spike raster"):
    """Dots at (step, neuron) for every spike. spikes: (T, ...) for one image; neurons are flattened
    and at most max_neurons of the most active are shown (chapter 6)."""
    ax = _axes(ax)
    s = spikes.reshape(spikes.shape[0], -1).bool()
    if s.shape[1] > max_neurons:
        keep = s.sum(0).argsort(descending=True)[:max_neurons].sort().values
        s = s[:, keep]
    t, n = torch.nonzero(s, as_tuple=True)
    ax.scatter(t + 1, n, s=4, marker="|", color="k", linewidths=0.8)
    ax.set(title=title, xlabel="time step t", ylabel="neuron", xlim=(0.5, spikes.shape[0] + 0.5),
           ylim=(-1, s.shape[1]))
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


def accuracy_curves(curves, xlabel, reference=None, reference_label="reference", ax=None, title=None):
    """curves: {label: {x: accuracy}} on a log2 x axis with a tick at every x, plus an optional
    horizontal reference line; accuracies in [0, 1], drawn in %."""
    ax = _axes(ax)
    for label, points in curves.items():
        xs = sorted(points)
        ax.plot(xs, [100 * points[x] for x in xs], "o-", label=label)
    if reference is not None:
        ax.axhline(100 * reference, color="k", ls="--", lw=1, label=f"{reference_label} {100 * reference:.2f} %")
    ax.set_xscale("log", base=2)
    ticks = sorted({x for points in curves.values() for x in points})
    ax.set_xticks(ticks, [str(x) for x in ticks])
    ax.minorticks_off()
    ax.set(title=title, xlabel=xlabel, ylabel="test accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def accuracy_vs_timesteps(curves, reference=None, ax=None, title="SNN accuracy against time steps"):
    """curves: {label: {T: accuracy}}; reference: the CQ-CNN accuracy as a horizontal line (chapter 7)."""
    return accuracy_curves(curves, "time steps T", reference, "CQ-CNN", ax, title)
