"""Clamped and quantized activations (chapters 1 and 2) and n-bit weights (chapter 8).

The CQ activation is the CNN's stand-in for an integrate-and-fire neuron: a neuron that may fire at
most once per step fires at a rate in [0, 1], and over a finite window that rate is a count divided by
the number of steps, so it takes one of a few evenly spaced values.

    y = clamp(q(x * levels) / levels, 0, 1)      q = floor ("floor" mode) or round-half-up ("round")

The backward pass is straight-through inside [0, 1] and zero outside (chapter 2).
"""
import copy
import math
import warnings
from typing import NamedTuple

import torch
from torch import nn

MODES = ("floor", "round")

# Float32 cannot hold k/255 or k/L exactly: 0.7 is stored as 0.69999999, and floor(0.69999999 * 10)
# is 6. A value within TOLERANCE of the next whole level counts as reaching it. The IF neuron
# uses the same rule at its threshold, so the CNN and the SNN round the same way.
TOLERANCE = 1e-4


MAX_LEVELS = 2**16  # more steps than float32 activations can tell apart near 1


def is_whole(value, low, high):
    """Whether value is a whole number in [low, high], given as an int or a float (16 and 16.0 alike)."""
    number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    return number and value == int(value) and low <= value <= high


def check_levels(levels):
    """Return `levels` as an int (16 and 16.0 alike), or raise a ValueError that says what a valid value is."""
    if not is_whole(levels, 1, MAX_LEVELS):
        raise ValueError(
            f"levels must be a whole number >= 1 and <= {MAX_LEVELS} (the number of steps of the CQ staircase), "
            f"got {levels!r}; the paper and this book use levels=16."
        )
    return int(levels)


def check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be 'floor' (CQ, the default) or 'round' (shifted, with an initial "
                         f"membrane potential of threshold/2), got {mode!r}.")
    return mode


def quantize(x, levels, mode="floor", precision=torch.float64):
    """The CQ forward value, without a gradient: clamp(q(x * levels) / levels, 0, 1). Chapter 2.

    In float64 it follows the IF neuron's closed form (neuron.py) operation by operation, so that the
    SNN's first layer rounds exactly as the CNN does, even a hair from a level."""
    shift = 0.5 if mode == "round" else 0.0
    steps = (x.to(precision) * levels).add_(shift).add_(TOLERANCE).floor_()
    return steps.div_(levels).clamp_(0.0, 1.0).to(x.dtype)


class _StraightThrough(torch.autograd.Function):
    """Forward: the staircase. Backward: gradient 1 where 0 <= x <= 1, else 0."""

    @staticmethod
    def forward(ctx, x, levels, mode, precision):
        ctx.save_for_backward(x)
        return quantize(x, levels, mode, precision)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= 0) & (x <= 1)).to(grad.dtype), None, None, None


class Clamp(nn.Module):
    """ReLU capped at `ceiling` (1: the rate of a neuron that fires at most once per step). Chapter 1."""

    def __init__(self, ceiling=1.0):
        super().__init__()
        self.ceiling = float(ceiling)

    def forward(self, x):
        return x.clamp(0.0, self.ceiling)

    def extra_repr(self):
        return "" if self.ceiling == 1 else f"ceiling={self.ceiling:g}"


class CQ(nn.Module):
    """Clamped and quantized activation with `levels` steps in [0, 1]. Chapter 2.

    mode="floor" is CQ as in the paper; mode="round" rounds half up and pairs with an initial membrane
    potential of threshold/2 in the spiking network.
    """

    def __init__(self, levels=16, mode="floor"):
        super().__init__()
        self.levels = check_levels(levels)
        self.mode = check_mode(mode)

    def forward(self, x):
        # Training needs speed more than the last bit: it rounds in the input's own precision, three
        # times faster. Evaluation rounds in float64, as the SNN does, so that the two agree exactly.
        training = self.training and torch.is_grad_enabled()
        return _StraightThrough.apply(x, self.levels, self.mode, x.dtype if training else torch.float64)

    def extra_repr(self):
        return f"levels={self.levels}, mode={self.mode!r}"


def _replace_activations(module, make):
    """Swap every activation in a tree of nn.Sequential for make(); AvgPool2d gains one if it has none."""
    from .layers import ACTIVATIONS, POOLING  # here, not at the top: layers.py names CQ and Clamp, defined above

    if not isinstance(module, nn.Sequential):
        return module
    layers = list(module)
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, ACTIVATIONS):
            out.append(make())
            continue
        out.append(_replace_activations(layer, make))
        followed_by_activation = i + 1 < len(layers) and isinstance(layers[i + 1], ACTIVATIONS)
        if isinstance(layer, POOLING) and not followed_by_activation and i + 1 < len(layers):
            out.append(make())
    return nn.Sequential(*out)


