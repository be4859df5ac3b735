"""`cqlearn train`: the staged recipe on a dataset, resumable and recorded (chapter 9).

It runs plain ReLU -> optional clamp -> CQ (the recipe of `train.staged`, with `train.train_epoch`) on
mnist, fashion-mnist or cifar10, configured by a `TrainConfig`, and saves a checkpoint after every epoch
(`last.pt`: weights, optimizer, stage and epoch, written atomically by cq.save), so an interrupted run
goes on with `--resume` from the last finished epoch and ends with the same weights as an uninterrupted
one (on a CPU, bit for bit: every epoch reseeds). On a GPU the data sits on the device and the forward
pass runs in mixed precision (float16). Under torchrun it trains with DistributedDataParallel
(cqlearn.distributed); one process runs exactly as without it. `cqlearn eval` is evaluation.py.
"""
import datetime
import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import data, distributed, models
from .checkpoints import load, read, save
from .quant import to_clamp, to_cq
from .results import command_line, machine
from .train import OPTIMIZERS, batches, evaluate, make_optimizer, pick_device, pick_precision, train_epoch

STAGES = ("plain", "clamp", "cq")


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
        opt, schedule = make_optimizer(model, c.lr, c.weight_decay, plan[stage] * steps_per_epoch, partial,
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
