"""Peak memory of the spiking simulation, each case in a fresh process (`timing.in_child`).

raster: one CIFAR-shaped image through VGG-* at T = 256 with every layer's spikes recorded; compared
        with the size of the recording itself (T x neurons bytes, bool).
split:  a large batch under a `max_memory` limit: the peak against the limit.
"""
import ctypes
import time

import torch

import cqlearn as cq
import nets
import timing


def _trim():
    """Hand freed heap pages back to the system so the peak that follows counts new memory only."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def raster(timesteps=256, membranes=False, threads=0):
    if threads:
        torch.set_num_threads(threads)
    x, source = nets.cifar_images(8)
    model = nets.calibrated(cq.models.vgg_star("cq", levels=16), x)
    snn = cq.convert(model, timesteps, "spikes")
    image = x[:1]
    _trim()
    start = timing.reset_peak()
    began = time.perf_counter()
    rec = snn.run(image, record=True, membrane=None if membranes else [])
    wall = time.perf_counter() - began
    peak = timing.peak_since(start)
    raster_bytes = sum(s.numel() * s.element_size() for s in rec.spikes)
    kept = sum(v.numel() * v.element_size() for v in rec.membrane if v is not None)
    return {"peak": peak, "recording": raster_bytes + kept, "raster": raster_bytes, "membranes": kept,
            "wall": wall, "neurons": sum(s[0, 0].numel() for s in rec.spikes), "source": source,
            "exact_peak": start is not None}


def split(images=2000, timesteps=64, max_memory=2**29, threads=0):
    if threads:
        torch.set_num_threads(threads)
    x, source = nets.mnist_images(images)
    model = nets.calibrated(cq.models.mnist_cnn("cq", levels=16), x[:256])
    snn = cq.convert(model, timesteps, "spikes")
    snn.max_memory = max_memory
    plan = cq.memory.plan(snn, x)
    piece, whole = plan.piece, cq.memory.total_bytes(plan.footprint, len(x), timesteps, max_memory)
    _trim()
    start = timing.reset_peak()
    began = time.perf_counter()
    rec = snn.run(x)
    wall = time.perf_counter() - began
    peak = timing.peak_since(start)
    counts = sum(c.numel() * c.element_size() for c in rec.counts)
    return {"peak": peak, "limit": max_memory, "piece": piece, "pieces": -(-images // piece), "wall": wall,
            "images": images, "timesteps": timesteps, "source": source, "whole": whole,
            "counts": counts, "exact_peak": start is not None}
