"""How closely the spiking network follows the CQ-CNN (chapters 5, 7 and 10).

The CQ-CNN's activation a of a neuron predicts a * T spikes in T steps. With the "current" encoding
and T = levels the first spiking layer fires exactly that; deeper layers can miss by a spike or two,
because their input arrives as spikes over time (timing errors, chapter 7).
"""
import copy
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .conversion import convert
from .fold import fold_batchnorm
from .neuron import encode
from .layers import ACTIVATIONS
from .quant import CQ, to_cq, with_ceiling
from .train import evaluate, predict


@contextmanager
def _hooked(model, where="input", kinds=ACTIVATIONS):
    """`model` with BatchNorm folded, and a list that each forward pass of it fills with the input
    (where="input") or output of every module whose type is in `kinds`, in order."""
    if where not in ("input", "output"):
        raise ValueError(f"where must be 'input' (pre-activations) or 'output', got {where!r}.")
    was_training = model.training
    folded = fold_batchnorm(model.eval())
    model.train(was_training)
    seen, modules = [], [m for m in folded.modules() if isinstance(m, kinds)]
    if where == "input":
        hooks = [m.register_forward_pre_hook(lambda m, args: seen.append(args[0])) for m in modules]
    else:
        hooks = [m.register_forward_hook(lambda m, args, out: seen.append(out)) for m in modules]
    try:
        yield folded, seen
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def activations(model, data, where="input", kinds=ACTIVATIONS, batch_size=512):
    """The pre-activation (where="input") or the output of every activation module of `model`
    whose type is in `kinds` (ReLU, Clamp, CQ), in order, for a batch x or a dataset: one tensor
    (N, ...) per layer (chapters 1, 2 and 4). BatchNorm is folded first, as `convert` does: folding is
    exact in real numbers but not in float32, and a pre-activation a hair from a level would otherwise
    round one way in the CNN and the other in the SNN."""
    batches = [data] if torch.is_tensor(data) else (x for x, _ in DataLoader(data, batch_size=batch_size))
    per_batch = []
    with _hooked(model, where, kinds) as (folded, seen):
        for x in batches:
            seen.clear()
            folded(x)
            per_batch.append(list(seen))
    return [torch.cat(layer) for layer in zip(*per_batch)]


def cq_activations(model, x):
    """The output of every CQ module of `model` for the batch x, in order, BatchNorm folded (chapter 5):
    the activation a of each neuron that predicts a * T spikes."""
    return activations(model, x, "output", (CQ,))


def input_rates(snn, x, seed=0):
    """The input as the SNN sees it over its window: x itself for "current", the spike rate otherwise
    (the trains of `snn.run(x, seed=seed)`). Feeding this to the CQ-CNN compares like with like."""
    if snn.encoding == "current":
        return x
    return encode(x, snn.timesteps, snn.encoding, seed).sum(0, dtype=x.dtype) / snn.timesteps


EXACT = 1e-3  # counts are whole numbers: one within this of a * T is exact


def count_errors(activations, counts, timesteps):
    """Per spiking layer, |count - a * T| of every neuron, as (images, neurons)."""
    return [(n - a * timesteps).abs().flatten(1) for a, n in zip(activations, counts)]


@torch.no_grad()
def classify_errors(model, snn, x):
    """Per spiking layer of `snn` on the batch x, the share of neurons whose net count N equals the
    CQ-CNN's a * T (exact), exceeds it (too_many: spikes fired before inhibition arrived) or falls
    short of it (too_few: input still on the membrane at the end). The CNN sees the input the SNN saw,
    as in cq.analysis.layer_agreement, whose `exact` this one equals. Chapter 11."""
    rec = snn.run(x)
    rates = x if rec.input_counts is None else rec.input_counts / snn.timesteps
    rows = []
    for i, (a, n) in enumerate(zip(cq_activations(model, rates), rec.counts)):
        surplus = (n - a * snn.timesteps).flatten()
        rows.append({"layer": i, "exact": (surplus.abs() < EXACT).double().mean().item(),
                     "too_many": (surplus >= EXACT).double().mean().item(),
                     "too_few": (surplus <= -EXACT).double().mean().item()})
    return rows


