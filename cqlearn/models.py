"""CNNs whose plain, clamp and CQ versions share one definition (chapters 4 and 9).

A model is an nn.Sequential built from a short spec: a number is a 3x3 convolution with that many
channels (padding 1), a pair (channels, padding) sets the padding, and "P" is 2x2 average pooling.
Every convolution is followed by BatchNorm and an activation, and every pooling layer by an
activation too: ReLU, Clamp or CQ. Because the activation is the only difference, the three versions
have the same state_dict keys and `cq.to_cq(plain)` gives the CQ twin with the weights copied.

Each model remembers how it was built in `model.arch`, which checkpoints store.
"""
import torch
from torch import nn

from .quant import CQ, Clamp, check_levels, check_mode


def make_activation(activation="relu", levels=16, mode="floor"):
    """ReLU ("relu"), Clamp ("clamp") or CQ(levels, mode) ("cq")."""
    if activation == "relu":
        return nn.ReLU()
    if activation == "clamp":
        return Clamp()
    if activation == "cq":
        return CQ(levels, mode)
    raise ValueError(f"activation must be 'relu', 'clamp' or 'cq', got {activation!r}.")


def build(spec, in_shape, num_classes, activation="relu", levels=16, mode="floor", dropout=0.0):
    """An nn.Sequential from a spec such as [32, 32, "P", 64, "P"] for images of shape in_shape."""
    check_levels(levels)
    check_mode(mode)
    layers, (channels, height, width) = [], in_shape
    for item in spec:
        if item == "P":
            layers += [nn.AvgPool2d(2), make_activation(activation, levels, mode)]
            height, width = height // 2, width // 2
            continue
        out, padding = item if isinstance(item, tuple) else (item, 1)
        layers += [nn.Conv2d(channels, out, 3, padding=padding, bias=False), nn.BatchNorm2d(out),
                   make_activation(activation, levels, mode)]
        channels, height, width = out, height + 2 * padding - 2, width + 2 * padding - 2
    if min(height, width) < 1:
        raise ValueError(f"images of shape {tuple(in_shape)} are too small for this network: nothing is left "
                         "after its convolutions and poolings.")
    layers.append(nn.Flatten())
    features = channels * height * width
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def _named(name, model, **kwargs):
    model.arch = {"name": name, "kwargs": kwargs}
    return model


def _scaled(spec, width):
    return [item if item == "P" else
            (max(1, round(item[0] * width)), item[1]) if isinstance(item, tuple) else max(1, round(item * width))
            for item in spec]


def digits_cnn(activation="relu", levels=16, mode="floor", width=64, dropout=0.2):
    """Two convolutions, each followed by 2x2 average pooling, for 1x8x8 digits: width, P, 2*width, P,
    Linear. Shallow and wide keeps timing errors small: at T = levels its SNN agrees with it exactly."""
    spec = [width, "P", 2 * width, "P"]
    return _named("digits_cnn", build(spec, (1, 8, 8), 10, activation, levels, mode, dropout),
                  activation=activation, levels=levels, mode=mode, width=width, dropout=dropout)


VGG_STAR = [128, 128, "P", 256, 256, "P", 512, 512, "P", (1024, 0), "P"]
VGG19 = [64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512, "P"]


def _vgg(name, spec, activation, levels, mode, width, in_shape, num_classes, dropout):
    model = build(_scaled(spec, width), tuple(in_shape), num_classes, activation, levels, mode, dropout)
    return _named(name, model, activation=activation, levels=levels, mode=mode, width=width,
                  in_shape=list(in_shape), num_classes=num_classes, dropout=dropout)


def vgg_star(activation="relu", levels=16, mode="floor", width=1.0, in_shape=(3, 32, 32),
             num_classes=10, dropout=0.2):
    """The paper's VGG-* (7 convolutions); width < 1 shrinks every layer (chapter 9)."""
    return _vgg("vgg_star", VGG_STAR, activation, levels, mode, width, in_shape, num_classes, dropout)


