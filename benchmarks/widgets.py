"""Update latency of the book's explorers: each `cqlearn.widgets.<module>.<name>_figure_data` function
called the way a slider drag calls it, one value after another.

The functions are found at run time and their arguments filled by parameter name (inspect), so the
benchmark follows the explorers as they change. A function whose required arguments have no filler
here, or a module not written yet, is reported as skipped, with the reason.
"""
import importlib
import inspect
import pkgutil
import statistics
import time

import torch

import cqlearn as cq

REQUIRED = ("neuron", "quantization")  # the explorers the goal names; the others are reported too
PRECOMPUTED = ("reference",)  # optional arguments an explorer computes once and passes to every update
SWEEPS = {  # a drag across the slider, one update per value
    "current": [0.05, 0.2, 0.3, 0.45, 0.6, 0.7, 0.85, 1.0],
    "levels": [1, 2, 3, 4, 6, 8, 12, 16, 24, 32],
    "timesteps": [8, 16, 24, 32, 48, 64, 96, 128],
    "bits": [2, 3, 4, 5, 6, 8, 10, 12],
    "ceiling": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
    "threshold": [0.5, 0.75, 1.0, 1.25, 1.5],
    "image": [0, 1, 2, 3, 4, 5],
}


class Fillers:
    """Arguments by parameter name, built on first use: the shipped digits CQ-CNN and test images."""

    def __init__(self):
        self._cache = {}

    def _model(self):
        try:
            return cq.load(cq.shipped("digits_cnn_cq16.pt")).eval()
        except Exception:  # noqa: BLE001 - a checkpoint out of step with the code
            return cq.to_cq(cq.models.digits_cnn(), 16).eval()

    def get(self, name):
        if name not in self._cache:
            self._cache[name] = self._make(name)
        return self._cache[name]

    def _make(self, name):
        if name in ("model", "cq_model", "cnn"):
            return self._model()
        if name in ("dataset", "data", "test_set"):
            return cq.data.load("digits", "test")
        if name == "snn":
            return cq.convert(self.get("model"), 32, "spikes")
        if name == "reference":  # as bits_explorer makes it, for bits_figure_data's default images
            from cqlearn.widgets.bits import full_precision_run
            return full_precision_run(self.get("snn"), self.get("dataset"))
        if name in ("values", "activations", "x"):
            from cqlearn.fold import fold_batchnorm
            with torch.no_grad():  # the first layer's pre-activations on 256 test digits
                return fold_batchnorm(self.get("model"))[0](self.get("dataset").images[:256])
        if name in SWEEPS:
            return SWEEPS[name][len(SWEEPS[name]) // 2]
        raise KeyError(name)


def discover():
    """[(module name, function name, function or None, reason)] for every explorer module."""
    import cqlearn.widgets as package

    found = []
    names = sorted({m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")} | set(REQUIRED))
    for module_name in names:
        try:
            module = importlib.import_module(f"cqlearn.widgets.{module_name}")
        except ImportError as error:
            found.append((module_name, f"{module_name}_figure_data", None, f"not importable: {error}"))
            continue
        functions = [(n, f) for n, f in vars(module).items()
                     if n.endswith("_figure_data") and callable(f) and getattr(f, "__module__", "") == module.__name__]
        if not functions:
            found.append((module_name, f"{module_name}_figure_data", None, "no *_figure_data function yet"))
        found += [(module_name, n, f, None) for n, f in sorted(functions)]
    return found


def latency(function, fillers, repeats=1):
    """Time a drag across the first sweepable parameter: {median, worst, calls, slider} in seconds."""
    signature = inspect.signature(function)
    arguments, slider = {}, None
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is parameter.empty or name in PRECOMPUTED:
            try:
                arguments[name] = fillers.get(name)
            except KeyError:
                raise LookupError(f"no value for its argument {name!r}") from None
        if slider is None and name in SWEEPS:
            slider = name
    values = SWEEPS[slider] if slider else [None]
    function(**arguments)  # first call: imports and caches, as when the chapter draws the figure
    times = []
    for _ in range(repeats):
        for value in values:
            if slider:
                arguments[slider] = value
            began = time.perf_counter()
            function(**arguments)
            times.append(time.perf_counter() - began)
    return {"median": statistics.median(times), "worst": max(times), "calls": len(times), "slider": slider}
