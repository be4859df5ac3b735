"""The signed-neuron explorer (chapter 11): one neuron whose input is positive early and negative late,
and what the IF neuron and the signed IF neuron make of it, side by side.

`signed_figure_data` is the update function (plain arrays, no browser); `signed_explorer` wires it to
sliders and a plotly FigureWidget, or draws `signed_small_multiples` in `static_mode()`. Both neurons
are `cq.neuron.simulate`, with signed=False and signed=True; the per-layer split of counting errors is
`cq.analysis.classify_errors`, drawn by `cq.plots.layer_errors`.
"""
import numpy as np
import torch

from ..neuron import NEURONS, cnn_counts, simulate
from ..plots import MINUS, PLUS, small_multiples
from . import static_mode
from ._explorer import explorer, single_threaded, slider_style, trace

LABELS = {"if": "IF", "signed": "signed IF"}


def input_sequence(early, late, share, timesteps):
    """The input current of one neuron, float64 (T,): `early` for the first round(share * T) steps,
    then `late`: positive input first and negative input after it, the order that misleads IF neurons."""
    if not 0 <= share <= 1:
        raise ValueError(f"share is the fraction of the T steps that get the early input, in [0, 1]; got {share!r}.")
    timesteps = int(timesteps)
    first = int(round(share * timesteps))
    return torch.tensor([float(early)] * first + [float(late)] * (timesteps - first), dtype=torch.float64)


@single_threaded
def signed_figure_data(early=0.9, late=-0.6, share=0.5, timesteps=16, threshold=1.0):
    """Everything the explorer draws for one setting of its sliders (chapter 11).

    Returns a dict: t (steps 1..T), current (the input at each step), cnn (the CNN's count after each
    step, `cnn_counts`), expected (its last value), title, and per neuron ("if", "signed") a dict:
      trace_t/trace_v  the membrane sawtooth: up to the potential before each step's reset, down to after it
      plus_t, minus_t  the steps with a +1 and with a -1 spike
      count            the net count after each step;  net, plus, minus  the totals
    """
    current = input_sequence(early, late, share, timesteps)
    t = np.arange(1, len(current) + 1)
    cnn = cnn_counts(current, threshold).numpy().astype(int)
    data = {"t": t, "current": current.numpy(), "cnn": cnn, "expected": int(cnn[-1]) if len(cnn) else 0}
    for neuron in NEURONS:
        spikes, before, after, counts = (x.numpy() for x in simulate(current, threshold=threshold, signed=neuron == "signed"))
        data[neuron] = {
            "trace_t": np.concatenate([[0], np.repeat(t, 2)]),
            "trace_v": np.concatenate([[0.0], np.column_stack([before, after]).ravel()]),
            "plus_t": t[spikes > 0], "minus_t": t[spikes < 0], "count": counts.astype(int),
            "net": int(spikes.sum()), "plus": int((spikes > 0).sum()), "minus": int((spikes < 0).sum()),
        }
    first = int(round(share * len(t)))
    s = data["signed"]
    data["title"] = (f"{early:+.2f} for {first} steps, then {late:+.2f}: the CNN counts {data['expected']}; "
                     f"IF fires {data['if']['net']}, signed IF {s['net']} ({s['plus']} − {s['minus']})")
    return data


