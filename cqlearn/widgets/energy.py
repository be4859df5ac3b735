"""The energy explorer (chapter 10): T -> synaptic operations against the CNN's multiply-accumulates
per layer, the sparsity of each layer, and the energy estimate of `cqlearn.energy`.

`energy_figure_data` is the update function (plain arrays, no browser); `energy_explorer` wires it to
a slider and a plotly FigureWidget, or draws `energy_small_multiples` in `static_mode()`.
"""
import numpy as np

from .. import energy
from ..conversion import convert
from ..plots import small_multiples
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace


def energy_sweep(model, dataset, encoding="spikes", images=32, max_timesteps=128):
    """cqlearn.energy.count_every_timestep's rows for every T <= max_timesteps on the first `images`
    images of `dataset`, from one simulation (chapter 10)."""
    return energy.count_every_timestep(convert(model, int(max_timesteps), encoding), dataset.images[:images])


@single_threaded
def energy_figure_data(model, dataset, timesteps=16, encoding="spikes", images=32, sweep=None):
    """What the energy explorer draws for one T (chapter 10), per image, averaged over the first
    `images` images of `dataset`. sweep: energy_sweep(model, dataset, encoding, images, T_max >= T),
    which the explorer keeps, so that moving T reads a row (default: simulated here). Returns a dict:
      names          one label per layer ("0 Conv2d 1->32", ..., "readout Linear 256->10")
      macs           CNN multiply-accumulates plus pooling additions, per layer
      synops         SNN synaptic operations (additions) plus first-layer MACs under "current"
      sparsity       fraction of silent neuron-steps per spiking layer
      cnn_uj, snn_uj energy per image in microjoules (Horowitz 2014, 45 nm);  ratio  cnn / snn
      rows           cqlearn.energy.count's rows;  title
    """
    if sweep is not None and len(sweep) < timesteps:
        raise ValueError(f"sweep holds T <= {len(sweep)}; make it with energy_sweep(..., max_timesteps>={timesteps}).")
    rows = (sweep or energy_sweep(model, dataset, encoding, images, timesteps))[int(timesteps) - 1]
    total = energy.energy(rows)
    ratio = total["ratio"]
    verdict = f"{ratio:.2f}× less than the CNN" if ratio >= 1 else f"{1 / ratio:.2f}× more than the CNN"
    return {
        "names": [f"{r['layer']} {r['name']}" for r in rows],
        "macs": np.array([r["macs"] + r["cnn_adds"] for r in rows], dtype=float),
        "synops": np.array([r["synops"] + r["snn_macs"] for r in rows], dtype=float),
        "sparsity": np.array([r["sparsity"] for r in rows if "sparsity" in r]),
        "cnn_uj": total["cnn"] / 1e6, "snn_uj": total["snn"] / 1e6, "ratio": ratio, "rows": rows,
        "title": (f"T = {timesteps}, {encoding} encoding: SNN {total['snn'] / 1e6:.2f} µJ, CNN "
                  f"{total['cnn'] / 1e6:.2f} µJ per image: {verdict}"),
    }


def energy_figure():
    """An empty plotly FigureWidget: operations per layer (log scale) and sparsity per layer."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], subplot_titles=(
        "operations per image", "sparsity (silent neuron-steps)")))
    fig.add_bar(name="CNN: MACs", meta="cnn", marker_color="#7f7f7f", row=1, col=1)
    fig.add_bar(name="SNN: synaptic operations (adds)", meta="snn", marker_color="#1f77b4", row=1, col=1)
    fig.add_bar(name="sparsity", meta="sparsity", marker_color="#2ca02c", showlegend=False, row=1, col=2)
    fig.update_layout(height=420, margin={"t": 90, "l": 70, "r": 20, "b": 90}, barmode="group",
                      title={"x": 0.5, "font": {"size": 13}}, legend={"orientation": "h", "y": -0.35})
    fig.update_yaxes(title_text="operations", type="log", row=1, col=1)
    fig.update_yaxes(title_text="fraction", range=[0, 1.05], row=1, col=2)
    fig.update_xaxes(title_text="spiking layer", dtick=1, row=1, col=2)
    return fig


def redraw_energy(fig, model, dataset, timesteps, encoding, images, sweep=None):
    """Write energy_figure_data(...) into the explorer's figure."""
    d = energy_figure_data(model, dataset, timesteps, encoding, images, sweep)
    cnn, snn, sparsity = trace(fig, "cnn"), trace(fig, "snn"), trace(fig, "sparsity")
    cnn.x, cnn.y = d["names"], d["macs"]
    snn.x, snn.y = d["names"], d["synops"]
    sparsity.x, sparsity.y = np.arange(len(d["sparsity"])), d["sparsity"]
    fig.layout.title.text = d["title"]


def energy_small_multiples(model, dataset, timesteps=(8, 16, 32, 64), encoding="spikes", images=32):
    """Matplotlib figure: one column per T, operations per layer (top) and sparsity per layer (bottom)."""
    figure, axes = small_multiples(2, len(timesteps), width=3.4, height=2.8)
    sweep = energy_sweep(model, dataset, encoding, images, max(timesteps))  # one simulation
    data = [energy_figure_data(model, dataset, T, encoding, images, sweep) for T in timesteps]
    top = max(max(d["macs"].max(), d["synops"].max()) for d in data) * 2
    for col, (T, d) in enumerate(zip(timesteps, data)):
        x = np.arange(len(d["names"]))
        axes[0, col].bar(x - 0.2, d["macs"], 0.4, color="0.5", label="CNN MACs")
        axes[0, col].bar(x + 0.2, d["synops"], 0.4, color="C0", label="SNN synaptic ops")
        axes[0, col].set(title=f"T = {T}: SNN/CNN energy {1 / d['ratio']:.2f}", xlabel="layer (last: readout)",
                         ylabel="operations per image", yscale="log", ylim=(1, top), xticks=x)
        axes[1, col].bar(np.arange(len(d["sparsity"])), d["sparsity"], color="C2")
        axes[1, col].set(title="sparsity", xlabel="spiking layer", ylabel="silent neuron-steps", ylim=(0, 1))
    axes[0, 0].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"Operations and energy per image ({encoding} encoding; 4.6 pJ per MAC, 0.9 pJ per add, "
                    "45 nm, Horowitz 2014)")
    return figure


def energy_explorer(model, dataset, timesteps=16, encoding="spikes", images=32, max_timesteps=128):
    """Chapter 10's explorer: a T slider drives the operations per layer (CNN MACs against SNN synaptic
    operations), the sparsity per layer, and the energy estimate in the title. One simulation to
    max_timesteps serves every T. In static_mode() returns a matplotlib small multiple over T instead."""
    if static_mode():
        return energy_small_multiples(model, dataset, encoding=encoding, images=images)
    import ipywidgets as w

    max_timesteps = max(max_timesteps, timesteps)
    sweep = energy_sweep(model, dataset, encoding, images, max_timesteps)
    controls = {"timesteps": w.IntSlider(value=timesteps, min=1, max=max_timesteps, description="time steps T",
                                         **slider_style())}
    return explorer(controls, energy_figure(),
                    lambda fig, timesteps: redraw_energy(fig, model, dataset, timesteps, encoding, images, sweep))
