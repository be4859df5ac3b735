"""Interactive explorers for the book's chapters, one module per chapter topic.

Each explorer is a plain update function (figure data from slider values, tested without a browser)
wired to ipywidgets sliders and a plotly FigureWidget; the figure's first state comes from the
sliders' starting values. Where custom widgets cannot load (Colab without anywidget, the static
site built by `make book`), `static_mode()` is true and explorers draw a matplotlib small multiple.
"""
import os


def static_mode():
    """True when CQ_STATIC=1 (set by `make book`) or plotly's FigureWidget is unavailable."""
    if os.environ.get("CQ_STATIC") == "1":
        return True
    try:
        import anywidget  # noqa: F401  (plotly's FigureWidget is an anywidget)
    except ImportError:
        return True
    return False
