"""Reproducing the paper: `cqlearn train` and `cqlearn eval` (chapter 9).

`train` runs the staged recipe (plain ReLU -> optional clamp -> CQ) on mnist, fashion-mnist or cifar10
and saves a checkpoint after every epoch (`last.pt`: weights, optimizer, stage and epoch, written
atomically by cq.save), so an interrupted run goes on with `--resume` from the last finished epoch and
ends with the same weights as an uninterrupted one (on a CPU, bit for bit: every epoch reseeds). On a
GPU the data sits on the device and the forward pass runs in mixed precision (float16). Under torchrun both
run on several processes (cqlearn.distributed): training with DistributedDataParallel, evaluation on
shards of the test set; one process runs exactly as without it.

`eval` converts a CQ checkpoint at each T, measures the SNN against the CQ-CNN (accuracy, prediction
agreement, per-layer exact spike counts) with float or n-bit weights, prints the rows and appends them
to a results file (.csv or .md).
"""
import copy
import datetime
import inspect
import json
import math
import time
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import analysis, data, distributed, models
from .checkpoints import load, read, save
from .convert import convert
from .quant import to_clamp, to_cq
from .results import (FIGURE_FORMATS, append_results, baseline_name, command_line, format_row, machine,
                      record_in_checkpoint, save_figure)

STAGES = ("plain", "clamp", "cq")
LAYER_IMAGE_STEPS = 4096  # images x T per batch of the per-layer statistics (vgg_small: about 250 MB recorded)


def pick_device(device=None):
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def stage_epochs(epochs):
    """(plain, clamp, cq) epochs from 1 to 3 numbers: E -> (E, 0, E); (P, C) -> (P, 0, C); (P, K, C)."""
    epochs = [int(e) for e in ([epochs] if isinstance(epochs, int) else epochs)]
    if not 1 <= len(epochs) <= 3 or min(epochs) < 0:
        raise ValueError(f"epochs takes 1 to 3 numbers >= 0 (plain [clamp] cq), got {epochs}.")
    return {1: lambda e: (e[0], 0, e[0]), 2: lambda e: (e[0], 0, e[1]), 3: tuple}[len(epochs)](epochs)


def crop_flip(x, padding=4):
    """The CIFAR-10 augmentation of data.random_crop_flip on a whole batch (B, C, H, W), on its device:
    each image gets its own random crop of the zero-padded image and a flip half the time."""
    B, C, H, W = x.shape
    padded = nn.functional.pad(x, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (B, 1), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (B, 1), device=x.device)
    rows = top + torch.arange(H, device=x.device)
    cols = left + torch.arange(W, device=x.device)
    cols = torch.where(torch.rand(B, 1, device=x.device) < 0.5, cols.flip(1), cols)
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def batches(dataset, batch_size=128, shuffle=False, seed=0, device="cpu", sampler=None):
    """Batches (x, y) on `device` straight from an ImageDataset's tensors (moved to the device once);
    shuffled with `seed` (or in the order of `sampler`), augmented with crop_flip when dataset.augment is set."""
    device = torch.device(device)
    cache = getattr(dataset, "_on_device", None)
    if cache is None or cache[0] != device:
        cache = (device, dataset.images.to(device), dataset.labels.to(device))
        dataset._on_device = cache
    _, images, labels = cache
    n = len(labels)
    if sampler is not None:
        order = torch.tensor(list(sampler), dtype=torch.long)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
    order = order.to(device)
    for i in range(0, len(order), batch_size):
        index = order[i:i + batch_size]
        x = images[index]
        yield (crop_flip(x) if dataset.augment else x), labels[index]


@torch.no_grad()
def accuracy(model, dataset, batch_size=256, device=None):
    """Accuracy in [0, 1] of a CNN or SpikingNetwork, with the data on the model's device (under torchrun,
    each process counts its shard)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = sum((model(x).argmax(1) == y).sum().item()
                  for x, y in batches(distributed.shard(dataset, batch_size), batch_size, device=device))
    model.train(was_training)
    return distributed.total(correct)[0] / len(dataset)


def _builder_takes(name, argument):
    return argument in inspect.signature(models.MODELS[name]).parameters


def build_model(name, train_set, levels=16, mode="floor", **kwargs):
    """The plain model `name` sized for the dataset's images (when the builder takes in_shape)."""
    if name not in models.MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(models.MODELS)}.")
    if _builder_takes(name, "in_shape"):
        kwargs.setdefault("in_shape", train_set.shape)
    unknown = [k for k in kwargs if not _builder_takes(name, k)]
    if unknown:
        raise ValueError(f"model {name!r} has no option {unknown[0]!r}.")
    return models.create(name, activation="relu", levels=levels, mode=mode, **kwargs)


