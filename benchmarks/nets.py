"""The networks, inputs and baselines the benchmarks compare against.

Baselines, each given the same converted network and the same input:
  dense limit   the CQ-CNN's arithmetic done T times: BatchNorm folded, CQ activations, fed the T
                input frames either as T forwards of the batch or as one forward of T * B images
                (whichever is faster is the limit);
  synapses      (information) the synapses alone on the T frames, in our windows: what is left
                of our time is the IF neurons' share;
  per-step loop every step through the whole network, IF update after each synapse, the way
                step-by-step SNN libraries run: the library's own definition, `run_stepwise`;
  SpikingJelly  its multi-step IF neurons (soft reset, threshold as ours) after each synapse wrapped in
                SeqToANNContainer, the library's own layer-by-layer simulation.
"""
import copy
import os

import numpy as np
import torch
from torch import nn

import cqlearn as cq
from cqlearn.neuron import encode

SHARED = os.environ.get("CQ_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def digits_images(n):
    return cq.data.load("digits", "test").images[:n]


def cifar_images(n):
    """n CIFAR-10 test images in [0, 1] from the shared copy, or uniform noise where there is none."""
    path = os.path.join(SHARED, "cifar10", "test.npz")
    if os.path.exists(path):
        x = np.load(path)["x_test"][:n]
        return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255).contiguous(), "CIFAR-10 test images"
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)), "uniform noise (no CIFAR copy)"


def mnist_images(n):
    path = os.path.join(SHARED, "mnist.npz")
    if os.path.exists(path):
        x = np.load(path)["x_test"][:n]
        return torch.from_numpy(x)[:, None].float().div(255).contiguous(), "MNIST test images"
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "uniform noise (no MNIST copy)"


def calibrated(model, x):
    """Set BatchNorm statistics of a freshly built CQ model from the images x, so that its neurons fire
    at realistic rates (the benchmark's cost does not depend on it; the spikes shown do)."""
    torch.manual_seed(0)
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model(x)
    return model.eval()


def network(name, batch=16):
    """(CQ model, a batch of images, where the images come from) for a benchmark network."""
    torch.manual_seed(0)
    if name == "digits_cnn":
        x = digits_images(max(batch, 64))
        try:
            return cq.load(cq.shipped("digits_cnn_cq16.pt")).eval(), x[:batch], "digits test images, shipped weights"
        except Exception:  # noqa: BLE001 - a checkpoint out of step with the code: use fresh weights
            return calibrated(cq.models.digits_cnn("cq"), x), x[:batch], "digits test images, untrained weights"
    if name == "mnist_cnn":
        x, source = mnist_images(max(batch, 64))
    else:
        x, source = cifar_images(max(batch, 64))
    model = calibrated(cq.models.create(name, activation="cq", levels=16), x[:64])
    return model, x[:batch], source


def frames(snn, x):
    """The T input frames (T, B, ...) the network's first synapse sees, as floats."""
    return encode(x, snn.timesteps, snn.encoding).to(x.dtype)


def dense_limit(model, snn, x):
    """{"T forwards of B": f, "1 forward of T*B": f}: the folded CQ-CNN over the T input frames."""
    cnn = cq.fold_batchnorm(model).eval()
    inputs = frames(snn, x).contiguous()
    together = inputs.flatten(0, 1)

    @torch.no_grad()
    def per_step():
        for frame in inputs:
            cnn(frame)

    @torch.no_grad()
    def at_once():
        cnn(together)

    return {f"{snn.timesteps} forwards of {len(x)}": per_step, f"1 forward of {len(together)}": at_once}


def synapse_floor(snn, x, window):
    """The synapses alone (no neurons, no activations) on the T frames, in windows of `window` steps:
    the arithmetic no simulator of this network can skip. Informational: the IF scan's share is the rest."""
    inputs = frames(snn, x).contiguous()
    outputs, h = [], inputs[:window].flatten(0, 1)
    with torch.no_grad():
        for layer in snn.layers:  # binary stand-ins for each layer's input spikes
            h = layer.synapse(h)
            outputs.append((h > 0.5).to(x.dtype))
    first = 1 if snn.encoding == "current" else 0

    @torch.no_grad()
    def run():
        if first:
            snn.layers[0].synapse(x)
        for start in range(0, snn.timesteps, window):
            steps = min(window, snn.timesteps - start)
            for i in range(first, len(snn.layers)):
                h = inputs[start:start + steps].flatten(0, 1) if i == 0 else outputs[i - 1][:steps * len(x)]
                snn.layers[i].synapse(h)

    return run


def per_step_loop(snn, x):
    """The plain simulation, `SpikingNetwork.run_stepwise`: each step through the whole network."""

    def run():
        return snn.run_stepwise(x).output

    return run


def spikingjelly(snn, x):
    """SpikingJelly's multi-step simulation of the same converted network, or raise why it cannot run."""
    from spikingjelly.activation_based import functional, layer, neuron  # installed by `make bench`

    if any(l.mode != "floor" for l in snn.layers):
        raise ValueError("SpikingJelly's IF starts at v = 0 (floor mode only)")
    modules = []
    for spiking in snn.layers:
        modules += [layer.SeqToANNContainer(copy.deepcopy(spiking.synapse)),
                    neuron.IFNode(v_threshold=spiking.threshold, v_reset=None, step_mode="m")]
    net = nn.Sequential(*modules).eval()

    @torch.no_grad()
    def run():
        functional.reset_net(net)
        return snn.readout(net(frames(snn, x)).mean(0))

    return run


def spikingjelly_version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("spikingjelly")
    except PackageNotFoundError:
        return None
