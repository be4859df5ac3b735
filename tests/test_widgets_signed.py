"""Chapter 11's widget without a browser: its figure data against hand-worked values, the explorer and
its matplotlib path (the neuron it steps is tested in test_neuron.py, the split of layer errors in test_analysis.py)."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from cqlearn.widgets import signed

pytestmark = pytest.mark.usefixtures("one_thread")


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