def _twin(model, stage, levels, mode):
    if stage == "clamp":
        return to_clamp(model)
    if stage == "cq":
        return to_cq(model, levels, mode)
    return model


OPTIMIZERS = ("adam", "sgd")


def _optimizer(model, lr, weight_decay, steps, state=None, kind="adam"):
    """Adam, or SGD with Nesterov momentum 0.9 (better on CIFAR-10), with a cosine decay to zero."""
    if kind == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                                    weight_decay=weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
    return optimizer, schedule


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_precision(device, precision=None, amp=None):
    """The training precision, "fp32", "bf16" or "fp16" (torch.autocast; the weights stay float32 and
    evaluation rounds the CQ staircase in float64). Default: fp16 on a GPU, fp32 on the CPU. amp=True,
    the older switch, is bf16 on the CPU and fp16 on a GPU; amp=False is fp32."""
    if precision is None:
        use_amp = device.type == "cuda" if amp is None else amp
        precision = ("fp16" if device.type == "cuda" else "bf16") if use_amp else "fp32"
    elif amp is not None and amp != (precision != "fp32"):
        raise ValueError(f"--{'' if amp else 'no-'}amp contradicts --precision {precision}; pass --precision alone.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}.")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training is for GPUs (it needs loss scaling, and CPUs compute bfloat16 faster); "
                         "pass --precision bf16 on the CPU.")
    return precision


def _epoch(model, train_set, optimizer, schedule, scaler, batch_size, order, device, precision, progress, desc):
    model.train()
    total_loss = correct = seen = 0
    loader = batches(train_set, distributed.local_batch(batch_size), device=device, sampler=order)
    for x, y in tqdm(loader, desc=desc, total=distributed.steps(len(train_set), batch_size), disable=not progress,
                     leave=False, mininterval=10):
        with torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32"):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    model.eval()
    total_loss, correct, seen = distributed.total(total_loss, correct, seen)
    return total_loss / seen, correct / seen


