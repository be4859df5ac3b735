"""Wiring shared by the explorers of chapters 1 to 5: controls -> update function -> plotly figure.

An explorer is a plain `redraw(figure, **values)` that writes the output of a tested
`*_figure_data` function into a plotly FigureWidget. `explorer` builds the box of controls above the
figure, draws the first state from the controls' starting values and redraws on every change.
"""
import functools

import torch


def single_threaded(function):
    """Run `function` with one torch thread. Update functions work on a few thousand numbers; on a
    shared CPU, waking torch's worker threads for them costs tens of milliseconds, one thread < 1 ms."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


def first_images(dataset, images, module):
    """The first `images` images of `dataset` (on `module`'s device) and their labels (on the CPU)."""
    n = min(int(images), len(dataset))
    return dataset.images[:n].to(next(module.parameters()).device), dataset.labels[:n]


class Simulations:
    """Runs kept per setting that changes the dynamics (an image, an encoding), each to some T: the
    first T steps of a run to T_max are the run to T, so moving T only slices (chapter 6).

    simulate(key, T) makes a run; steps(run) says how many steps it holds. The first setting is run to
    `longest` at once; a new setting only to the T asked (as fast as the explorer was without the
    cache), and again to `longest` when T moves past what it holds."""

    def __init__(self, simulate, steps, longest):
        self.simulate, self.steps, self.longest, self.kept = simulate, steps, int(longest), {}

    def __call__(self, key, timesteps):
        run = self.kept.get(key)
        if run is None or self.steps(run) < timesteps:
            whole = run is not None or not self.kept or timesteps > self.longest
            self.kept[key] = self.simulate(key, max(self.longest, timesteps) if whole else int(timesteps))
        return self.kept[key]


def explorer(controls, figure, redraw):
    """An ipywidgets VBox: `controls` (a dict name -> widget, shown in order) above `figure`.

    Every change of a control calls redraw(figure, **values). The box keeps
    `.figure`, `.controls` and `.refresh()` (redraw now) for tests and for scripting a chapter."""
    import ipywidgets

    def refresh(change=None):
        # No figure.batch_update(): it sends one update for all traces, in which a property that only some
        # of them change is "undefined" for the others, and the browser resets it there (a legend entry
        # became "trace 5", a red marker took the default colour). Each assignment is its own update.
        redraw(figure, **{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(refresh, names="value")
    refresh()
    box = ipywidgets.VBox([ipywidgets.VBox(list(controls.values())), figure])
    box.figure, box.controls, box.refresh = figure, controls, refresh
    return box


def trace(fig, key):
    """The one trace of `fig` whose `meta` is `key`. Figures label their traces with a fixed meta, so a
    redraw finds each by name even when it changes the legend text (chapters 6-10)."""
    found = [t for t in fig.data if t.meta == key]  # fig.select_traces is slower, by milliseconds
    if len(found) != 1:
        raise ValueError(f"the figure has {len(found)} traces with meta {key!r}; build it with its *_figure().")
    return found[0]


def slider_style():
    """Layout and style that keep long descriptions readable."""
    import ipywidgets

    return {"style": {"description_width": "11em"}, "layout": ipywidgets.Layout(width="34em")}
