"""cqlearn: CQ training and near-lossless conversion of CNNs into spiking networks.

    import cqlearn as cq
    model = cq.to_cq(trained_plain_model, levels=16)
    snn = cq.convert(model, timesteps=16, encoding="spikes")
"""
from . import data, models
from .checkpoints import load, save
from .convert import convert
from .fold import fold_batchnorm
from .quant import CQ, Clamp, to_clamp, to_cq
from .snn import Recording, SpikingLayer, SpikingNetwork
from .train import evaluate, predict, staged, train

__version__ = "0.1.0"
__all__ = ["CQ", "Clamp", "Recording", "SpikingLayer", "SpikingNetwork", "convert", "data", "evaluate",
           "fold_batchnorm", "load", "models", "predict", "save", "staged", "to_clamp", "to_cq", "train"]
