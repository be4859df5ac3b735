"""The integrate-and-fire neuron against its closed forms (chapter 3)."""
import math

import pytest
import torch

from cqlearn.neuron import constant_current_counts, constant_current_steps, encode, if_step

K = torch.arange(256)
A = K.float() / 255  # every 8-bit pixel value, as float32 images hold them


def floor_aT(T, shift=0):
    return (K * T + shift * 255) // 255  # floor(k T / 255 + shift), in exact integers


def scan(current, T, threshold=1.0, v_init=0.0):
    v = torch.full_like(current, v_init)
    return sum(if_step(v, current, threshold).long() for _ in range(T))


def test_if_neuron_fires_exactly_floor_aT_for_every_8bit_current_and_T_up_to_1024():
    v = torch.zeros_like(A)
    count = torch.zeros_like(K)
    for T in range(1, 1025):
        count += if_step(v, A, 1.0)
        assert torch.equal(count, floor_aT(T)), f"T = {T}: k = {K[count != floor_aT(T)].tolist()}"


def test_round_mode_starts_at_half_threshold_and_rounds_half_up():
    v = torch.full_like(A, 0.5)
    count = torch.zeros_like(K)
    for T in range(1, 1025):
        count += if_step(v, A, 1.0)
        assert torch.equal(count, (2 * K * T + 255) // 510), f"T = {T}"


@pytest.mark.parametrize("T", [1, 7, 16, 255, 1000, 1024])
def test_closed_form_equals_the_scan(T):
    assert torch.equal(constant_current_counts(A, T).long(), floor_aT(T))
    assert torch.equal(scan(A, T), floor_aT(T))


def test_closed_form_steps_match_the_scan_with_any_current_and_threshold():
    torch.manual_seed(0)
    current = (torch.rand(5000, dtype=torch.float64) * 3 - 1)
    for threshold, v_init in [(1.0, 0.0), (0.37, 0.0), (2.5, 1.25)]:
        v = torch.full_like(current, v_init)
        for s, membrane in constant_current_steps(current, 50, threshold, v_init):
            assert torch.equal(s, if_step(v, current, threshold))
            assert torch.allclose(membrane, v, atol=1e-9)


def test_spike_exactly_at_threshold_fires_and_potential_resets_by_subtraction():
    v = torch.tensor([0.5])
    assert not if_step(v, torch.tensor([0.49]), 1.0) and math.isclose(v.item(), 0.99, rel_tol=1e-6)
    v = torch.tensor([0.5])
    assert if_step(v, torch.tensor([0.5]), 1.0) and v.item() == 0.0
    v = torch.tensor([0.5])
    assert if_step(v, torch.tensor([3.0]), 1.0) and v.item() == 2.5  # at most one spike per step


def test_spike_encoding_gives_floor_xT_evenly_spaced_spikes():
    for T in [16, 32, 100]:
        spikes = encode(A, T, "spikes")
        assert spikes.dtype == torch.bool and spikes.shape == (T, 256)
        assert torch.equal(spikes.sum(0), floor_aT(T))
    half = encode(torch.tensor([0.5]), 8, "spikes")[:, 0]
    assert half.tolist() == [False, True] * 4


def test_poisson_encoding_has_the_right_rate_and_repeats_with_a_seed():
    x = torch.tensor([0.0, 0.25, 0.9, 1.0])
    spikes = encode(x.expand(2000, 4), 20, "poisson", torch.Generator().manual_seed(1))
    rate = spikes.float().mean((0, 1))
    assert rate[0] == 0 and rate[3] == 1 and abs(rate[1] - 0.25) < 0.01 and abs(rate[2] - 0.9) < 0.01
    again = encode(x.expand(2000, 4), 20, "poisson", torch.Generator().manual_seed(1))
    assert torch.equal(spikes, again)
