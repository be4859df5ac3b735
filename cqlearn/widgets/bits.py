"""The weight-bits explorer (chapter 8): bits -> one layer's weights before and after rounding to n
bits, how far each layer's spike counts move, and the SNN's accuracy.

`bits_figure_data` is the update function (plain arrays, no browser); `bits_explorer` wires it to a
slider and a plotly FigureWidget, or draws `bits_small_multiples` in `static_mode()`.
`cq.analysis.sweep_weight_bits` gives the table of chapters 8 and 9.
"""
import numpy as np
import torch
from tqdm.auto import tqdm

from ..layers import WEIGHTED
from ..plots import small_multiples
from ..quant import quantize_tensor
from . import static_mode
from ._explorer import explorer, first_images, single_threaded, slider_style, trace


def _weight(snn, layer):
    """The weight tensor of spiking layer `layer`, or of the readout when layer == len(snn.layers)."""
    synapse = snn.readout if layer == len(snn.layers) else snn.layers[layer].synapse
    weighted = [m for m in synapse if isinstance(m, WEIGHTED)]
    if not weighted:
        raise ValueError(f"layer {layer} has no weights (it is a pooling layer); pick a Conv2d or Linear layer.")
    return weighted[0].weight.detach()


def weighted_layers(snn):
    """Indices of the spiking layers with weights, plus len(snn.layers) for the readout."""
    return [i for i, layer in enumerate(snn.layers) if layer.weighted is not None] + [
        len(snn.layers)]


def full_precision_run(snn, dataset, images=128):
    """snn.run on the first `images` images: the reference every bit width is compared with."""
    return snn.run(first_images(dataset, images, snn)[0])


def bits_runs(snn, dataset, bits=range(2, 13), images=128, readout=True, progress=True):
    """{n: snn.with_weight_bits(n, readout).run(...)} on the first `images` images of `dataset` for each
    bit width: the explorer simulates every width once, then moving the slider only reads (chapter 8)."""
    x = first_images(dataset, images, snn)[0]
    return {b: snn.with_weight_bits(b, readout=readout).run(x)
            for b in tqdm(bits, desc="weight bits", disable=not progress)}


@single_threaded
def bits_figure_data(snn, dataset, bits=8, layer=0, images=128, readout=True, reference=None, run=None):
    """What the bits explorer draws for one bit width (chapter 8).

    snn: a SpikingNetwork (full precision); its n-bit copy is snn.with_weight_bits(bits, readout).
    reference: full_precision_run(snn, dataset, images) when the caller has it already (the explorer
    runs it once); run: the n-bit network's run on those images, from bits_runs (default: simulated here).
    Returns a dict:
      weights, quantized   layer `layer`'s weights (flat) in units of their max |w|, before and after
      values, counts       the distinct quantized values and how many weights take each;  step  2**(1 - bits)
      layer_error          per spiking layer, mean |count_nbit - count_full| in spikes per neuron
      accuracy, reference  accuracy of the n-bit and the full-precision SNN on the first `images` images
      agreement            fraction of those images on which both predict the same class;  title
    """
    w = _weight(snn, layer).cpu()
    q, scale = quantize_tensor(w, int(bits))
    x, y = first_images(dataset, images, snn)
    full = snn.run(x) if reference is None else reference
    short = snn.with_weight_bits(int(bits), readout=readout).run(x) if run is None else run
    for what, given in (("reference", full), ("run", short)):
        if given.output.shape[0] != len(y):
            raise ValueError(f"{what} holds {given.output.shape[0]} images, but images={images} gives {len(y)}; "
                             "make it with full_precision_run or bits_runs(snn, dataset, images=images).")
    errors = np.array([(a - b).abs().mean().item() for a, b in zip(full.counts, short.counts)])
    p_full, p_low = full.output.argmax(1).cpu(), short.output.argmax(1).cpu()
    accuracy, full_accuracy = (p_low == y).float().mean().item(), (p_full == y).float().mean().item()
    values, counts = torch.unique(q, return_counts=True)
    name = "the readout" if layer == len(snn.layers) else f"layer {layer}"
    return {
        "weights": (w / scale).flatten().numpy(), "quantized": q.flatten().numpy(), "values": values.numpy(),
        "counts": counts.numpy(),
        "step": 2.0 ** (1 - bits), "layer_error": errors, "accuracy": accuracy, "reference": full_accuracy,
        "agreement": (p_low == p_full).float().mean().item(),
        "title": (f"{bits}-bit weights: {name} uses {len(values)} of {2 ** bits} values; SNN "
                  f"{100 * accuracy:.1f} % (full precision {100 * full_accuracy:.1f} %, {len(y)} images)"),
    }


