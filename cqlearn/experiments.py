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
import datetime
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import analysis, data, distributed, models
from .checkpoints import load, read, save
from .convert import convert
from .quant import to_clamp, to_cq
from .train import PRECISIONS, batches, evaluate, predict, train_epoch
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


@dataclass
class TrainConfig:
    """What a `cqlearn train` run is (its flags): equal configs give equal weights (on a CPU, bit for bit).
    last.pt stores it, and --resume refuses to go on with another one."""
    model: str
    dataset: str
    levels: int = 16
    mode: str = "floor"
    epochs: list = (10, 0, 5)  # plain, clamp, CQ stages: 1 to 3 numbers, as stage_epochs reads them
    lr: float = 1e-3  # with a cosine decay to zero in each stage
    batch_size: int = 128
    weight_decay: float = 5e-4
    seed: int = 0
    limit: int | None = None  # only the first `limit` training images
    test_limit: int | None = None
    augment: bool | None = None  # random crop and flip; None: on for cifar10 only
    model_kwargs: dict = field(default_factory=dict)  # e.g. width, dropout
    optimizer: str = "adam"  # or "sgd" (Nesterov momentum 0.9)
    init: str | None = None  # a checkpoint of the same model to start from, e.g. another run's plain.pt

    def __post_init__(self):
        self.epochs = list(stage_epochs(self.epochs))
        if not self.epochs[2]:
            raise ValueError("the CQ stage needs at least one epoch: it is the network that converts.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        self.augment = self.dataset == "cifar10" if self.augment is None else self.augment
        self.model_kwargs = dict(self.model_kwargs or {})
        self.init = None if self.init is None else str(self.init)


def train_run(out, config, root=None, download=False, device=None, amp=None, resume=False, progress=True,
              on_epoch=None, log=print, command=None, precision=None):
    """The staged recipe of `config` (a TrainConfig) with a checkpoint after every epoch in `out`
    (chapter 9). Returns a summary dict.

    out/last.pt  the state after the last finished epoch (weights, optimizer, stage, epoch, history)
    out/plain.pt, out/clamp.pt  each stage's model when it ends, with its test accuracy
    out/{dataset}_{model}_cq{levels}.pt  the final CQ-CNN with its metadata (what `cqlearn eval` takes)
    config.init lets one plain network be fine-tuned into CQ twins with other levels or modes (0 plain
    epochs). on_epoch(stage, epoch) is called after each saved epoch; `command` (the CLI's arguments) is
    stored in the metadata; download=True lets torchvision fetch the dataset. precision: "fp32", "bf16" or
    "fp16" (pick_precision; `amp` is the older switch for it). Under torchrun it trains with
    DistributedDataParallel, and rank 0 alone logs and writes."""
    out, device, c = Path(out), pick_device(device), config
    if not distributed.is_main():
        log, progress = (lambda *args: None), False
    precision = pick_precision(device, precision, amp)
    plan = dict(zip(STAGES, c.epochs))
    train_set = data.load(c.dataset, "train", root=root, download=download, limit=c.limit, augment=c.augment)
    train_set = train_set.to(device)  # once, not every epoch
    test_set = data.load(c.dataset, "test", root=root, limit=c.test_limit)
    last = out / "last.pt"
    state = _state(last, c, resume, log)
    torch.manual_seed(c.seed)  # the initial weights
    model = build_model(c.model, train_set, c.levels, c.mode, **c.model_kwargs)
    if c.init is not None and state is None:
        start = load(c.init).state_dict()
        if {k: v.shape for k, v in start.items()} != {k: v.shape for k, v in model.state_dict().items()}:
            raise ValueError(f"{c.init} holds another network than {c.model} with these options; pass the "
                             "checkpoint of a run with the same --model, --width and --dropout.")
        model.load_state_dict(start)
    history = state["history"] if state else {s: [] for s in STAGES}
    results = state["results"] if state else {}
    first = 0
    if state:
        model = load(last)  # the model of the stage it was in, activations included
        first = STAGES.index(state["stage"]) + (1 if state["finished"] else 0)
    steps_per_epoch = distributed.steps(len(train_set), c.batch_size)
    log(f"{c.model} on {c.dataset} ({len(train_set)} train, {len(test_set)} test images), {device}"
        f"{'' if precision == 'fp32' else ', ' + precision + ' autocast'}; epochs {plan}")
    for s, stage in enumerate(STAGES):
        if s < first or not plan[stage]:
            continue
        # a stage interrupted part-way goes on from its own state; any other stage starts afresh from the
        # weights the stage before it ended with (also when that stage finished in an earlier process)
        partial = state if state is not None and not state["finished"] and stage == state["stage"] else None
        if partial is None:
            model = _twin(model, stage, c.levels, c.mode)
        model.to(device, memory_format=torch.channels_last)  # faster convolutions on CPUs and GPUs
        net = distributed.wrap(model, device)  # DistributedDataParallel under torchrun, else the model
        opt, schedule = _optimizer(model, c.lr, c.weight_decay, plan[stage] * steps_per_epoch, partial,
                                   c.optimizer)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        for epoch in range(partial["epoch"] if partial else 0, plan[stage]):
            start = time.perf_counter()
            # augmentation and dropout: the same after a resume, their own in each process under torchrun
            torch.manual_seed(c.seed + 1000 * s + epoch + 10**6 * distributed.rank())
            order = distributed.sampler(train_set, c.seed + 1000 * s, epoch)  # one process: randperm(seed + ...)
            loader = tqdm(batches(train_set, distributed.local_batch(c.batch_size), device=device, order=order),
                          desc=f"{stage} {epoch + 1}", total=steps_per_epoch, disable=not progress, leave=False,
                          mininterval=10)
            loss, train_acc = train_epoch(net, loader, opt, schedule, scaler if scaler.is_enabled() else None,
                                          precision)
            if distributed.world_size() > 1:  # the mean over every process's images
                images = len(order)
                loss, correct, seen = distributed.total(loss * images, train_acc * images, images)
                loss, train_acc = loss / seen, correct / seen
            finished = epoch + 1 == plan[stage]
            if finished:  # the saved layout, as `cqlearn eval` reads it: channels-last sums in another order,
                model.to(memory_format=torch.contiguous_format)  # which can move a value across a CQ level
            test_acc = evaluate(model, test_set)
            history[stage].append({"epoch": epoch + 1, "loss": loss, "train_accuracy": train_acc,
                                   "test_accuracy": test_acc, "seconds": time.perf_counter() - start})
            if finished:  # the stage's model first, so that last.pt never points past a missing file
                results[stage] = test_acc
                name = final_name(c) if stage == "cq" else f"{stage}.pt"
                if distributed.is_main():
                    save(model, out / name, **_meta(c, stage, results, history, precision, command))
            if distributed.is_main():
                save(model, last, stage=stage, epoch=epoch + 1, finished=finished, config=asdict(c), history=history,
                     results=results, optimizer=opt.state_dict(), schedule=schedule.state_dict())
            log(f"{stage} epoch {epoch + 1}/{plan[stage]}: loss {loss:.4f}, train {100 * train_acc:.2f} %, "
                f"test {100 * test_acc:.2f} % ({time.perf_counter() - start:.0f} s)")
            if on_epoch is not None:
                on_epoch(stage, epoch + 1)
    summary = {"plain_accuracy": results.get("plain"), "clamp_accuracy": results.get("clamp"),
               "cq_accuracy": results["cq"], "checkpoint": str(out / final_name(c))}
    log("done: " + json.dumps(summary))
    return summary


def _state(last, config, resume, log):
    """The metadata of last.pt to resume from, None for a new run; refuses to overwrite or to mix settings."""
    if not last.exists():
        return None
    if not resume:
        raise FileExistsError(f"{last} exists: pass --resume to go on from it, or choose another --out.")
    state, config = read(last)["meta"], asdict(config)
    if state["config"] != config:
        changed = sorted(k for k in config if config[k] != state["config"].get(k))
        raise ValueError(f"{last} was trained with other settings ({', '.join(changed)}); resume with the "
                         "same flags or choose another --out.")
    log(f"resuming {last}: stage {state['stage']}, {state['epoch']} epochs done")
    return state


def final_name(config):
    return f"{config.dataset}_{config.model}_cq{config.levels}.pt"


def _meta(config, stage, results, history, precision, command):
    return {"dataset": config.dataset, "model_name": config.model, "stage": stage, "levels": config.levels,
            "mode": config.mode, "timesteps": config.levels, "encoding": "spikes",
            "accuracy": results[stage], "plain_accuracy": results.get("plain"),
            "clamp_accuracy": results.get("clamp"), "epochs": config.epochs, "seed": config.seed,
            "train_images": config.limit, "test_images": config.test_limit, "augment": config.augment,
            "history": history, "trained_on": machine() + ("" if precision == "fp32" else f" ({precision} autocast)")
            + (f", {distributed.world_size()} processes (torchrun)" if distributed.world_size() > 1 else ""),
            "date": datetime.date.today().isoformat(), "command": command_line(command)}


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
    levels = next((m.levels for m in model.modules() if hasattr(m, "levels")), meta.get("levels"))
    mode = next((m.mode for m in model.modules() if hasattr(m, "mode")), meta.get("mode"))
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