def vgg_small(activation="relu", levels=16, mode="floor", in_shape=(3, 32, 32), num_classes=10, dropout=0.2):
    """VGG-* at a quarter of the width: 32 to 256 channels, trains on a CPU."""
    model = vgg_star(activation, levels, mode, 0.25, in_shape, num_classes, dropout)
    return _named("vgg_small", model, activation=activation, levels=levels, mode=mode,
                  in_shape=list(in_shape), num_classes=num_classes, dropout=dropout)


def vgg19(activation="relu", levels=16, mode="floor", width=1.0, in_shape=(3, 32, 32),
          num_classes=10, dropout=0.2):
    """VGG-19 (16 convolutions) with average pooling and a CQ after every pool."""
    return _vgg("vgg19", VGG19, activation, levels, mode, width, in_shape, num_classes, dropout)


def mnist_cnn(activation="relu", levels=16, mode="floor", width=16, in_shape=(1, 28, 28), num_classes=10,
              dropout=0.2):
    """Three convolutions, each followed by a pooling, for 1x28x28 MNIST and Fashion-MNIST: width, P,
    2*width, P, 4*width, P, Linear (28 -> 14 -> 7 -> 3). About 2 M multiply-accumulates per image at
    width 16, so it trains in minutes on one CPU core (chapter 9)."""
    spec = [width, "P", 2 * width, "P", 4 * width, "P"]
    model = build(spec, tuple(in_shape), num_classes, activation, levels, mode, dropout)
    return _named("mnist_cnn", model, activation=activation, levels=levels, mode=mode, width=width,
                  in_shape=list(in_shape), num_classes=num_classes, dropout=dropout)


MODELS = {"digits_cnn": digits_cnn, "mnist_cnn": mnist_cnn, "vgg_star": vgg_star, "vgg_small": vgg_small,
          "vgg19": vgg19}


def create(name, **kwargs):
    """Build a registered model by name, e.g. create("vgg_small", activation="cq", levels=16)."""
    check_arch(name, kwargs)
    return MODELS[name](**kwargs)


MAX_PARAMETERS = 2 ** 31  # 8 GiB of float32 weights, a hundred times VGG-19's


def check_arch(name, kwargs, state_dict=None, source=None):
    """Raise a ValueError unless create(name, **kwargs) builds a network of a sane size (and, given a
    state_dict, one whose tensors have the shapes stored). It builds the network on PyTorch's "meta"
    device, where tensors have shapes but no memory, so nothing large is ever allocated. `source` (a
    checkpoint's path) starts the message."""
    source = f"{source}: " if source else ""
    if name not in MODELS:
        raise ValueError(f"{source}unknown model {name!r}; choose one of {sorted(MODELS)}.")
    if not isinstance(kwargs, dict):
        raise ValueError(f"{source}the options of model {name!r} must be a dict, got {kwargs!r}.")
    try:
        with torch.device("meta"):
            skeleton = MODELS[name](**kwargs)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{source}model {name!r} cannot be built with {kwargs} ({error}).") from error
    size = sum(p.numel() for p in skeleton.parameters())
    if size > MAX_PARAMETERS:
        raise ValueError(f"{source}model {name!r} with {kwargs} would have {size:.3g} parameters "
                         f"({4 * size / 2 ** 30:.3g} GiB), more than cqlearn builds ({MAX_PARAMETERS:.3g}); "
                         "check width and in_shape.")
    if state_dict is not None:
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        stored = {k: tuple(v.shape) for k, v in state_dict.items()}
        if expected != stored:
            key = next(k for k in sorted(expected.keys() | stored.keys()) if expected.get(k) != stored.get(k))
            raise ValueError(f"{source}the weights do not fit model {name!r} with {kwargs} ({key}: stored "
                             f"{stored.get(key)}, the model has {expected.get(key)}); it is not a checkpoint "
                             "cq.save wrote, or it was altered.")
