"""How closely the spiking network follows the CQ-CNN (chapters 5, 7 and 10).

The CQ-CNN's activation a of a neuron predicts a * T spikes in T steps. With the "current" encoding
and T = levels the first spiking layer fires exactly that; deeper layers can miss by a spike or two,
because their input arrives as spikes over time (timing errors, chapter 7).
"""
import copy

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .conversion import convert
from .fold import fold_batchnorm
from .neuron import encode
from .layers import ACTIVATIONS
from .quant import CQ, to_cq, with_ceiling
from .train import evaluate, predict


@torch.no_grad()
def activations(model, data, where="input", kinds=ACTIVATIONS, batch_size=512):
    """The pre-activation (where="input") or the output of every activation module of `model`
    whose type is in `kinds` (ReLU, Clamp, CQ), in order, for a batch x or a dataset: one tensor
    (N, ...) per layer (chapters 1, 2 and 4). BatchNorm is folded first, as `convert` does: folding is
    exact in real numbers but not in float32, and a pre-activation a hair from a level would otherwise
    round one way in the CNN and the other in the SNN."""
    if where not in ("input", "output"):
        raise ValueError(f"where must be 'input' (pre-activations) or 'output', got {where!r}.")
    was_training = model.training
    folded = fold_batchnorm(model.eval())
    model.train(was_training)
    batches = [data] if torch.is_tensor(data) else (x for x, _ in DataLoader(data, batch_size=batch_size))
    per_batch, modules = [], [m for m in folded.modules() if isinstance(m, kinds)]
    if where == "input":
        hooks = [m.register_forward_pre_hook(lambda m, args: per_batch[-1].append(args[0])) for m in modules]
    else:
        hooks = [m.register_forward_hook(lambda m, args, out: per_batch[-1].append(out)) for m in modules]
    try:
        for x in batches:
            per_batch.append([])
            folded(x)
    finally:
        for hook in hooks:
            hook.remove()
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


@torch.no_grad()
def every_timestep(model, snn, x, seed=0, timesteps=None):
    """Yield, for each T in `timesteps` (default 1 .. snn.timesteps), what the network converted at T
    shows on the batch x, all from one recorded simulation to snn.timesteps (chapters 5 and 7; no
    dynamics depend on T, only the readout's division by T): a dict with timesteps, counts (per
    spiking layer, (B, ...) spikes so far), activations (the CQ-CNN's CQ outputs for the input the SNN
    saw over T steps), output (the SNN's logits after T steps) and cnn_output (the CQ-CNN's logits for
    that input). The dict's tensors are updated in place for the next T: copy what you keep."""
    wanted = set(range(1, snn.timesteps + 1) if timesteps is None else timesteps)
    if not wanted or min(wanted) < 1 or max(wanted) > snn.timesteps:
        raise ValueError(f"timesteps must lie in 1..{snn.timesteps} (the network's timesteps), got {sorted(wanted)}.")
    rec = snn.run(x, record=True, membrane=[], all_timesteps=True, seed=seed)  # spikes only
    folded = fold_batchnorm(model.eval())
    outputs, hooks = [], [m.register_forward_hook(lambda m, i, o: outputs.append(o))
                          for m in folded.modules() if isinstance(m, CQ)]
    x = x.to(rec.output.dtype)
    inputs = None if snn.encoding == "current" else encode(x, snn.timesteps, snn.encoding, seed)
    seen, counts = torch.zeros_like(x), [torch.zeros_like(c) for c in rec.counts]
    cnn = None
    try:
        for t in range(1, max(wanted) + 1):
            for count, spikes in zip(counts, rec.spikes):
                count += spikes[t - 1]
            if inputs is not None:
                seen += inputs[t - 1]
            if t in wanted and (cnn is None or inputs is not None):  # "current": the CNN sees x at every T
                outputs.clear()
                cnn = folded(x if inputs is None else seen / t)
                acts = list(outputs)
            if t in wanted:
                yield {"timesteps": t, "counts": counts, "activations": acts, "output": rec.outputs[t - 1],
                       "cnn_output": cnn}
    finally:
        for hook in hooks:
            hook.remove()


def agreement_every_timestep(model, snn, x, seed=0):
    """Per T = 1 .. snn.timesteps, from one simulation (`every_timestep`, chapter 7): exact and
    mae_spikes, (T, layers) arrays as in `layer_agreement`, and cnn, snn, (T, B) predicted classes."""
    exact, mae, cnn, snn_pred = [], [], [], []
    for step in every_timestep(model, snn, x, seed):
        errors = count_errors(step["activations"], step["counts"], step["timesteps"])
        exact.append(torch.stack([(e < EXACT).double().mean() for e in errors]))
        mae.append(torch.stack([e.double().mean() for e in errors]))
        cnn.append(step["cnn_output"].argmax(1))
        snn_pred.append(step["output"].argmax(1))
    return {"exact": torch.stack(exact).cpu(), "mae_spikes": torch.stack(mae).cpu(), "cnn": torch.stack(cnn).cpu(),
            "snn": torch.stack(snn_pred).cpu()}


def levels_sweep(model, dataset, levels=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), mode="floor", progress=True):
    """{L: test accuracy} of the CQ twin of `model` with L levels (and `mode`), weights unchanged:
    what quantizing costs a trained network before any fine-tuning (chapter 2)."""
    return {L: evaluate(to_cq(model, L, mode), dataset)
            for L in tqdm(levels, desc=f"levels sweep ({mode})", disable=not progress)}


def ceiling_sweep(model, dataset, ceilings, progress=True):
    """{ceiling: test accuracy} of `model` with every activation clamped at each ceiling, no retraining
    (chapter 1)."""
    return {c: evaluate(with_ceiling(model, c), dataset)
            for c in tqdm(ceilings, desc="ceiling sweep", disable=not progress)}
