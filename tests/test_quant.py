"""The CQ activation: forward staircase, straight-through gradient, twins (chapters 1, 2 and 4)."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn.quant import quantize, quantize_tensor


@pytest.mark.parametrize("levels", [1, 4, 10, 16, 255])
def test_floor_staircase_hits_every_level_exactly(levels):
    k = torch.arange(levels + 1, dtype=torch.float32)
    x = k / levels  # float32 cannot hold most of these exactly (0.7 -> 0.69999999)
    assert torch.equal(quantize(x, levels) * levels, k)
    below = (k[1:] - 0.01) / levels
    assert torch.equal(quantize(below, levels) * levels, k[:-1])


def test_floor_and_round_values():
    x = torch.tensor([-0.3, 0.0, 0.24, 0.26, 0.49, 0.51, 0.99, 1.0, 1.7])
    assert torch.allclose(cq.CQ(4, "floor")(x), torch.tensor([0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1, 1]))
    assert torch.allclose(cq.CQ(4, "round")(x), torch.tensor([0, 0, 0.25, 0.25, 0.5, 0.5, 1, 1, 1]))
    # round is round-half-up, the rule of an IF neuron that starts at threshold / 2
    assert cq.CQ(2, "round")(torch.tensor([0.25])).item() == 0.5


def test_straight_through_gradient_is_one_inside_and_zero_outside():
    x = torch.tensor([-0.5, -1e-3, 0.0, 0.3, 0.77, 1.0, 1.001, 3.0], requires_grad=True)
    cq.CQ(16)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 0, 1, 1, 1, 1, 0, 0]))


@pytest.mark.parametrize("mode", ["floor", "round"])
def test_training_rounds_like_evaluation_away_from_the_last_bit(mode):
    """Training rounds in the input's precision (fast), evaluation in float64 (as the SNN does). They
    may differ only where float32 cannot tell a value from a level: within 1e-6 of one."""
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    layer = cq.CQ(16, mode)
    fast = layer.train()(x.clone().requires_grad_())
    with torch.no_grad():
        exact = layer(x)
    assert torch.equal(layer.eval()(x), exact) and torch.equal(exact, quantize(x, 16, mode))
    steps = x.double() * 16 + (0.5 if mode == "round" else 0.0)
    near_a_level = (steps - steps.round()).abs() < 1e-5
    assert torch.equal(fast.detach()[~near_a_level], exact[~near_a_level])
    assert fast.dtype == x.dtype and (fast.detach() - exact).abs().max() <= 1 / 16


@pytest.mark.parametrize("levels", [0, -1, 2.5, "16", True])
def test_bad_levels_name_the_problem(levels):
    with pytest.raises(ValueError, match="levels must be a whole number >= 1"):
        cq.CQ(levels)


def test_bad_mode_names_the_choices():
    with pytest.raises(ValueError, match="'floor'.*'round'"):
        cq.CQ(16, mode="ceil")


def test_to_cq_swaps_activations_and_keeps_weights():
    plain = cq.models.digits_cnn()
    twin = cq.to_cq(plain, levels=8, mode="round")
    assert not any(isinstance(m, nn.ReLU) for m in twin.modules())
    cqs = [m for m in twin.modules() if isinstance(m, cq.CQ)]
    assert len(cqs) == 4 and all(m.levels == 8 and m.mode == "round" for m in cqs)
    assert plain.state_dict().keys() == twin.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), twin.state_dict().values()))
    assert twin.arch["kwargs"]["activation"] == "cq" and twin.arch["kwargs"]["levels"] == 8


def test_to_cq_gives_every_avgpool_a_cq():
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    twin = cq.to_cq(plain, 4)
    assert [type(m).__name__ for m in twin] == ["Conv2d", "CQ", "AvgPool2d", "CQ", "Flatten", "Linear"]
    assert [type(m).__name__ for m in plain] == ["Conv2d", "ReLU", "AvgPool2d", "Flatten", "Linear"]


def test_to_clamp_then_to_cq():
    clamp = cq.to_clamp(cq.models.digits_cnn())
    assert sum(isinstance(m, cq.Clamp) for m in clamp.modules()) == 4
    assert sum(isinstance(m, cq.CQ) for m in cq.to_cq(clamp).modules()) == 4


def test_cq_config_reads_levels_and_mode_or_says_what_is_wrong():
    model = cq.to_cq(cq.models.digits_cnn(), 8, "round")
    assert cq.cq_config(model) == (8, "round") and cq.cq_config(model).levels == 8
    with pytest.raises(ValueError, match="no CQ layer.*cq.to_cq"):
        cq.cq_config(cq.models.digits_cnn())
    with pytest.raises(ValueError, match="mix 'floor' and 'round'"):
        cq.cq_config(nn.Sequential(nn.Linear(2, 2), cq.CQ(4), nn.Linear(2, 2), cq.CQ(4, "round")))
    mixed = nn.Sequential(nn.Linear(2, 2), cq.CQ(8), nn.Linear(2, 2), cq.CQ(4))
    with pytest.warns(UserWarning, match=r"mix levels \[4, 8\]"):
        assert cq.cq_config(mixed) == cq.quant.CQConfig(8, "floor")  # the first CQ layer's levels


def test_to_cq_needs_a_sequential():
    with pytest.raises(TypeError, match="nn.Sequential"):
        cq.to_cq(nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("bits", [2, 4, 8, 9])
def test_quantized_weights_are_n_bit_and_close(bits):
    w = torch.randn(64, 32)
    q, scale = quantize_tensor(w, bits)
    integers = q / 2.0 ** (1 - bits)
    assert torch.equal(integers, torch.round(integers)) and len(q.unique()) <= 2 ** bits
    assert integers.min() >= -(2 ** (bits - 1)) and integers.max() <= 2 ** (bits - 1) - 1
    assert scale == w.abs().max()
    assert (q * scale - w).abs().max() <= scale * 2.0 ** (1 - bits) + 1e-6  # half a step, a step at +max


def test_quantize_tensor_rounds_to_the_nearest_step_and_clips_only_the_top():
    """3 bits: steps of 1/4, integers -4..3; the scale is max |w| = 1. Values a hair either side of a
    half step, ties to even (as torch.round), -1 kept, +1 one step short."""
    w = torch.tensor([-1.0, -0.87, -0.6, -0.125, 0.1, 0.126, 0.374, 0.376, 0.62, 0.9, 1.0])
    q, scale = quantize_tensor(w, 3)
    integers = [-4, -3, -2, 0, 0, 1, 1, 2, 2, 3, 3]
    assert scale == 1 and torch.equal(q * 4, torch.tensor(integers, dtype=torch.float32))
    q, scale = quantize_tensor(torch.tensor([-1.0, 0.25, -0.25, 0.75]), 2)  # exact half steps of 2 bits
    assert scale == 1 and torch.equal(q * 2, torch.tensor([-2.0, 0, 0, 1]))


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_quantize_tensor_equals_the_obvious_loop(bits):
    """Seeded weights, every element against round-to-nearest and two's-complement clipping in Python."""
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    q, scale = quantize_tensor(w, bits)
    step, top = 2.0 ** (1 - bits), 2 ** (bits - 1)
    largest = max(abs(v) for v in w.flatten().tolist())
    expected = [min(max(round(v / largest / step), -top), top - 1) * step for v in w.flatten().tolist()]
    assert scale.item() == largest and q.flatten().tolist() == expected
