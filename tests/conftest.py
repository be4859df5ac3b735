"""Fixtures shared by the test modules."""
import pytest
import torch

import cqlearn as cq


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: tiny tensors gain nothing from a second one on a shared CPU, and bit-for-bit
    comparisons need the same thread count everywhere (reductions split differently)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cq16():
    """The shipped CQ digits network (levels = 16)."""
    return cq.load(cq.shipped("digits_cnn_cq16.pt"))


@pytest.fixture(scope="module")
def plain():
    """The shipped plain ReLU digits network it was fine-tuned from."""
    return cq.load(cq.shipped("digits_cnn_plain.pt"))


@pytest.fixture
def static(monkeypatch):
    """Explorers draw their static matplotlib small multiple, as in `make book`."""
    monkeypatch.setenv("CQ_STATIC", "1")


@pytest.fixture
def live(monkeypatch):
    """Explorers build their plotly FigureWidget."""
    pytest.importorskip("anywidget")
    monkeypatch.delenv("CQ_STATIC", raising=False)
