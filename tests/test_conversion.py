"""What convert accepts, and the errors that name the problem and the fix (chapter 5)."""
import pytest
import torch
from torch import nn

import cqlearn as cq


def cq_net(*middle):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), cq.CQ(4), *middle, nn.Flatten(), nn.Linear(4 * 64, 3))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


@pytest.mark.parametrize("layer, message", [
    (nn.MaxPool2d(1), r"layer 2 \(MaxPool2d\).*AvgPool2d"),
    (nn.LeakyReLU(), r"layer 2 \(LeakyReLU\).*no integrate-and-fire counterpart"),
    (nn.ReLU(), r"layer 2 \(ReLU\).*cq.to_cq"),
    (Residual(), r"layer 2 \(Residual\).*residual"),
])
def test_layers_without_a_spiking_counterpart_are_named(layer, message):
    with pytest.raises(ValueError, match=message):
        cq.convert(cq_net(layer), 8)


def test_a_model_that_is_not_a_sequential_is_named():
    with pytest.raises(ValueError, match="Residual"):
        cq.convert(Residual(), 8)
    with pytest.raises(TypeError, match="nn.Sequential"):
        cq.convert("model", 8)


def test_a_plain_model_must_be_cq_trained_first():
    with pytest.raises(ValueError, match="cq.to_cq"):
        cq.convert(cq.models.digits_cnn(), 8)
    with pytest.raises(ValueError, match="no CQ layer"):
        cq.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 8)


def test_a_model_must_end_in_a_linear_readout():
    with pytest.raises(ValueError, match="Linear readout"):
        cq.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), cq.CQ(4)), 8)


def test_two_weight_layers_without_a_cq_between_them():
    with pytest.raises(ValueError, match="two Conv2d/Linear"):
        cq.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Linear(3, 3), cq.CQ(4), nn.Linear(3, 2)), 8)


def test_mixed_modes_are_an_error():
    with pytest.raises(ValueError, match="mix"):
        cq.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), cq.CQ(4), nn.Linear(3, 3), cq.CQ(4, "round"),
                                 nn.Linear(3, 2)), 8)


@pytest.mark.parametrize("timesteps", [0, -3, 2.5, "16", None, float("nan"), float("inf"), True, 2**16 + 1])
def test_bad_timesteps(timesteps):
    with pytest.raises(ValueError, match="timesteps must be a whole number >= 1 and <= 65536"):
        cq.convert(cq_net(), timesteps)


@pytest.mark.parametrize("levels", [0, 2.5, "16", None, float("nan"), float("inf"), -float("inf"), True, 1e9])
def test_bad_levels_get_the_same_kind_of_message(levels):
    with pytest.raises(ValueError, match="levels must be a whole number >= 1 and <= 65536"):
        cq.CQ(levels)


def test_whole_number_floats_are_accepted_alike_by_convert_and_cq():
    assert cq.CQ(16.0).levels == 16 and cq.CQ(2**16).levels == 2**16
    snn = cq.convert(cq_net(), 16.0)
    assert snn.timesteps == 16 and isinstance(snn.timesteps, int)


class Reversed(nn.Sequential):
    def forward(self, x):
        for layer in reversed(self):
            x = layer(x)
        return x


def test_a_sequential_with_its_own_forward_is_refused():
    with pytest.raises(ValueError, match=r"cannot convert Reversed: .*own forward.*plain nn.Sequential"):
        cq.convert(Reversed(nn.Flatten(), nn.Linear(4, 3), cq.CQ(4), nn.Linear(3, 2)), 8)
    inner = nn.Sequential(nn.Flatten(), Reversed(nn.Linear(4, 3)), cq.CQ(4), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="cannot convert Reversed"):
        cq.convert(inner, 8)

    class Named(nn.Sequential):  # a subclass that keeps Sequential's forward converts
        pass

    assert len(cq.convert(Named(nn.Flatten(), nn.Linear(4, 3), cq.CQ(4), nn.Linear(3, 2)), 8).layers) == 1


def test_mixed_levels_warn_that_only_one_T_can_be_exact():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), cq.CQ(4), nn.Linear(3, 3), cq.CQ(8), nn.Linear(3, 2))
    with pytest.warns(UserWarning, match=r"mix levels \[4, 8\].*T = levels"):
        cq.convert(model, 8)


def test_unknown_neuron_lists_the_choices():
    with pytest.raises(ValueError, match="neuron must be 'if'.*or 'signed'"):
        cq.convert(cq_net(), 8, neuron="lif")
    assert all(layer.neuron == "signed" for layer in cq.convert(cq_net(), 8, neuron="signed").layers)


def test_a_spiking_layer_holds_at_most_one_weighted_op():
    with pytest.raises(ValueError, match="two Conv2d/Linear"):
        cq.SpikingLayer(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3)))
    layer = cq.SpikingLayer(nn.Sequential(nn.Flatten(), nn.Linear(3, 3)))
    assert layer.weighted is layer.synapse[1] and cq.SpikingLayer(nn.Sequential(nn.AvgPool2d(2))).weighted is None
    with pytest.raises(ValueError, match="needs a synapse"):
        cq.SpikingLayer(nn.Sequential())
    with pytest.raises(TypeError, match="nn.Sequential"):
        cq.SpikingLayer(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"only Conv2d, Linear, AvgPool2d and Flatten, got \[Linear, BatchNorm1d\]"):
        cq.SpikingLayer(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    with pytest.raises(ValueError, match="needs a synapse"):  # convert leaves the check to SpikingLayer
        cq.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), cq.CQ(4), nn.Dropout(), cq.CQ(4), nn.Linear(3, 2)), 8)


def test_unknown_encoding_lists_the_choices():
    with pytest.raises(ValueError, match="'current', 'spikes', 'poisson'"):
        cq.convert(cq_net(), 8, encoding="rate")


def test_the_function_does_not_hide_the_module():
    assert callable(cq.convert) and cq.conversion.convert is cq.convert
    assert cq.conversion.__name__ == "cqlearn.conversion"


def test_convert_leaves_the_model_as_it_was():
    model = cq.to_cq(cq.models.digits_cnn()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snn = cq.convert(model, 16)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(snn.layers) == 4 and snn.timesteps == 16 and snn.encoding == "spikes"
