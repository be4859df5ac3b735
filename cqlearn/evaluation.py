"""`cqlearn eval`: a CQ checkpoint converted at each T and measured against the CQ-CNN (chapter 9).

Each row holds the SNN's accuracy, its agreement with the CQ-CNN's predictions and the per-layer
exact spike counts, with float or n-bit weights, "if" or "signed" neurons; the rows are printed and
appended to a results file (.csv or .md, results.py). Under torchrun the test set is sharded over the
processes (cqlearn.distributed); one process gives the same rows.
"""
import datetime
import math
import time
from pathlib import Path

import torch

from . import analysis, data, distributed
from .checkpoints import load
from .conversion import convert
from .quant import cq_config
from .results import (FIGURE_FORMATS, append_results, baseline_name, command_line, format_row, machine,
                      record_in_checkpoint, save_figure)
from .train import pick_device, predict

LAYER_IMAGE_STEPS = 4096  # images x T per batch of the per-layer statistics (vgg_small: about 250 MB recorded)


@torch.no_grad()
def snn_row(model, snn, test_set, cq_predictions, batch_size=250, layer_x=None, progress=False, desc="SNN",
            predicted=None):
    """SNN accuracy, agreement with the CQ-CNN's predictions and per-layer exact spike counts (on the
    images `layer_x`, via analysis.layer_agreement), in one dict. `predicted`: the SNN's predictions when
    already known (analysis.predict_every_timestep). Under torchrun, test_set and cq_predictions are this
    process's shard and the fractions are over all processes."""
    device = next(snn.parameters()).device
    cq_predictions = cq_predictions.cpu()
    if predicted is None:
        predicted = predict(snn, test_set, batch_size, device, progress, desc)
    row = {"snn": distributed.fraction(predicted == test_set.labels),
           "agreement": distributed.fraction(predicted == cq_predictions)}
    if layer_x is not None:  # in batches: the layer statistics record every step of every image
        images = torch.utils.data.TensorDataset(layer_x.to(device), torch.zeros(len(layer_x)))
        per_batch = max(1, min(batch_size, LAYER_IMAGE_STEPS // snn.timesteps))
        layers = analysis.layer_agreement(model, snn, images, per_batch)
        row["layer_exact"] = " / ".join(f"{100 * layer['exact']:.1f}" for layer in layers)
    return row


def eval_run(checkpoint, timesteps=(16, 32, 64), encodings=("spikes",), weight_bits=(), readout=True,
             dataset=None, limit=None, layer_images=1000, batch_size=250, results=None, record=False, root=None,
             device=None, progress=True, log=print, command=None, baseline=None, percentiles=(99.9,),
             calibration=1000, figure=None, float_weights=True, download=False, neurons=("if",), flush=0):
    """Rows comparing CNN, CQ-CNN and the SNN at each T (float weights, then each n in weight_bits), printed
    and appended to `results` (.csv, or a markdown table otherwise). record=True writes the SNN
    accuracies into the checkpoint's metadata. Returns the rows. float_weights=False skips the
    float-weight rows (when only the n-bit rows are still to be measured). neurons: "if" and/or "signed"
    (cq.convert's neuron), a row each. flush: cq.convert's flush steps, in every SNN row.

    baseline: a plain ReLU checkpoint to convert naively as well (cqlearn.baseline.normalise, scales
    from each of `percentiles` of the activations on `calibration` training images; 100 is the max), a
    row per T and percentile. figure: a .png (or .svg, .pdf) path for accuracy against T, float weights.

    The CNN column is the plain network's accuracy on the same images: measured when `baseline` is
    given, else taken from the checkpoint's metadata only if it was measured on the same test images
    (same dataset and limit), else left empty."""
    precisions = ((None,) if float_weights else ()) + tuple(weight_bits)
    if not precisions:
        raise ValueError("nothing to measure: float_weights=False (--no-float) needs weight_bits (--weight-bits).")
    if figure is not None and Path(figure).suffix.lower() not in FIGURE_FORMATS:
        raise ValueError(f"cannot draw the figure into {figure}: choose a file name ending in "
                         f"{', '.join(FIGURE_FORMATS)}.")
    device = pick_device(device)
    if not distributed.is_main():  # under torchrun, rank 0 alone logs and writes
        log, progress, results, record, figure = (lambda *args: None), False, None, False, None
    model = load(checkpoint).to(device)
    meta = dict(model.meta)
    dataset = dataset or meta.get("dataset")
    if dataset is None:
        raise ValueError(f"{checkpoint} does not say which dataset it was trained on; pass --dataset.")
    test_set = data.load(dataset, "test", root=root, download=download, limit=limit)
    shard = distributed.shard(test_set, batch_size)  # whole batches; the test set itself for one process
    if math.ceil(len(test_set) / batch_size) < distributed.world_size():
        raise ValueError(f"{len(test_set)} test images make fewer batches of {batch_size} than there are "
                         f"processes ({distributed.world_size()}); pass a smaller --batch-size.")
    layer_x = test_set.images[:layer_images] if layer_images and distributed.is_main() else None
    cq_predictions = predict(model, shard, batch_size, device)
    cq_accuracy = distributed.fraction(cq_predictions == shard.labels)
    levels, mode = cq_config(model)
    base = {"date": datetime.date.today().isoformat(), "dataset": dataset, "network": "CQ",
            "model": (getattr(model, "arch", None) or {}).get("name", "?"), "levels": levels, "mode": mode,
            "images": len(test_set), "cnn": None, "cq_cnn": cq_accuracy,
            "machine": machine(), "command": command_line(command), "checkpoint": str(checkpoint)}
    if baseline:
        from . import baseline as naive
        plain = load(baseline).to(device)
        plain_predictions = predict(plain, shard, batch_size, device)
        base["cnn"] = plain_accuracy = distributed.fraction(plain_predictions == shard.labels)
        images = data.load(dataset, "train", root=root, limit=calibration).images.to(device)
    elif (dataset, limit) == (meta.get("dataset"), meta.get("test_images")):  # the images it was measured on
        base["cnn"] = meta.get("plain_accuracy")
    else:
        log(f"CNN accuracy left out: the checkpoint's was measured on other test images than these "
            f"{len(test_set)}; pass --baseline PLAIN_CHECKPOINT to measure it on them.")
    rows = []

    def add(row, start):  # each row goes to the file as soon as it is measured
        rows.append(row)
        log(format_row(row) + f"  ({time.perf_counter() - start:.0f} s)")
        if results:
            append_results([row], results)
        if record and row["network"] == "CQ":
            record_in_checkpoint(checkpoint, model, meta, [row])

    for neuron, encoding in [(n, e) for n in neurons for e in encodings]:
        snn = convert(model, max(timesteps), encoding, neuron, flush).to(device)  # one simulation per precision: every T
        nets = {bits: snn if bits is None else snn.with_weight_bits(bits, readout=readout) for bits in precisions}
        predicted = {bits: analysis.predict_every_timestep(net, shard, timesteps, batch_size, progress,
                                                           f"{neuron} {encoding} T<={max(timesteps)} {bits or 32}-bit")
                     for bits, net in nets.items()}
        for T in timesteps:
            for bits, net in nets.items():
                start = time.perf_counter()
                at_T = analysis.at_timesteps(net, T)  # the same layers, read out after T steps
                row = {**base, "neuron": neuron, "encoding": encoding, "timesteps": T, "flush": flush,
                       "weights": "float32" if bits is None else f"{bits}-bit", "weight_bits": bits,
                       "readout": "float32" if bits is None or not readout else f"{bits}-bit",
                       **snn_row(model, at_T, shard, cq_predictions, batch_size, layer_x, progress,
                                 predicted=predicted[bits][T])}
                add({**row, "snn_minus_converted": row["snn"] - cq_accuracy}, start)
            for percentile in percentiles if baseline and neuron == neurons[0] else ():  # IF, once per encoding
                start = time.perf_counter()
                net = naive.normalise(plain, images, T, encoding, percentile).to(device)
                row = {**base, "network": baseline_name(percentile), "levels": "-", "mode": "-", "cq_cnn": None,
                       "cnn": plain_accuracy, "checkpoint": str(baseline), "neuron": "if", "encoding": encoding, "timesteps": T,
                       "weights": "float32", "readout": "float32",
                       **snn_row(plain, net, shard, plain_predictions, batch_size, None, progress,
                                 f"baseline T={T}")}
                add({**row, "snn_minus_converted": row["snn"] - plain_accuracy}, start)
    if results:
        log(f"appended {len(rows)} rows to {results}")
    if figure:
        save_figure(rows, figure)
        log(f"wrote {figure}")
    return rows