def bits_figure():
    """An empty plotly FigureWidget: weight histograms and spike-count change per layer."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.12,
                                        subplot_titles=("weights in units of max |w|",
                                                        "spike counts moved by rounding")))
    fig.add_histogram(name="full precision", meta="full", marker_color="#aaaaaa", xbins={"size": 0.01}, row=1, col=1)
    fig.add_bar(name="n-bit values", meta="n-bit", marker_color="#1f77b4", opacity=0.8, row=1, col=1)
    fig.add_scatter(name="count error", meta="count error", mode="lines+markers", line={"color": "#d62728"}, showlegend=False,
                    row=1, col=2)
    fig.update_layout(height=400, margin={"t": 90, "l": 60, "r": 20, "b": 50}, barmode="overlay",
                      title={"x": 0.5, "font": {"size": 13}}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text="w / max|w|", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="number of weights", type="log", row=1, col=1)  # n-bit bars tower over bins
    fig.update_xaxes(title_text="spiking layer (depth)", dtick=1, row=1, col=2)
    fig.update_yaxes(title_text="mean |Δ count| per neuron", title_standoff=4, rangemode="tozero", row=1, col=2)
    return fig


def redraw_bits(fig, snn, dataset, bits, layer, images, readout, reference=None, run=None):
    """Write bits_figure_data(...) into the explorer's figure."""
    d = bits_figure_data(snn, dataset, bits, layer, images, readout, reference, run)
    full, short, line = trace(fig, "full"), trace(fig, "n-bit"), trace(fig, "count error")
    full.x = d["weights"]
    short.x, short.y, short.width = d["values"], d["counts"], min(d["step"] / 2, 0.02)
    line.x, line.y = np.arange(len(d["layer_error"])), d["layer_error"]
    fig.layout.title.text = d["title"]


def bits_small_multiples(snn, dataset, bits=(2, 3, 4, 6, 8), layer=0, images=128, readout=True):
    """Matplotlib figure: one column per bit width, the layer's weight histogram (top) and the spike-count
    change per layer (bottom)."""
    figure, axes = small_multiples(2, len(bits), width=2.9, height=2.5)
    reference = full_precision_run(snn, dataset, images)
    data = [bits_figure_data(snn, dataset, b, layer, images, readout, reference) for b in bits]
    top = max(d["layer_error"].max() for d in data) * 1.1 or 1.0
    for col, (b, d) in enumerate(zip(bits, data)):
        axes[0, col].hist(d["weights"], bins=np.linspace(-1, 1, 201), color="0.7", label="full precision")
        axes[0, col].bar(d["values"], d["counts"], width=min(d["step"] / 2, 0.02), color="C0", alpha=0.8,
                         label="n-bit values")
        axes[0, col].set(title=f"{b} bits: SNN {100 * d['accuracy']:.1f} %", xlabel="w / max|w|",
                         ylabel="number of weights", yscale="log")
        axes[1, col].plot(d["layer_error"], "o-", color="C3")
        axes[1, col].set(title="count change", xlabel="spiking layer", ylabel="|Δ count| (spikes)", ylim=(0, top))
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(f"n-bit weights without retraining (weights of layer {layer}; full precision "
                    f"{100 * data[0]['reference']:.1f} %, {len(dataset.labels[:images])} images)")
    return figure


def bits_explorer(snn, dataset, bits=8, layer=0, images=128, readout=True):
    """Chapter 8's explorer: a bits slider (and the layer whose weights are shown) drive the weight
    histogram before and after rounding, the spike-count change per layer and the accuracy in the
    title. In static_mode() returns a matplotlib small multiple over bit widths instead."""
    if static_mode():
        return bits_small_multiples(snn, dataset, layer=layer, images=images, readout=readout)
    import ipywidgets as w

    widths = range(2, 13)
    controls = {
        "bits": w.IntSlider(value=bits, min=widths[0], max=widths[-1], description="weight bits n", **slider_style()),
        "layer": w.Dropdown(value=layer, options=[(str(i) if i < len(snn.layers) else "readout", i)
                                                  for i in weighted_layers(snn)], description="weights of layer",
                            style={"description_width": "11em"}),
    }
    reference = full_precision_run(snn, dataset, images)  # every setting simulated once, here
    runs = bits_runs(snn, dataset, widths, images, readout)
    return explorer(controls, bits_figure(),
                    lambda fig, bits, layer: redraw_bits(fig, snn, dataset, bits, layer, images, readout, reference,
                                                         runs[bits]))