@torch.no_grad()
def layer_agreement(model, snn, data, batch_size=256):
    """Per spiking layer: neurons per image, the fraction of neurons whose spike count equals a * T
    exactly, and the mean absolute error in spikes |count - a * T|. `data` is a batch or a dataset."""
    batches = [data] if torch.is_tensor(data) else (x for x, _ in DataLoader(data, batch_size=batch_size))
    exact = error = total = 0
    for x in batches:
        rec = snn.run(x)
        rates = x if rec.input_counts is None else rec.input_counts / snn.timesteps  # the input the SNN saw
        errors = count_errors(cq_activations(model, rates), rec.counts, snn.timesteps)
        exact = exact + torch.stack([(e < EXACT).sum() for e in errors])
        error = error + torch.stack([e.sum() for e in errors])
        total = total + torch.tensor([e.numel() for e in errors])
        neurons = [e.shape[1] for e in errors]
    return [{"layer": i, "neurons": neurons[i], "exact": (exact[i] / total[i]).item(),
             "mae_spikes": (error[i] / total[i]).item()} for i in range(len(neurons))]


def prediction_agreement(model, snn, dataset, batch_size=256):
    """Fraction of images on which the SNN predicts the same class as the CQ-CNN."""
    return (predict(model, dataset, batch_size) == predict(snn, dataset, batch_size)).sum().item() / len(dataset)


@torch.no_grad()
def predict_every_timestep(snn, dataset, timesteps, batch_size=256, progress=False, desc="SNN"):
    """{T: predicted labels (N,)} of `snn` for each T in `timesteps` (each <= snn.timesteps), from one
    simulation to snn.timesteps: the output after T steps is the readout of the counts so far divided
    by T, which is what the network converted at T computes (chapter 7). With flush steps (chapter 11),
    which follow the last step, each T needs a simulation of its own."""
    if not timesteps or max(timesteps) > snn.timesteps:
        raise ValueError(f"timesteps must lie in 1..{snn.timesteps} (the network's timesteps), got {list(timesteps)}.")
    device = next(snn.parameters()).device
    predicted = {T: [] for T in timesteps}
    for x, _ in tqdm(DataLoader(dataset, batch_size=batch_size), desc=desc, disable=not progress):
        outputs = None if snn.flush else snn.run(x.to(device), all_timesteps=True).outputs
        for T in timesteps:
            output = outputs[T - 1] if outputs is not None else at_timesteps(snn, T)(x.to(device))
            predicted[T].append(output.argmax(1).cpu())
    return {T: torch.cat(p) for T, p in predicted.items()}


def at_timesteps(snn, T):
    """`snn` read out after T steps: the same layers, a shallow copy with timesteps = T."""
    at_T = copy.copy(snn)
    at_T.timesteps = T
    return at_T


def sweep_timesteps(model, dataset, timesteps=(8, 16, 32, 64, 128), encoding="spikes", neuron="if", progress=True):
    """{T: SNN accuracy} for the CQ-CNN converted at each T (chapter 7), all from one simulation to the
    largest T."""
    labels = torch.as_tensor([y for _, y in dataset]) if not hasattr(dataset, "labels") else dataset.labels
    snn = convert(model, max(timesteps), encoding, neuron)
    predicted = predict_every_timestep(snn, dataset, timesteps, progress=progress, desc=f"T sweep ({encoding})")
    return {T: (predicted[T] == labels.cpu()).sum().item() / len(labels) for T in timesteps}  # as cq.evaluate


def count_dtype(timesteps):
    """The smallest integer dtype that holds spike counts 0 .. timesteps (net counts never fall below 0)."""
    return torch.int8 if timesteps <= 127 else torch.int16 if timesteps <= 32767 else torch.int32


def running_sum(steps, dtype):
    """steps (T, ...) summed over the first t steps, for every t: a new (T, ...) tensor in `dtype`. A loop of
    in-place additions, one step at a time: torch.cumsum along the first dimension is many times slower."""
    total = steps.to(dtype, copy=True)
    for t in range(1, len(total)):
        total[t] += total[t - 1]
    return total


