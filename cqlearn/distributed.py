"""Several processes with torchrun: data-parallel training and sharded evaluation (README, "Scaling out").

`torchrun --nproc_per_node=N -m cqlearn train|eval ...` starts N copies of the command and gives each
its RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT. `setup` joins them into one process
group: gloo on CPUs, nccl on GPUs (one GPU per process, cuda:LOCAL_RANK).

Training (DistributedDataParallel): every batch of --batch-size images is split into N equal parts,
one per process, through a DistributedSampler whose epoch is set every epoch; the processes average
their gradients, and BatchNorm normalises with the statistics of the whole batch (SyncBatchNorm), so
one step is the step one process takes on the whole batch. Evaluation: each process takes whole
batches of the test set (every N-th, from its rank), so every image is computed in the same batch as
in one process and gives the same answer; the counts are added up with all_reduce. Only rank 0 writes
checkpoints, results, logs and progress bars.

Without torchrun (WORLD_SIZE unset or 1) nothing here does anything: one process runs as before.
"""
import math
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from .data import ImageDataset

LAUNCH = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched():
    """True when torchrun started this process as one of several (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device=None):
    """Join the processes torchrun started (a no-op for one process); returns the device this process
    uses: `device` itself for one process, else "cpu" or "cuda:LOCAL_RANK"."""
    if not launched():
        return device
    missing = [name for name in LAUNCH if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} says this is one of several processes, but "
                         f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: start cqlearn with "
                         "torchrun (torchrun --nproc_per_node=N -m cqlearn ...), which sets them all, or unset "
                         "WORLD_SIZE to run one process.")
    local = int(os.environ["LOCAL_RANK"])
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} but this machine has no GPU torch can use; pass --device cpu "
                             "(the processes then talk through gloo).")
        if chosen.index not in (None, local):
            raise ValueError(f"--device {device}: under torchrun each process uses the GPU of its LOCAL_RANK "
                             f"(here cuda:{local}); pass --device cuda, or choose GPUs with CUDA_VISIBLE_DEVICES.")
        if local >= torch.cuda.device_count():
            raise ValueError(f"process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                             f"visible): start at most {torch.cuda.device_count()} processes per machine "
                             "(--nproc_per_node) or pass --device cpu.")
        torch.cuda.set_device(local)
        chosen = torch.device("cuda", local)
    elif chosen.type != "cpu":
        raise ValueError(f"--device {device}: torchrun runs cqlearn on cpu (gloo) or cuda (nccl) devices.")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return str(chosen)


def teardown():
    """Leave the process group (a no-op for one process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def is_main():
    """True in the process that writes files and logs: rank 0, or the only process."""
    return rank() == 0


def local_batch(batch_size):
    """Each process's part of a global batch of `batch_size` images."""
    if batch_size % world_size():
        raise ValueError(f"--batch-size {batch_size} does not split evenly over {world_size()} processes: pass a "
                         f"multiple of {world_size()} (the global batch; each process takes an equal part).")
    return batch_size // world_size()


def sampler(dataset, seed, epoch):
    """This process's share of the training images in the order of epoch `epoch`: for one process, the
    permutation of torch.randperm with seed + epoch, which the processes of a group split between them."""
    order = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
    order.set_epoch(epoch)
    return order


def steps(images, batch_size):
    """Optimizer steps in an epoch of `images` training images with a global batch of batch_size."""
    return math.ceil(math.ceil(images / world_size()) / local_batch(batch_size))


def wrap(model, device):
    """`model` for training on every process: its BatchNorm2d layers become SyncBatchNorm (in place) and
    it is wrapped in DistributedDataParallel. The model itself for one process."""
    if world_size() == 1:
        return model
    _sync_batchnorm(model)
    device = torch.device(device)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with the mean and variance of the whole batch across processes, in training.

    Each process adds up its sums, sums of squares and counts through an all_reduce whose backward pass
    is an all_reduce too, so the gradients are those of one process on the whole batch. (torch's own
    nn.SyncBatchNorm has GPU kernels only; this one runs wherever all_reduce does, gloo included.)"""

    def forward(self, x):
        if not self.training or world_size() == 1:
            return super().forward(x)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        sums = torch.cat([x.sum((0, 2, 3), dtype=torch.float64), x.square().sum((0, 2, 3), dtype=torch.float64),
                          count])
        sums = _AllReduce.apply(sums)
        n, channels = sums[-1], x.shape[1]
        mean = sums[:channels] / n
        var = sums[channels:-1] / n - mean ** 2  # sums in float64: no cancellation to fear
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_((var * n / (n - 1)).to(self.running_var.dtype), momentum)
        shape = (1, -1, 1, 1)
        y = (x.float() - mean.float().view(shape)) * torch.rsqrt(var.float().view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)  # as BatchNorm2d under autocast: the input's precision


class _AllReduce(torch.autograd.Function):
    """The sum over all processes; its gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _sync_batchnorm(module):
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats, device=child.weight.device)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            _sync_batchnorm(child)


def shard(dataset, batch_size):
    """This process's share of an evaluation set: whole batches of batch_size, every N-th one from its
    rank (the dataset itself for one process)."""
    if world_size() == 1:
        return dataset
    index = torch.arange(len(dataset)).split(batch_size)[rank()::world_size()]
    index = torch.cat(index) if index else torch.zeros(0, dtype=torch.long)
    return ImageDataset(dataset.images[index], dataset.labels[index], dataset.classes, dataset.augment)


def total(*numbers):
    """The numbers summed over all processes (the numbers themselves for one process)."""
    if world_size() == 1:
        return numbers
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    sums = torch.tensor(numbers, dtype=torch.float64, device=device)
    dist.all_reduce(sums)
    return tuple(sums.tolist())


def fraction(matches):
    """The fraction of True in `matches` (bool) over all processes, computed as one process computes
    it from all of them: the float32 mean."""
    if world_size() == 1:
        return matches.float().mean().item()
    hits, count = total(matches.sum().item(), matches.numel())
    return (torch.tensor(hits, dtype=torch.float32) / count).item()