def train_run(out, model_name, dataset, levels=16, epochs=(10, 0, 5), mode="floor", lr=1e-3, batch_size=128,
              weight_decay=5e-4, seed=0, limit=None, test_limit=None, augment=None, root=None, device=None,
              amp=None, resume=False, model_kwargs=None, progress=True, on_epoch=None, log=print, command=None,
              optimizer="adam", init=None, download=False, precision=None):
    """The staged recipe with a checkpoint after every epoch in `out` (chapter 9). Returns a summary dict.

    out/last.pt  the state after the last finished epoch (weights, optimizer, stage, epoch, history)
    out/plain.pt, out/clamp.pt  each stage's model when it ends, with its test accuracy
    out/{dataset}_{model}_cq{levels}.pt  the final CQ-CNN with its metadata (what `cqlearn eval` takes)
    init: a checkpoint of the same model (say another run's plain.pt) to start from, so that one plain
    network can be fine-tuned into CQ twins with other levels or modes (pass 0 plain epochs).
    on_epoch(stage, epoch) is called after each saved epoch (tests interrupt the run there); `command`
    (the CLI's arguments) is stored in the metadata. download=True lets torchvision fetch the dataset.
    precision: "fp32", "bf16" or "fp16" (pick_precision; `amp` is the older switch for it)."""
    out, device = Path(out), pick_device(device)
    if not distributed.is_main():  # under torchrun, rank 0 alone logs and writes
        log, progress = (lambda *args: None), False
    precision = pick_precision(device, precision, amp)
    augment = dataset == "cifar10" if augment is None else augment
    plan = dict(zip(STAGES, stage_epochs(epochs)))
    if not plan["cq"]:
        raise ValueError("the CQ stage needs at least one epoch: it is the network that converts.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
    train_set = data.load(dataset, "train", root=root, download=download, limit=limit, augment=augment)
    test_set = data.load(dataset, "test", root=root, limit=test_limit)
    config = {"model": model_name, "dataset": dataset, "levels": levels, "mode": mode, "epochs": list(plan.values()),
              "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed, "limit": limit,
              "test_limit": test_limit, "augment": augment, "model_kwargs": dict(model_kwargs or {}),
              "optimizer": optimizer, "init": None if init is None else str(init)}
    last = out / "last.pt"
    state = None
    if last.exists():
        if not resume:
            raise FileExistsError(f"{last} exists: pass --resume to go on from it, or choose another --out.")
        state = read(last)["meta"]
        if state["config"] != config:
            changed = sorted(k for k in config if config[k] != state["config"].get(k))
            raise ValueError(f"{last} was trained with other settings ({', '.join(changed)}); resume with the "
                             "same flags or choose another --out.")
        log(f"resuming {last}: stage {state['stage']}, {state['epoch']} epochs done")
    torch.manual_seed(seed)  # the initial weights
    model = build_model(model_name, train_set, levels, mode, **config["model_kwargs"])
    if init is not None and state is None:
        start = load(init).state_dict()
        if {k: v.shape for k, v in start.items()} != {k: v.shape for k, v in model.state_dict().items()}:
            raise ValueError(f"{init} holds another network than {model_name} with these options; pass the "
                             "checkpoint of a run with the same --model, --width and --dropout.")
        model.load_state_dict(start)
    history = state["history"] if state else {s: [] for s in STAGES}
    results = state["results"] if state else {}
    first = 0
    if state:
        model = load(last)  # the model of the stage it was in, activations included
        first = STAGES.index(state["stage"]) + (1 if state["finished"] else 0)
    steps_per_epoch = distributed.steps(len(train_set), batch_size)
    log(f"{model_name} on {dataset} ({len(train_set)} train, {len(test_set)} test images), {device}"
        f"{'' if precision == 'fp32' else ', ' + precision + ' autocast'}; epochs {plan}")
    for s, stage in enumerate(STAGES):
        if s < first or not plan[stage]:
            continue
        # a stage interrupted part-way goes on from its own state; any other stage starts afresh from the
        # weights the stage before it ended with (also when that stage finished in an earlier process)
        partial = state if state is not None and not state["finished"] and stage == state["stage"] else None
        if partial is None:
            model = _twin(model, stage, levels, mode)
        model.to(device, memory_format=torch.channels_last)  # faster convolutions on CPUs and GPUs
        net = distributed.wrap(model, device)  # DistributedDataParallel under torchrun, else the model
        opt, schedule = _optimizer(model, lr, weight_decay, plan[stage] * steps_per_epoch, partial,
                                   optimizer)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        for epoch in range(partial["epoch"] if partial else 0, plan[stage]):
            start = time.perf_counter()
            # augmentation and dropout: the same after a resume, their own in each process under torchrun
            torch.manual_seed(seed + 1000 * s + epoch + 10**6 * distributed.rank())
            order = distributed.sampler(train_set, seed + 1000 * s, epoch)  # one process: randperm(seed + ...)
            loss, train_acc = _epoch(net, train_set, opt, schedule, scaler, batch_size, order, device,
                                     precision, progress, f"{stage} {epoch + 1}")
            finished = epoch + 1 == plan[stage]
            if finished:  # the saved layout, as `cqlearn eval` reads it: channels-last sums in another order,
                model.to(memory_format=torch.contiguous_format)  # which can move a value across a CQ level
            test_acc = accuracy(model, test_set)
            history[stage].append({"epoch": epoch + 1, "loss": loss, "train_accuracy": train_acc,
                                   "test_accuracy": test_acc, "seconds": time.perf_counter() - start})
            if finished:  # the stage's model first, so that last.pt never points past a missing file
                results[stage] = test_acc
                name = final_name(dataset, model_name, levels) if stage == "cq" else f"{stage}.pt"
                if distributed.is_main():
                    save(model, out / name, **_meta(config, stage, results, history, precision, command))
            if distributed.is_main():
                save(model, last, stage=stage, epoch=epoch + 1, finished=finished, config=config, history=history,
                     results=results, optimizer=opt.state_dict(), schedule=schedule.state_dict())
            log(f"{stage} epoch {epoch + 1}/{plan[stage]}: loss {loss:.4f}, train {100 * train_acc:.2f} %, "
                f"test {100 * test_acc:.2f} % ({time.perf_counter() - start:.0f} s)")
            if on_epoch is not None:
                on_epoch(stage, epoch + 1)
    summary = {"plain_accuracy": results.get("plain"), "clamp_accuracy": results.get("clamp"),
               "cq_accuracy": results["cq"], "checkpoint": str(out / final_name(dataset, model_name, levels))}
    log("done: " + json.dumps(summary))
    return summary


def final_name(dataset, model_name, levels):
    return f"{dataset}_{model_name}_cq{levels}.pt"


def _meta(config, stage, results, history, precision, command):
    return {"dataset": config["dataset"], "model_name": config["model"], "stage": stage, "levels": config["levels"],
            "mode": config["mode"], "timesteps": config["levels"], "encoding": "spikes",
            "accuracy": results[stage], "plain_accuracy": results.get("plain"),
            "clamp_accuracy": results.get("clamp"), "epochs": config["epochs"], "seed": config["seed"],
            "train_images": config["limit"], "test_images": config["test_limit"], "augment": config["augment"],
            "history": history, "trained_on": machine() + ("" if precision == "fp32" else f" ({precision} autocast)")
            + (f", {distributed.world_size()} processes (torchrun)" if distributed.world_size() > 1 else ""),
            "date": datetime.date.today().isoformat(), "command": command_line(command)}


@torch.no_grad()
def predictions(model, dataset, batch_size=250, device=None):
    device = device or next(model.parameters()).device
    model.eval()
    return torch.cat([model(x).argmax(1).cpu() for x, _ in batches(dataset, batch_size, device=device)])


def snn_row(model, snn, test_set, cq_predictions, batch_size=250, layer_x=None, progress=False, desc="SNN",
            predicted=None):
    """SNN accuracy, agreement with the CQ-CNN's predictions and per-layer exact spike counts (on the
    images `layer_x`, via analysis.layer_agreement), in one dict. `predicted`: the SNN's predictions when
    already known (analysis.predict_every_timestep). Under torchrun, test_set and cq_predictions are this
    process's shard and the fractions are over all processes."""
    device = next(snn.parameters()).device
    cq_predictions = cq_predictions.cpu()
    if predicted is None:
        predicted = []
        loader = batches(test_set, batch_size, device=device)
        for x, _ in tqdm(loader, desc=desc, total=math.ceil(len(test_set) / batch_size), disable=not progress,
                         leave=False, mininterval=10):
            predicted.append(snn(x).argmax(1).cpu())
        predicted = torch.cat(predicted)
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
             calibration=1000, figure=None, float_weights=True, download=False, neurons=("if",)):
    """Rows comparing CNN, CQ-CNN and the SNN at each T (float weights, then each n in weight_bits), printed
    and appended to `results` (.csv, or a markdown table otherwise). record=True writes the SNN
    accuracies into the checkpoint's metadata. Returns the rows. float_weights=False skips the
    float-weight rows (when only the n-bit rows are still to be measured). neurons: "if" and/or "signed"
    (cq.convert's neuron), a row each.

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
    cq_predictions = predictions(model, shard, batch_size, device)
    cq_accuracy = distributed.fraction(cq_predictions == shard.labels)
    levels = next((m.levels for m in model.modules() if hasattr(m, "levels")), meta.get("levels"))
    base = {"date": datetime.date.today().isoformat(), "dataset": dataset, "network": "CQ",
            "model": (getattr(model, "arch", None) or {}).get("name", "?"), "levels": levels,
            "images": len(test_set), "cnn": None, "cq_cnn": cq_accuracy,
            "machine": machine(), "command": command_line(command), "checkpoint": str(checkpoint)}
    if baseline:
        from . import baseline as naive
        plain = load(baseline).to(device)
        plain_predictions = predictions(plain, shard, batch_size, device)
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
        snn = convert(model, max(timesteps), encoding, neuron).to(device)  # one simulation per precision: every T
        nets = {bits: snn if bits is None else snn.with_weight_bits(bits, readout=readout) for bits in precisions}
        predicted = {bits: analysis.predict_every_timestep(net, shard, timesteps, batch_size, progress,
                                                           f"{neuron} {encoding} T<={max(timesteps)} {bits or 32}-bit")
                     for bits, net in nets.items()}
        for T in timesteps:
            for bits, net in nets.items():
                start = time.perf_counter()
                at_T = copy.copy(net)  # the same layers, read out after T steps
                at_T.timesteps = T
                row = {**base, "neuron": neuron, "encoding": encoding, "timesteps": T,
                       "weights": "float32" if bits is None else f"{bits}-bit", "weight_bits": bits,
                       "readout": "float32" if bits is None or not readout else f"{bits}-bit",
                       **snn_row(model, at_T, shard, cq_predictions, batch_size, layer_x, progress,
                                 predicted=predicted[bits][T])}
                add({**row, "snn_minus_converted": row["snn"] - cq_accuracy}, start)
            for percentile in percentiles if baseline and neuron == neurons[0] else ():  # IF, once per encoding
                start = time.perf_counter()
                net = naive.normalise(plain, images, T, encoding, percentile).to(device)
                row = {**base, "network": baseline_name(percentile), "levels": "-", "cq_cnn": None,
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
