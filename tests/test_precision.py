"""Training precision (`cqlearn train --precision fp32|bf16|fp16`): bfloat16 autocast with channels-last on
the CPU trains, and the evaluation after it stays exact (the CQ staircase rounded in float64, the SNN's
first layer counting exactly what the CQ-CNN computes)."""
import pytest
import torch

import cqlearn as cq
from cqlearn import analysis, experiments
from cqlearn.train import pick_precision
from cqlearn.quant import quantize

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_precision_follows_the_device_and_the_older_amp_switch():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_precision(cpu) == "fp32" and pick_precision(cuda) == "fp16"
    assert pick_precision(cpu, amp=True) == "bf16" and pick_precision(cuda, amp=True) == "fp16"
    assert pick_precision(cuda, amp=False) == "fp32" and pick_precision(cuda, "bf16") == "bf16"
    assert pick_precision(cpu, "bf16", amp=True) == "bf16"
    with pytest.raises(ValueError, match="--precision bf16 on the CPU"):
        pick_precision(cpu, "fp16")
    with pytest.raises(ValueError, match="--no-amp contradicts --precision bf16"):
        pick_precision(cpu, "bf16", amp=False)
    with pytest.raises(ValueError, match="one of"):
        pick_precision(cpu, "fp8")


def train(out, precision):
    config = experiments.TrainConfig("digits_cnn", "digits", epochs=(1, 0, 1), batch_size=64, limit=512,
                                     test_limit=200, model_kwargs={"width": 8})
    return experiments.train_run(out, config, device="cpu", progress=False, log=lambda *a: None,
                                 precision=precision)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {p: cq.load(train(tmp_path_factory.mktemp(p), p)["checkpoint"]) for p in ("fp32", "bf16")}


def test_bf16_trains_in_bfloat16(runs):
    fp32, bf16 = (runs[p].meta for p in ("fp32", "bf16"))
    assert "bf16 autocast" in bf16["trained_on"] and "autocast" not in fp32["trained_on"]
    losses = [[h["loss"] for stage in ("plain", "cq") for h in m["history"][stage]] for m in (fp32, bf16)]
    assert losses[0] != losses[1]  # the arithmetic differed ...
    assert losses[0] == pytest.approx(losses[1], rel=0.05)  # ... the training did not


def test_evaluation_after_bf16_training_is_exact(runs):
    model, test_set = runs["bf16"], cq.data.load("digits", "test", limit=200)
    seen = []

    def check(module, inputs, output):
        x, = inputs
        seen.append(x.dtype)
        assert torch.equal(output, quantize(x, module.levels, module.mode, torch.float64))
        assert torch.equal(output * module.levels, (output * module.levels).round())

    hooks = [m.register_forward_hook(check) for m in model.modules() if isinstance(m, cq.CQ)]
    accuracy = cq.evaluate(model, test_set)
    for hook in hooks:
        hook.remove()
    assert seen and set(seen) == {torch.float32} and accuracy == model.meta["accuracy"]
    snn = cq.convert(model, timesteps=16, encoding="current")
    first = analysis.layer_agreement(model, snn, test_set.images)[0]
    assert first["exact"] == 1.0  # every neuron of the first spiking layer counts exactly a * T