def signed_figure():
    """An empty plotly FigureWidget: input, spikes, membrane potential and net count (rows) for the IF
    and the signed IF neuron (columns). Traces are named "<neuron>:<what>" in their meta."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = go.FigureWidget(make_subplots(
        rows=4, cols=2, shared_xaxes=True, vertical_spacing=0.06, horizontal_spacing=0.08,
        row_heights=[0.18, 0.14, 0.38, 0.30],
        column_titles=["IF neuron (the paper's)", "signed IF neuron (−1 spikes allowed)"]))
    for col, neuron in enumerate(NEURONS, start=1):
        first = col == 1
        legend = neuron == "signed"  # one legend entry per kind: the signed column has every kind (plotly
        # leaves empty traces, such as the IF neuron's -1 spikes, out of the legend)
        fig.add_bar(name="input current", meta=f"{neuron}:current", marker_color="#9e9e9e", showlegend=legend,
                    legendgroup="current", row=1, col=col)
        fig.add_scatter(name="+1 spike", meta=f"{neuron}:plus", mode="markers", showlegend=legend, legendgroup="plus",
                        marker={"color": PLUS, "size": 14, "symbol": "line-ns-open", "line": {"width": 2}},
                        row=2, col=col)
        fig.add_scatter(name="−1 spike", meta=f"{neuron}:minus", mode="markers", showlegend=legend,
                        legendgroup="minus",
                        marker={"color": MINUS, "size": 14, "symbol": "line-ns-open", "line": {"width": 2}},
                        row=2, col=col)
        fig.add_scatter(name="membrane potential v", meta=f"{neuron}:membrane", mode="lines", showlegend=legend,
                        legendgroup="membrane", line={"color": "#1f77b4", "width": 2}, row=3, col=col)
        fig.add_scatter(name="threshold θ and 0", meta=f"{neuron}:threshold", mode="lines", showlegend=legend,
                        legendgroup="threshold", line={"color": "#9e9e9e", "dash": "dash", "width": 1},
                        row=3, col=col)
        fig.add_scatter(name="net count N(t)", meta=f"{neuron}:count", mode="lines", showlegend=legend,
                        legendgroup="count", line={"shape": "hv", "color": "#1f77b4", "width": 2}, row=4, col=col)
        fig.add_scatter(name="the CNN's count ⌊S(t)/θ⌋", meta=f"{neuron}:cnn", mode="lines", showlegend=legend,
                        legendgroup="cnn", line={"shape": "hv", "color": "#2ca02c", "dash": "dot", "width": 2},
                        row=4, col=col)
        fig.update_yaxes(title_text="input" if first else None, row=1, col=col)
        fig.update_yaxes(tickvals=[-1, 1], ticktext=["−1", "+1"], range=[-1.8, 1.8], row=2, col=col)
        fig.update_yaxes(title_text="v (units of θ)" if first else None, row=3, col=col)
        fig.update_yaxes(title_text="spikes" if first else None, rangemode="tozero", row=4, col=col)
        fig.update_xaxes(title_text="time step t", row=4, col=col)
    fig.update_layout(height=800, margin={"t": 90, "l": 60, "r": 20, "b": 130}, title={"x": 0.5, "font": {"size": 13}},
                      legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.08, "yanchor": "top"},
                      bargap=0.2)
    return fig


def redraw_signed(fig, early, late, share, timesteps, threshold=1.0):
    """Write signed_figure_data(...) into the explorer's figure, trace by name."""
    d = signed_figure_data(early, late, share, timesteps, threshold)
    t, steps = d["t"], int(timesteps)
    low = min(-threshold, float(min(d[n]["trace_v"].min() for n in NEURONS)))
    high = max(1.1 * threshold, float(max(d[n]["trace_v"].max() for n in NEURONS)))
    for neuron in NEURONS:
        n = d[neuron]
        trace(fig, f"{neuron}:current").update(x=t, y=d["current"])
        trace(fig, f"{neuron}:plus").update(x=n["plus_t"], y=np.ones(len(n["plus_t"])))
        trace(fig, f"{neuron}:minus").update(x=n["minus_t"], y=-np.ones(len(n["minus_t"])))
        trace(fig, f"{neuron}:membrane").update(x=n["trace_t"], y=n["trace_v"])
        trace(fig, f"{neuron}:threshold").update(x=[0, steps, None, 0, steps], y=[threshold, threshold, None, 0, 0])
        trace(fig, f"{neuron}:count").update(x=np.concatenate([[0], t]), y=np.concatenate([[0], n["count"]]))
        trace(fig, f"{neuron}:cnn").update(x=np.concatenate([[0], t]), y=np.concatenate([[0], d["cnn"]]))
    fig.layout.title.text = d["title"]
    fig.update_xaxes(range=[0, steps + 0.5])
    fig.update_yaxes(range=[low - 0.1, high + 0.1], row=3)
    fig.update_yaxes(range=[-1.6, 1.6], row=1)


def signed_small_multiples(settings=((0.9, -0.6, 0.5), (0.6, -0.3, 0.25), (0.45, -0.45, 0.5)), timesteps=16,
                           threshold=1.0):
    """Matplotlib figure: membrane potential and spikes for a few input sequences (columns, each
    (early, late, share)), the IF neuron (top) and the signed IF neuron (bottom)."""
    figure, axes = small_multiples(len(NEURONS), len(settings), width=3.6, height=2.6)
    for col, (early, late, share) in enumerate(settings):
        d = signed_figure_data(early, late, share, timesteps, threshold)
        for row, neuron in enumerate(NEURONS):
            ax, n = axes[row, col], d[neuron]
            ax.plot(n["trace_t"], n["trace_v"], color="C0", lw=1.5)
            ax.axhline(threshold, color="0.6", ls="--", lw=1)
            ax.axhline(0, color="0.6", lw=0.8)
            top = max(1.2 * threshold, float(n["trace_v"].max()) + 0.2)
            ax.plot(n["plus_t"], np.full(len(n["plus_t"]), top), "|", color=PLUS, ms=9, mew=2, label="+1 spike")
            ax.plot(n["minus_t"], np.full(len(n["minus_t"]), top), "|", color=MINUS, ms=9, mew=2, label="−1 spike")
            ax.set(title=f"{LABELS[neuron]}: N = {n['net']} (CNN {d['expected']})", xlim=(0, timesteps + 0.5),
                   xlabel="time step t", ylabel="v" if col == 0 else None)
            ax.title.set_fontsize(9)
        axes[0, col].text(0.02, 0.04, f"{early:+.2f} then {late:+.2f}", transform=axes[0, col].transAxes, fontsize=8)
    axes[1, 0].legend(loc="lower left", fontsize=7)
    figure.suptitle(f"Early positive, late negative input, T = {timesteps}: IF (top) and signed IF (bottom); "
                    f"spikes on top (−1 in red)", fontsize=10)
    return figure


def signed_explorer(early=0.9, late=-0.6, share=0.5, timesteps=16, threshold=1.0):
    """Chapter 11's explorer: sliders for the early (positive) input, the late (negative) input, the
    share of steps with the early input and T drive both neurons side by side. In static_mode()
    returns a matplotlib small multiple instead."""
    if static_mode():
        return signed_small_multiples(timesteps=timesteps, threshold=threshold)
    import ipywidgets as w

    controls = {
        "early": w.FloatSlider(value=early, min=0.0, max=1.5, step=0.05, readout_format="+.2f",
                               description="early input", **slider_style()),
        "late": w.FloatSlider(value=late, min=-1.5, max=0.5, step=0.05, readout_format="+.2f",
                              description="late input", **slider_style()),
        "share": w.FloatSlider(value=share, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                               description="share of early steps", **slider_style()),
        "timesteps": w.IntSlider(value=timesteps, min=1, max=64, description="time steps T", **slider_style()),
    }
    return explorer(controls, signed_figure(),
                    lambda fig, **values: redraw_signed(fig, threshold=threshold, **values))
