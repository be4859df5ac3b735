"""cqlearn.analysis: how a spiking network's counts compare with its CQ-CNN, layer by layer (chapters 5, 7, 11)."""
import pytest
from matplotlib.figure import Figure

import cqlearn as cq

pytestmark = pytest.mark.usefixtures("one_thread")


def test_classify_errors_agrees_with_layer_agreement(cq16):
    x = cq.data.load("digits", "test", limit=40).images
    rows = {}
    for neuron in ("if", "signed"):
        snn = cq.convert(cq16, 16, "current", neuron)
        rows[neuron] = cq.analysis.classify_errors(cq16, snn, x)
        reference = cq.analysis.layer_agreement(cq16, snn, x)
        for r, ref in zip(rows[neuron], reference):
            assert r["exact"] == pytest.approx(ref["exact"], abs=1e-6)  # theirs is float32
            assert r["exact"] + r["too_many"] + r["too_few"] == pytest.approx(1.0)
    assert rows["if"][0]["exact"] == rows["signed"][0]["exact"] == 1.0  # constant current: no -1 spikes
    assert rows["signed"][2]["too_many"] < rows["if"][2]["too_many"] / 4  # what the signed neuron removes
    assert isinstance(cq.plots.layer_errors(rows), Figure)


def test_sweep_weight_bits_table(cq16):
    few = cq.data.load("digits", "test", limit=48)
    snn = cq.convert(cq16, 8, "spikes")
    table = cq.analysis.sweep_weight_bits(snn, few, bits=(3, 10), progress=False)
    assert list(table) == ["full", 3, 10]
    assert table["full"] == cq.evaluate(snn, few) and table[10] >= table["full"] - 0.05
