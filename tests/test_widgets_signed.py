"""Chapter 11's widget without a browser: one neuron stepped by cq.neuron.if_step with and without -1
spikes, against hand-worked sequences and the closed form of reset by subtraction; the split of layer
errors against cq.analysis.layer_agreement; the explorer and its matplotlib path."""
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import cqlearn as cq
from cqlearn.widgets import signed

pytestmark = pytest.mark.usefixtures("one_thread")


def test_chapter_5_sequence_by_hand():
    """+0.6 +0.6 -0.6 -0.6: the CNN says 0; IF fires at step 2 and keeps it, signed IF takes it back."""
    currents = [0.6, 0.6, -0.6, -0.6]
    spikes, before, after, counts = signed.simulate(currents, "if")
    assert spikes.tolist() == [0, 1, 0, 0] and counts.tolist() == [0, 1, 1, 1]
    assert after.tolist() == pytest.approx([0.6, 0.2, -0.4, -1.0])
    spikes, before, after, counts = signed.simulate(currents, "signed")
    assert spikes.dtype == torch.int8 and spikes.tolist() == [0, 1, -1, 0] and counts.tolist() == [0, 1, 0, 0]
    assert before.tolist() == pytest.approx([0.6, 1.2, -0.4, 0.0]) and after.tolist() == pytest.approx([0.6, 0.2, 0.6, 0.0])
    assert signed.cnn_counts(currents).tolist() == [0, 1, 0, 0]


def test_one_correction_per_step_leaves_a_late_error():
    """A large negative input at the last step needs two corrections; the neuron can send one."""
    currents = [0.5, 0.5, 0.5, 0.5, -2.0]
    assert signed.simulate(currents, "if")[3][-1] == 2
    assert signed.simulate(currents, "signed")[3][-1] == 1
    assert signed.cnn_counts(currents)[-1] == 0


def test_both_neurons_obey_reset_by_subtraction_and_signed_never_goes_negative():
    generator = torch.Generator().manual_seed(11)
    currents = (torch.rand(40, 500, generator=generator, dtype=torch.float64) * 2.4 - 1.2)  # 500 neurons
    for neuron, threshold in (("if", 1.0), ("signed", 1.0), ("signed", 0.7)):
        spikes, before, after, counts = signed.simulate(currents, neuron, threshold)
        assert torch.allclose(after[-1], currents.sum(0) - counts[-1] * threshold, atol=1e-9)
        assert torch.equal(counts, spikes.double().cumsum(0)) and spikes.abs().max() <= 1
        assert (counts >= 0).all()
        if neuron == "if":
            assert spikes.min() == 0
        else:  # a -1 spike only when v < 0 and something to take back
            minus = spikes < 0
            assert minus.any() and (before[minus] < 0).all()
            assert (torch.cat([torch.zeros_like(counts[:1]), counts[:-1]])[minus] > 0).all()


def test_where_each_neuron_errs():
    """Both neurons end at v = S - N * θ, so N is the CNN's clamp(floor(S / θ), 0, T) exactly unless the
    potential is left below 0 with N > 0 (spikes too many) or at θ or above with N < T (too few). The IF
    neuron errs both ways; the signed one is left below 0 only after a step that needed two corrections."""
    generator = torch.Generator().manual_seed(3)
    currents = torch.rand(24, 4000, generator=generator, dtype=torch.float64) * 2.4 - 1.2
    cnn = signed.cnn_counts(currents)[-1]
    many = {}
    for neuron in ("if", "signed"):
        _, _, after, counts = signed.simulate(currents, neuron)
        v, n = after[-1], counts[-1]
        below, above = (v < 0) & (n > 0), (v >= 1) & (n < 24)
        assert torch.equal(n != cnn, below | above) and above.any()
        assert torch.equal(n > cnn, below)
        many[neuron] = int(below.sum())
    assert 0 < many["signed"] < many["if"] / 10


def test_cnn_counts_is_the_floor_law_of_the_running_sum():
    currents = torch.tensor([0.9, 0.9, -0.6, 0.3, 2.0, -3.0], dtype=torch.float64)
    expected = [min(max(math.floor(s + 1e-9), 0), t) for t, s in enumerate(currents.cumsum(0).tolist(), start=1)]
    assert signed.cnn_counts(currents).tolist() == expected


def test_figure_data_default_setting():
    d = signed.signed_figure_data()
    assert d["t"].tolist() == list(range(1, 17)) and d["current"][:8].tolist() == [0.9] * 8
    assert d["expected"] == 2 and d["if"]["net"] == 7 and d["if"]["minus_t"].size == 0
    s = d["signed"]
    assert (s["plus"], s["minus"], s["net"]) == (7, 5, 2) and s["minus_t"].tolist() == [9, 11, 12, 14, 16]
    assert s["count"].tolist() == d["cnn"].tolist()
    assert len(s["trace_t"]) == len(s["trace_v"]) == 33
    assert d["title"] == "+0.90 for 8 steps, then -0.60: the CNN counts 2; IF fires 7, signed IF 2 (7 − 5)"
    assert signed.signed_figure_data(0.5, -0.5, 0.0, 1)["title"].startswith("+0.50 for 0 steps")
    with pytest.raises(ValueError, match="share"):
        signed.signed_figure_data(share=1.5)
    with pytest.raises(ValueError, match="neuron"):
        signed.simulate([0.5], "lif")


def test_layer_errors_split_agrees_with_layer_agreement(cq16):
    x = cq.data.load("digits", "test", limit=40).images
    rows = {}
    for neuron in ("if", "signed"):
        snn = cq.convert(cq16, 16, "current", neuron)
        rows[neuron] = signed.layer_errors(cq16, snn, x)
        reference = cq.analysis.layer_agreement(cq16, snn, x)
        for r, ref in zip(rows[neuron], reference):
            assert r["exact"] == pytest.approx(ref["exact"], abs=1e-6)  # theirs is float32
            assert r["exact"] + r["too_many"] + r["too_few"] == pytest.approx(1.0)
    assert rows["if"][0]["exact"] == rows["signed"][0]["exact"] == 1.0  # constant current: no -1 spikes
    assert rows["signed"][2]["too_many"] < rows["if"][2]["too_many"] / 4  # what the signed neuron removes
    assert isinstance(signed.layer_errors_figure(rows), Figure)


def test_explorer_redraws_by_name(live):
    box = signed.signed_explorer()
    assert list(box.controls)[0] == "early"
    assert all(t.name for t in box.figure.data), "every trace has a legend name"
    before = box.figure.layout.title.text
    box.controls["early"].value = 0.6
    assert box.figure.layout.title.text != before and "+0.60 for 8 steps" in box.figure.layout.title.text
    box.controls["timesteps"].value = 40
    membrane = [t for t in box.figure.data if t.meta == "signed:membrane"][0]
    assert len(membrane.x) == 81 and max(membrane.x) == 40
    minus = [t for t in box.figure.data if t.meta == "signed:minus"][0]
    assert np.all(np.asarray(minus.y) == -1)


def test_static_path(static):
    assert isinstance(signed.signed_explorer(), Figure)