def _twin(model, make, **arch_changes):
    twin = _replace_activations(copy.deepcopy(model), make)
    twin.train(model.training)
    arch = getattr(model, "arch", None)
    if arch is not None:
        twin.arch = {"name": arch["name"], "kwargs": {**arch["kwargs"], **arch_changes}}
    return twin


def to_clamp(model):
    """The clamp twin of a plain model: every ReLU becomes Clamp (stage 2 of the recipe, chapter 4)."""
    return _twin(model, Clamp, activation="clamp")


def with_ceiling(model, ceiling):
    """A copy of `model` with every activation clamped at `ceiling`, min(max(x, 0), ceiling), weights
    unchanged (chapter 1): ceiling=inf is the ReLU network, ceiling=1 its clamp twin."""
    twin = _replace_activations(copy.deepcopy(model), lambda: Clamp(ceiling))
    return twin.train(model.training)


def to_cq(model, levels=16, mode="floor"):
    """The CQ twin of a trained model, weights copied: every ReLU or Clamp becomes CQ(levels, mode),
    and every AvgPool2d gains a CQ after it (chapter 4). The model must be an nn.Sequential."""
    levels, mode = check_levels(levels), check_mode(mode)
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"to_cq needs an nn.Sequential, got {type(model).__name__}; write the model as "
                        "nn.Sequential(conv, BatchNorm2d, ReLU, ..., Linear).")
    return _twin(model, lambda: CQ(levels, mode), activation="cq", levels=levels, mode=mode)


class CQConfig(NamedTuple):
    """The activations of a CQ-CNN, as `cq_config` reads them: `levels` (L) and `mode`."""
    levels: int
    mode: str


def cq_config(model):
    """The levels and mode of the CQ layers of `model`, as CQConfig(levels, mode) (chapter 4).

    A ValueError when it has no CQ layer or its CQ layers mix modes; a warning when they mix levels (the
    SNN can then match the CQ-CNN at one T only), and then the first CQ layer's levels."""
    cqs = [m for m in model.modules() if isinstance(m, CQ)]
    if not cqs:
        raise ValueError("the model has no CQ layer, so there is nothing to spike; use cq.to_cq(model, levels) "
                         "and fine-tune first.")
    if len({m.mode for m in cqs}) > 1:
        raise ValueError("the CQ layers mix 'floor' and 'round' modes; use one mode throughout.")
    levels = sorted({m.levels for m in cqs})
    if len(levels) > 1:
        warnings.warn(f"the CQ layers mix levels {levels}: the SNN can match the CQ-CNN exactly only at "
                      "T = levels, which one T cannot be for every layer; use one levels throughout.", stacklevel=2)
    return CQConfig(cqs[0].levels, cqs[0].mode)


def quantize_tensor(w, bits):
    """Per-tensor max-abs scaling to [-1, 1] and rounding to the nearest step of 2**(1 - bits) (ties to
    even, as torch.round). Chapter 8.

    Returns (q, scale) with w ~= q * scale. q / 2**(1 - bits) is a signed `bits`-bit integer in
    [-2**(bits-1), 2**(bits-1) - 1] (two's complement), so the largest positive weight loses one step.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 2:
        raise ValueError(f"bits must be a whole number >= 2, got {bits!r}.")
    scale = w.abs().max().clamp_min(torch.finfo(w.dtype).tiny)
    step = 2.0 ** (1 - bits)
    integers = torch.round(w / scale / step).clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return integers * step, scale


def error_bounds(levels, mode="floor"):
    """The range of clamp(x) - CQ(x) for x in [0, 1]: [0, 1/L) for floor, (-1/2L, 1/2L] for round, up to
    the staircase's TOLERANCE (a value a hair under a level counts as on it)."""
    return (0.0, 1.0 / levels) if mode == "floor" else (-0.5 / levels, 0.5 / levels)


def quantization_error(values, levels, mode="floor"):
    """clamp(x, 0, 1) - CQ(x) for the pre-activations x that lie inside [0, 1] (elsewhere CQ equals the
    clamp and the error is 0), as a flat tensor."""
    x = torch.as_tensor(values).flatten()
    x = x[(x >= 0) & (x <= 1)]
    return x - quantize(x, levels, mode)


def ste_gradient(x, levels=4, mode="floor"):
    """The gradient that backpropagation gives CQ(levels, mode) at each x: the straight-through
    estimator, 1 inside [0, 1] and 0 outside (chapter 2)."""
    x = torch.as_tensor(x, dtype=torch.float32).clone().requires_grad_(True)
    CQ(levels, mode)(x).sum().backward()
    return x.grad


__all__ = ["CQ", "CQConfig", "Clamp", "cq_config", "quantize", "to_cq", "to_clamp", "with_ceiling", "quantize_tensor",
           "check_levels", "check_mode", "MODES", "TOLERANCE", "error_bounds", "quantization_error", "ste_gradient"]
