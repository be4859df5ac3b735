"""cqlearn: CQ training and near-lossless conversion of CNNs into spiking networks.

    import cqlearn as cq
    model = cq.to_cq(trained_plain_model, levels=16)
    snn = cq.convert(model, timesteps=16, encoding="spikes")
"""
import os

from . import analysis, conversion, data, energy, exercises, models, plots
from .checkpoints import load, save, shipped
from .conversion import convert
from .fold import fold_batchnorm
from .quant import CQ, Clamp, cq_config, to_clamp, to_cq
from .snn import Recording, SpikingLayer, SpikingNetwork
from .train import evaluate, predict, seed_everything, staged, train

__version__ = "0.1.0"
QUICK = os.environ.get("CQ_QUICK") == "1"  # small data and few epochs; the book's checks still hold
__all__ = ["CQ", "Clamp", "Recording", "SpikingLayer", "SpikingNetwork", "analysis", "conversion", "convert",
           "cq_config", "data", "energy", "evaluate", "exercises", "fold_batchnorm", "load", "models", "plots",
           "predict", "save", "seed_everything", "shipped", "staged", "to_clamp", "to_cq", "train"]
