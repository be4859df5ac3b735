"""Flush steps on the shipped CIFAR-10 vgg_small (chapter 11, RESULTS.md "Closing the last gap").

    python benchmarks/flush.py current 16 0 1 2 4       # encoding, T, then the flush steps k to compare

Signed neurons. Every k sees the same images, in batches, and the running totals are printed after
each batch, so a run cut short still compares the k on the same images. Extra synaptic operations per
image (cq.energy.count, flush spikes included) on the first --synops-images images.
Needs the CIFAR-10 test set as /work/shared/data/cifar10/test.npz (or --data PATH).
"""
import argparse
import time

import numpy as np
import torch

import cqlearn as cq

parser = argparse.ArgumentParser()
parser.add_argument("encoding", choices=["current", "spikes", "poisson"])
parser.add_argument("timesteps", type=int)
parser.add_argument("flush", type=int, nargs="+")
parser.add_argument("--images", type=int, default=10000)
parser.add_argument("--batch-size", type=int, default=250)
parser.add_argument("--synops-images", type=int, default=300)
parser.add_argument("--data", default="/work/shared/data/cifar10/test.npz")
parser.add_argument("--checkpoint", default=str(cq.shipped("cifar10_vgg_small_cq16.pt")))
args = parser.parse_args()
torch.set_num_threads(1)

raw = np.load(args.data)
x = torch.from_numpy(raw["x_test"][:args.images]).permute(0, 3, 1, 2).float().div(255).contiguous()
y = torch.from_numpy(raw["y_test"][:args.images]).long()
model = cq.load(args.checkpoint).eval()
nets = {k: cq.convert(model, args.timesteps, args.encoding, "signed", flush=k) for k in args.flush}
print(f"{args.encoding} T={args.timesteps} signed, flush {args.flush}, {len(x)} CIFAR-10 test images", flush=True)

synops = {}
for k, snn in nets.items():
    rows = cq.energy.count(snn, x[:args.synops_images])
    synops[k] = sum(r["synops"] for r in rows)
    print(f"k={k}: {synops[k] / 1e6:.2f} M synaptic operations per image (first {args.synops_images} images), "
          f"{100 * (synops[k] / synops[args.flush[0]] - 1):+.1f} % against k={args.flush[0]}", flush=True)

right = {k: 0 for k in nets}
agree = {k: 0 for k in nets}
cnn_right, done, start = 0, 0, time.perf_counter()
with torch.no_grad():
    for i in range(0, len(x), args.batch_size):
        b, labels = x[i:i + args.batch_size], y[i:i + args.batch_size]
        cnn = model(b).argmax(1)
        cnn_right += (cnn == labels).sum().item()
        for k, snn in nets.items():
            predicted = snn(b).argmax(1)
            right[k] += (predicted == labels).sum().item()
            agree[k] += (predicted == cnn).sum().item()
        done += len(b)
        print(f"{done} images ({time.perf_counter() - start:.0f} s): CQ-CNN {100 * cnn_right / done:.2f} %; "
              + "; ".join(f"k={k}: {100 * right[k] / done:.2f} %, agreement {100 * agree[k] / done:.2f} %"
                          for k in nets), flush=True)
