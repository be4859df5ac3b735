"""The kinds of layer the method knows, named once (chapters 1, 2, 5 and 7). Every module asks these
tuples what a layer is, so each name means one thing everywhere.

A CNN converts when it is a chain Conv2d/Linear -> (BatchNorm) -> CQ, AvgPool2d -> CQ, ..., Flatten,
Linear: BatchNorm folds into the weighted layer before it, each CQ becomes IF neurons, and the layers
between two CQs are the synapse of one spiking layer.
"""
from torch import nn

from .quant import CQ, Clamp

WEIGHTED = (nn.Conv2d, nn.Linear)  # layers with weights: each drives its own neurons; BatchNorm folds into them
POOLING = (nn.AvgPool2d,)  # a sum without weights: followed by CQ (IF neurons) like a weighted layer
SYNAPSES = WEIGHTED + POOLING + (nn.Flatten,)  # what a spiking layer's synapse, and the readout, may hold
ACTIVATIONS = (nn.ReLU, Clamp, CQ)  # what to_clamp, to_cq and with_ceiling swap; only CQ converts
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)  # folded into the WEIGHTED layer just before them
DROPPED = (nn.Dropout, nn.Identity)  # training only: conversion leaves them out
IMAGE_LAYERS = (nn.Conv2d, nn.AvgPool2d)  # a first synapse that starts with one of these takes (B, C, H, W)

__all__ = ["ACTIVATIONS", "BATCHNORMS", "DROPPED", "IMAGE_LAYERS", "POOLING", "SYNAPSES", "WEIGHTED"]
