"""Training precision: images per second of a training step in float32 and under bfloat16 autocast
(channels-last, as `cqlearn train --precision bf16` runs), and the accuracy after the same short
training in each. Prints a markdown section for BENCHMARKS.md ("Training precision").

    python benchmarks/precision.py                                     # throughput (random images)
    python benchmarks/precision.py --accuracy --root data --limit 4000 --test-limit 2000 --epochs 3 2

Not part of `make bench`: the accuracy part needs CIFAR-10 and takes minutes. The steps are those of
`cqlearn train` (train.train_epoch on one batch); fp32 and bf16 alternate, so both see the same load.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from cqlearn import data, experiments, models
from cqlearn.results import machine
from cqlearn.train import batches, make_optimizer, train_epoch


def step_seconds(name, precisions, batch, rounds):
    """{precision: [seconds of one SGD step on `batch` random CIFAR-sized images]}, alternating."""
    torch.manual_seed(0)
    images = data.ImageDataset(torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,)), data.CLASSES["cifar10"])
    nets, times = {}, {p: [] for p in precisions}
    for precision in precisions:
        model = models.create(name, activation="cq", levels=16, mode="round").to(memory_format=torch.channels_last)
        optimizer, schedule = make_optimizer(model, 0.05, 5e-4, 10**6, kind="sgd")
        nets[precision] = (model, optimizer, schedule)
    for r in range(rounds + 1):  # round 0 warms up
        for precision in precisions if r % 2 else precisions[::-1]:
            model, optimizer, schedule = nets[precision]
            start = time.perf_counter()
            train_epoch(model, batches(images, batch, shuffle=True, seed=r), optimizer, schedule, None, precision)
            if r:
                times[precision].append(time.perf_counter() - start)
    return times


def accuracy(precision, seed, args):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        config = experiments.TrainConfig("vgg_small", "cifar10", 16, "round", args.epochs, 0.05, args.batch,
                                         seed=seed, limit=args.limit, test_limit=args.test_limit, optimizer="sgd")
        summary = experiments.train_run(out, config, root=args.root, device="cpu", precision=precision,
                                        progress=False, log=lambda *a: None)
        return summary, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["vgg_small", "vgg_star"], help="networks to time")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per model and precision")
    parser.add_argument("--accuracy", action="store_true", help="also train vgg_small on CIFAR-10 in each")
    parser.add_argument("--root", help="folder with CIFAR-10 (cqlearn.data's layouts)")
    parser.add_argument("--limit", type=int, default=4000)
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 2], help="plain [clamp] cq epochs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="a training run per seed and precision")
    args = parser.parse_args(argv)
    precisions = ["fp32", "bf16"]
    command = " ".join(["python benchmarks/precision.py", *(sys.argv[1:] if argv is None else argv)])
    lines = ["## Training precision", "", f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{machine()}; load average {os.getloadavg()[0]:.1f} at start (other jobs running).", "",
             f"One training step (SGD, CQ network, L = 16) on {args.batch} random 32x32 images, {args.rounds} steps "
             "each, fp32 and bf16 alternating; images per second of the fastest step (median in brackets):", "",
             "| network | fp32 | bf16 | bf16 speed-up |", "|---|---:|---:|---:|"]
    for name in args.models:
        times = step_seconds(name, precisions, args.batch, args.rounds)
        rate = {p: args.batch / min(t) for p, t in times.items()}
        median = {p: args.batch / statistics.median(t) for p, t in times.items()}
        lines.append(f"| `{name}` | {rate['fp32']:.0f} ({median['fp32']:.0f}) | {rate['bf16']:.0f} "
                     f"({median['bf16']:.0f}) | {rate['bf16'] / rate['fp32']:.2f}x |")
        print(lines[-1], file=sys.stderr, flush=True)
    if args.accuracy:
        lines += ["", f"`vgg_small` on the first {args.limit} CIFAR-10 training images (crop + flip), epochs "
                  f"{' '.join(map(str, args.epochs))} (plain, CQ), SGD lr 0.05, batch {args.batch}, L = 16 round; "
                  f"first {args.test_limit} test images:", "",
                  "| precision | seed | plain CNN | CQ-CNN | training time |", "|---|---:|---:|---:|---:|"]
        for seed in args.seeds:
            for precision in precisions:
                summary, seconds = accuracy(precision, seed, args)
                lines.append(f"| {precision} | {seed} | {100 * summary['plain_accuracy']:.2f} % | "
                             f"{100 * summary['cq_accuracy']:.2f} % | {seconds:.0f} s |")
                print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines + [""]))


if __name__ == "__main__":
    main()
