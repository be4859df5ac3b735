"""Training repeats bit for bit with a seed; the staged recipe hands weights from stage to stage."""
import importlib

import torch

import cqlearn as cq


def trained(seed):
    cq.seed_everything(seed)
    model = cq.models.digits_cnn(width=8)
    data = cq.data.load("digits", "train", limit=256)
    history = cq.train(model, data, epochs=1, seed=seed, device="cpu", progress=False)
    return model, history


def test_a_seed_repeats_training_bit_for_bit_on_the_cpu():
    (a, history_a), (b, history_b), (c, _) = trained(0), trained(0), trained(1)
    assert history_a == history_b
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_staged_recipe_starts_each_stage_from_the_last():
    cq.seed_everything(0)
    data = cq.data.load("digits", "train", limit=128)
    stages = cq.staged(cq.models.digits_cnn(width=8), data, data, levels=4, epochs=(1, 0, 1), device="cpu",
                       progress=False)
    assert list(stages) == ["plain", "cq"]
    model, history = stages["cq"]
    assert len(history["test_accuracy"]) == 1 and all(m.levels == 4 for m in model.modules() if isinstance(m, cq.CQ))


def test_staged_recipe_hands_each_stage_the_weights_the_last_one_ended_with(monkeypatch):
    """Clamp starts from the trained plain weights and CQ from the trained clamp weights, not afresh."""
    module = importlib.import_module("cqlearn.train")
    starts, real_train = [], module.train

    def train(model, *args, **kwargs):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(module, "train", train)
    data = cq.data.load("digits", "train", limit=64)
    stages = cq.staged(cq.models.digits_cnn(width=4), data, levels=4, epochs=(1, 1, 1), device="cpu",
                       progress=False)
    assert list(stages) == ["plain", "clamp", "cq"] and len(starts) == 3
    for (model, _), start in zip([stages["plain"], stages["clamp"]], starts[1:]):
        ended = model.state_dict()
        assert all(torch.equal(start[k], ended[k]) for k in ended)
        assert not all(torch.equal(starts[0][k], ended[k]) for k in ended)  # training moved them
