"""Saving and loading trained models with their metadata (chapter 9).

A checkpoint is a plain dict of tensors, strings and numbers, read back with
torch.load(weights_only=True): loading one can never run code. Saving turns numpy numbers and arrays,
paths and tuples in the metadata into plain Python (and refuses, naming the key, what it cannot), so
that every file cq.save writes cq.load reads; it writes atomically (cqlearn.files), so an interrupted
save leaves the previous checkpoint intact.
"""
import os
import pickle
import re
from pathlib import PurePath, Path

import numpy as np
import torch

from .data import BUNDLED
from .files import atomic_write
from .models import create, check_arch

FORMAT = "cqlearn-checkpoint"
VERSION = 1


def save(model, path, **meta):
    """Save `model` (built by cqlearn.models, or any module if you pass model= to load) and `meta`
    (dataset, levels, timesteps, encoding, accuracies, ...: numbers, strings, lists, dicts)."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, "arch": plain(getattr(model, "arch", None), "arch"),
               "meta": {key: plain(value, f"meta[{key!r}]") for key, value in meta.items()},
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


PLAIN = (bool, int, float, str)  # in this order: a bool is an int too


def plain(value, where="meta"):
    """`value` as what torch.load(weights_only=True) reads back: None, bools, numbers, strings, tensors,
    and lists and dicts of them. numpy numbers and arrays, paths and tuples are converted; anything else
    is a ValueError naming where it sits (`where`)."""
    if isinstance(value, (np.generic, np.ndarray)) and value.dtype.kind in "biufU":
        value = value.tolist()  # np.float64 is a float, but it pickles as numpy's
    if isinstance(value, PurePath):
        return str(value)
    for kind in PLAIN:
        if isinstance(value, kind):
            return kind(value)  # numpy's and other subclasses become the plain type
    if value is None or isinstance(value, torch.Tensor):
        return value if value is None else value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {plain_key(key, where): plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise ValueError(f"cannot save {where} = {value!r} ({type(value).__name__}): checkpoint metadata holds "
                     "numbers, strings, lists and dicts; convert it first, e.g. with str().")


def plain_key(key, where):
    converted = plain(key, f"a key of {where}")
    if converted is not None and not isinstance(converted, PLAIN):
        raise ValueError(f"cannot save {where}: its key {key!r} ({type(key).__name__}) is not a number or "
                         "a string.")
    return converted


def read(path):
    """The checkpoint's dict, or a ValueError/FileNotFoundError that says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; save one with cq.save(model, path) or "
                                "`cqlearn train ... --out FOLDER`.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if re.search("Unsupported (global|class)|reduce", str(error)):  # a pickle that imports or calls
            raise ValueError(f"refusing to load {path}: it holds Python objects that could run code when "
                             "unpickled, which a cqlearn checkpoint never does. Load only files you trust, "
                             f"saved by cq.save. ({str(error).splitlines()[0]})") from error
        raise ValueError(f"{path} is not a readable checkpoint: not a file written by cq.save or "
                         "torch.save, or one that is corrupt or truncated; save it again with cq.save.") from error
    except Exception as error:  # torch.load fails in many ways on a file that is not its own
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated: {error}); "
                         "save it again with cq.save.") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cqlearn checkpoint (no '{FORMAT}' marker); save models "
                         "with cq.save(model, path, **meta).")
    return payload




def shipped(name):
    """Path of a checkpoint the project ships (e.g. "digits_cnn_cq16.pt"): from CQLEARN_DATA, the installed
    package (cqlearn/bundled/), the checkout's data/, or data/ in the working folder or its parent (where
    the book's chapters run)."""
    folders = [os.environ.get("CQLEARN_DATA"), BUNDLED, Path(__file__).resolve().parents[1] / "data", "data",
               "../data"]
    for folder in filter(None, folders):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise FileNotFoundError(f"shipped checkpoint {name!r} not found in {BUNDLED} nor in a checkout's data/; "
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
        name, kwargs = payload["arch"]["name"], payload["arch"]["kwargs"]
        check_arch(name, kwargs, payload["state_dict"], source=path)  # before anything is allocated
        model = create(name, **kwargs)
    model.load_state_dict(payload["state_dict"])
    model.meta = payload["meta"]
    return model.eval()
