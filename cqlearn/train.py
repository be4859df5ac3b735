"""Training, evaluation and the staged CQ recipe (chapter 4): the one epoch loop (train_epoch), batching
and prediction, used by the book's `train` and by `cqlearn train` (experiments.py) alike.

The recipe trains the plain ReLU network first, then fine-tunes its clamp twin, then its CQ twin:
each stage starts from the weights of the one before, so the network meets one constraint at a time.
On a CPU, the same seed gives the same weights bit for bit.
"""
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import crop_flip
from .quant import to_clamp, to_cq


def seed_everything(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def pick_device(device=None):
    """torch.device(device), by default the GPU when there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def batches(dataset, batch_size=128, shuffle=False, seed=0, device="cpu", order=None):
    """(x, y) batches of an ImageDataset on `device`, indexed straight from its tensors (faster than a
    DataLoader, which collates image by image); shuffled with `seed`, or in the given `order` of image
    indices (e.g. a DistributedSampler's share), augmented (data.crop_flip) when dataset.augment is set."""
    images, labels = dataset.images.to(device), dataset.labels.to(device)
    n = len(labels)
    if order is not None:
        order = torch.as_tensor(list(order), dtype=torch.long)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(n)
    order = order.to(device)
    for i in range(0, len(order), batch_size):
        index = order[i:i + batch_size]
        x = images[index]
        yield (crop_flip(x) if dataset.augment else x), labels[index]


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


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(model, lr, weight_decay, steps, state=None, kind="adam"):
    """Adam, or SGD with Nesterov momentum 0.9 (better on CIFAR-10), with a cosine decay to zero over
    `steps` steps; `state` (a checkpoint's metadata) restores both where a run stopped."""
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


def train_epoch(model, batches, optimizer, schedule=None, scaler=None, precision="fp32"):
    """One pass over `batches` ((x, y) on the model's device): cross-entropy, backward, optimizer step,
    schedule step. Returns the mean loss and the accuracy on those batches. precision: "fp32", or "bf16"
    / "fp16" under torch.autocast (the weights stay float32), with the scaler's loss scaling when one is
    given (fp16)."""
    model.train()
    total_loss = correct = seen = 0
    for x, y in batches:
        with torch.autocast(x.device.type, dtype=PRECISIONS[precision], enabled=precision != "fp32"):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)  # in float32 under autocast, in the model's dtype otherwise
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if schedule is not None:
            schedule.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, correct / seen


def train(model, train_set, test_set=None, epochs=10, lr=1e-3, batch_size=64, weight_decay=5e-4, seed=0,
          device=None, progress=True, desc="train"):
    """Adam with a cosine learning-rate schedule. Returns the history: per epoch, mean training loss and
    training accuracy, and test accuracy when test_set is given. The model is left in eval mode."""
    device = pick_device(device)
    model.to(device)
    generator = seed_everything(seed)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer, schedule = make_optimizer(model, lr, weight_decay, epochs * len(loader))
    history = {"loss": [], "train_accuracy": [], "test_accuracy": []}
    bar = tqdm(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        loss, accuracy = train_epoch(model, ((x.to(device), y.to(device)) for x, y in loader), optimizer, schedule)
        history["loss"].append(loss)
        history["train_accuracy"].append(accuracy)
        if test_set is not None:
            history["test_accuracy"].append(evaluate(model, test_set, device=device, progress=False))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}",
                        test=f"{history['test_accuracy'][-1]:.3f}" if test_set is not None else "-")
    model.eval()
    return history


@torch.no_grad()
def predict(model, dataset, batch_size=256, device=None, progress=False, desc="evaluate"):
    """Predicted labels (N,), on the CPU, of a CNN or a SpikingNetwork over a dataset, in eval mode (the
    model's mode is restored after)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = tqdm(DataLoader(dataset, batch_size=batch_size), desc=desc, disable=not progress, leave=False)
    predictions = [model(x.to(device)).argmax(1).cpu() for x, _ in loader]
    model.train(was_training)
    return torch.cat(predictions)


def evaluate(model, dataset, batch_size=256, device=None, progress=False):
    """Accuracy in [0, 1] of a CNN or a SpikingNetwork on a dataset."""
    labels = dataset.labels.cpu() if hasattr(dataset, "labels") else torch.as_tensor([y for _, y in dataset])
    return (predict(model, dataset, batch_size, device, progress) == labels).sum().item() / len(labels)


def staged(model, train_set, test_set=None, levels=16, mode="floor", epochs=(10, 5, 5), seed=0, **options):
    """The recipe plain -> clamp -> CQ. Returns {"plain": ..., "clamp": ..., "cq": ...}, each a pair
    (model, history). epochs gives the epochs of each stage; a stage with 0 epochs is skipped."""
    stages = {}
    for name, twin, n in (("plain", lambda m: m, epochs[0]), ("clamp", to_clamp, epochs[1]),
                          ("cq", lambda m: to_cq(m, levels, mode), epochs[2])):
        model = twin(model)
        if n:
            stages[name] = (model, train(model, train_set, test_set, n, seed=seed, desc=name, **options))
    return stages