@torch.no_grad()
def spike_history(snn, x, seed=0, timesteps=None):
    """{T: what `snn` converted at T records on the batch x} for each T in `timesteps` (default 1 ..
    snn.timesteps), all from one run to snn.timesteps (chapters 5 and 7): the first T steps of that run
    are the run to T. The SNN does not depend on the CQ-CNN's levels L either, so one history serves
    every L: compare it with cq.to_cq(model, L) (`agreement_at`). Each value is a dict:
      timesteps  T
      counts     per spiking layer, (B, ...) net spike counts after T steps, `count_dtype(T_max)`
      output     (B, classes), the SNN's output after T steps
      rates      the input the SNN saw in those T steps (x for "current", its spike rates otherwise):
                 what the CQ-CNN must see to be compared like with like
    The counts of all T are kept: one byte per neuron and T up to T = 127."""
    wanted = list(range(1, snn.timesteps + 1) if timesteps is None else sorted(set(timesteps)))
    if not wanted or wanted[0] < 1 or wanted[-1] > snn.timesteps:
        raise ValueError(f"timesteps must lie in 1..{snn.timesteps} (the network's timesteps), got {wanted}.")
    rec = snn.run(x, record=True, membrane=[], all_timesteps=True, seed=seed)  # spikes only
    rows = torch.tensor(wanted, device=x.device) - 1
    keep = (lambda steps: steps) if len(wanted) == snn.timesteps else (lambda steps: steps[rows])
    dtype, counts = count_dtype(snn.timesteps), []
    while rec.spikes:  # layer by layer, so only one layer's spikes are held twice
        counts.append(keep(running_sum(rec.spikes.pop(0), dtype)))
    x = x.to(rec.output.dtype)
    if snn.encoding == "current":
        rates = [x] * len(wanted)
    else:
        seen = keep(running_sum(encode(x, snn.timesteps, snn.encoding, seed), x.dtype))
        rates = [s / T for s, T in zip(seen, wanted)]
    return {T: {"timesteps": T, "counts": [c[i] for c in counts], "output": rec.outputs[T - 1], "rates": rates[i]}
            for i, T in enumerate(wanted)}


@torch.no_grad()
def cq_forward(model, x):
    """(cq_activations(model, x), the logits) from one forward pass of `model`, BatchNorm folded."""
    with _hooked(model, "output", (CQ,)) as (folded, seen):
        logits = folded(x)
        return list(seen), logits


def agreement_at(model, step):
    """How the SNN of one `spike_history` entry follows the CQ-CNN `model` (chapter 7): exact and
    mae_spikes, per spiking layer as in `layer_agreement` (float64 tensors), and cnn, snn: the classes
    each predicts. `model` may have any levels L: the history is the same for all."""
    activations, logits = cq_forward(model, step["rates"])
    errors = count_errors(activations, step["counts"], step["timesteps"])
    return {"exact": torch.tensor([(e < EXACT).sum().item() / e.numel() for e in errors], dtype=torch.float64),
            "mae_spikes": torch.tensor([e.sum(dtype=torch.float64).item() / e.numel() for e in errors],
                                       dtype=torch.float64),
            "cnn": logits.argmax(1).cpu(), "snn": step["output"].argmax(1).cpu()}


def sweep_levels(model, dataset, levels=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), mode="floor", progress=True):
    """{L: test accuracy} of the CQ twin of `model` with L levels (and `mode`), weights unchanged:
    what quantizing costs a trained network before any fine-tuning (chapter 2)."""
    return {L: evaluate(to_cq(model, L, mode), dataset)
            for L in tqdm(levels, desc=f"levels sweep ({mode})", disable=not progress)}


def sweep_ceilings(model, dataset, ceilings, progress=True):
    """{ceiling: test accuracy} of `model` with every activation clamped at each ceiling, no retraining
    (chapter 1)."""
    return {c: evaluate(with_ceiling(model, c), dataset)
            for c in tqdm(ceilings, desc="ceiling sweep", disable=not progress)}


def sweep_weight_bits(snn, dataset, bits=(4, 6, 8, 9, 10), readout=True, progress=True):
    """{bits: accuracy} of snn.with_weight_bits(bits, readout) on `dataset`, with "full" for the SNN as
    it is: n-bit weights, no retraining (chapters 8 and 9)."""
    table = {"full": evaluate(snn, dataset)}
    for b in tqdm(bits, desc="weight bits", disable=not progress):
        table[b] = evaluate(snn.with_weight_bits(b, readout=readout), dataset)
    return table
