"""Saving and loading trained models with their metadata (chapter 9).

A checkpoint is a plain dict of tensors, strings and numbers, read back with
torch.load(weights_only=True): loading one can never run code. Saving writes a temporary file and
renames it, so an interrupted save leaves the previous checkpoint intact.
"""
import os
import pickle
from pathlib import Path

import torch

from .models import create

FORMAT = "cqlearn-checkpoint"
VERSION = 1


def save(model, path, **meta):
    """Save `model` (built by cqlearn.models, or any module if you pass model= to load) and `meta`
    (dataset, levels, timesteps, encoding, accuracies, ...: numbers, strings, lists, dicts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = getattr(model, "arch", None)
    payload = {"format": FORMAT, "version": VERSION, "arch": arch, "meta": dict(meta),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path


def read(path):
    """The checkpoint's dict, or a ValueError/FileNotFoundError that says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; save one with cq.save(model, path) or "
                                "`cqlearn train ... --out FOLDER`.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"refusing to load {path}: it holds Python objects that could run code when "
                         "unpickled, which a cqlearn checkpoint never does. Load only files you trust, "
                         f"saved by cq.save. ({str(error).splitlines()[0]})") from error
    except Exception as error:  # torch.load fails in many ways on a file that is not its own
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated: {error}); "
                         "save it again with cq.save.") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cqlearn checkpoint (no '{FORMAT}' marker); save models "
                         "with cq.save(model, path, **meta).")
    return payload


PRETRAINED = Path(__file__).resolve().parent / "pretrained"  # data/*.pt, as installed from a wheel


def shipped(name):
    """Path of a checkpoint the project ships (e.g. "digits_cnn_cq16.pt"): from CQLEARN_DATA, the installed
    package (cqlearn/pretrained/), the checkout's data/, or data/ in the working folder or its parent (where
    the book's chapters run)."""
    folders = [os.environ.get("CQLEARN_DATA"), PRETRAINED, Path(__file__).resolve().parents[1] / "data", "data",
               "../data"]
    for folder in filter(None, folders):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise FileNotFoundError(f"shipped checkpoint {name!r} not found in {PRETRAINED} nor in a checkout's data/; "
                            "install cqlearn with pip (it ships the checkpoints) or work in a clone of the "
                            "cqlearn repository.")


def load(path, model=None):
    """The saved model in eval mode, with its metadata dict as `model.meta`. Pass `model` (a module of
    the same shape) for models not built by cqlearn.models."""
    payload = read(path)
    if model is None:
        if payload["arch"] is None:
            raise ValueError(f"{path} holds a model that cqlearn cannot rebuild by name; pass one of the "
                             "same shape: cq.load(path, model=MyNet()).")
        model = create(payload["arch"]["name"], **payload["arch"]["kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.meta = payload["meta"]
    return model.eval()
