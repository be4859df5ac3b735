"""The integrate-and-fire neuron against its closed forms (chapter 3)."""
import math
from fractions import Fraction

import pytest
import torch

import cqlearn as cq
from cqlearn.neuron import cnn_counts, constant_current_counts, constant_current_window, encode, if_step, simulate

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


@pytest.mark.parametrize("signed", [False, True])
def test_closed_form_window_matches_the_scan_with_any_current_and_threshold(signed):
    """Under a constant current the signed neuron never goes below 0 after a spike: the same closed form."""
    torch.manual_seed(0)
    current = (torch.rand(5000, dtype=torch.float64) * 3 - 1)
    for threshold, v_init in [(1.0, 0.0), (0.37, 0.0), (2.5, 1.25)]:
        v, count = torch.full_like(current, v_init), torch.zeros_like(current)
        spikes, membrane = constant_current_window(current, 0, 50, threshold, v_init, membrane=True)
        for s, potential in zip(spikes, membrane):
            step = if_step(v, current, threshold, signed=signed, count=count)
            assert torch.equal(s.to(torch.int8), step.to(torch.int8))
            assert torch.allclose(potential, v, atol=1e-9)
        later, _ = constant_current_window(current, 20, 30, threshold, v_init)  # a window from step 21 on
        assert torch.equal(later, spikes[20:])


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
    spikes = encode(x.expand(2000, 4), 20, "poisson", seed=1)
    rate = spikes.float().mean((0, 1))
    assert rate[0] == 0 and rate[3] == 1 and abs(rate[1] - 0.25) < 0.01 and abs(rate[2] - 0.9) < 0.01
    assert torch.equal(spikes, encode(x.expand(2000, 4), 20, "poisson", seed=1))
    assert not torch.equal(spikes, encode(x.expand(2000, 4), 20, "poisson", seed=2))
    # neighbouring images, steps and pixels are not correlated
    flat = spikes[:, :, 1].float()
    assert abs(torch.corrcoef(torch.stack([flat[:-1].flatten(), flat[1:].flatten()]))[0, 1]) < 0.03
    assert abs(torch.corrcoef(torch.stack([flat[:, :-1].flatten(), flat[:, 1:].flatten()]))[0, 1]) < 0.03


def test_poisson_train_of_an_image_depends_only_on_seed_index_and_step():
    x = torch.rand(6, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    whole = encode(x, 12, "poisson", seed=5)
    assert torch.equal(whole[:, 2:4], encode(x[2:4], 12, "poisson", seed=5, first_image=2))  # a piece
    assert torch.equal(whole[4:9], encode(x, 5, "poisson", seed=5, start=4))  # a window of steps
    assert torch.equal(whole.double(), encode(x.double(), 12, "poisson", seed=5).double())  # dtype: same spikes


def test_signed_neuron_takes_back_a_spike_that_later_input_cancels():
    """Chapter 7's timing error: +0.6, +0.6, then -0.6, -0.6. The IF neuron fires once and keeps it; the
    signed neuron fires +1 (v = 0.2), then -1 when v = -0.4 < 0 after it has fired (v = 0.6), and ends
    at the CNN's count, 0."""
    inputs = [0.6, 0.6, -0.6, -0.6, 0.0]
    v, count = torch.zeros(1), torch.zeros(1)
    spikes = [if_step(v, torch.tensor([c]), 1.0, signed=True, count=count).item() for c in inputs]
    assert spikes == [0, 1, -1, 0, 0] and count.item() == 0 and abs(v.item()) < 1e-6
    v = torch.zeros(1)
    assert [bool(if_step(v, torch.tensor([c]), 1.0)) for c in inputs] == [False, True, False, False, False]
    v, count = torch.tensor([0.0]), torch.zeros(1)  # never below 0 without a spike first: no -1
    assert if_step(v, torch.tensor([-0.5]), 1.0, signed=True, count=count).item() == 0
    v, count = torch.tensor([-0.05]), torch.tensor([2.0])  # at most one spike per step, v -= spike * threshold
    assert if_step(v, torch.tensor([-3.0]), 1.0, signed=True, count=count).item() == -1
    assert v.item() == pytest.approx(-2.05) and count.item() == 1
    s = if_step(torch.zeros(3), torch.tensor([1.0, 0.0, -1.0]), 1.0, signed=True, count=torch.ones(3))
    assert s.dtype == torch.int8 and s.tolist() == [1, 0, -1]


def test_signed_neuron_ignores_float_rounding_below_zero():
    """A neuron that fired a hair under the threshold sits a hair below 0: it must not take the spike back."""
    v, count = torch.tensor([0.7], dtype=torch.float32), torch.zeros(1)
    assert if_step(v, torch.tensor([0.29999]), 1.0, signed=True, count=count).item() == 1 and v.item() < 0
    assert if_step(v, torch.tensor([0.0]), 1.0, signed=True, count=count).item() == 0


def test_reset_to_zero_and_bad_options():
    v = torch.tensor([0.5, 0.5])
    assert if_step(v, torch.tensor([0.7, 0.2]), 1.0, reset="zero").tolist() == [True, False]
    assert v.tolist() == [0.0, pytest.approx(0.7)]
    with pytest.raises(ValueError, match="reset must be"):
        if_step(v, v, 1.0, reset="none")
    with pytest.raises(ValueError, match="count"):
        if_step(v, v, 1.0, signed=True)
    out = torch.empty(2)  # spikes written into a float tensor, as the fast simulation does
    assert if_step(torch.zeros(2), torch.tensor([1.0, -1.0]), 1.0, signed=True, count=torch.ones(2), out=out) is out
    assert out.tolist() == [1.0, -1.0]


# cq.neuron.simulate: one neuron (or a tensor of them) kept step by step (chapters 3 and 11) ----------

def test_subtraction_count_is_floor_aT_for_every_k_over_255():
    currents = torch.arange(256, dtype=torch.float64) / 255
    for T in (1, 7, 16, 100, 255):
        spikes, _, after, _ = cq.neuron.simulate(currents, T)
        expected = torch.tensor([math.floor(Fraction(k, 255) * T) for k in range(256)])
        assert torch.equal(spikes.sum(0), expected), T
        residual = currents * T - expected  # what is left on the membrane: aT - N in [0, 1)
        assert torch.allclose(after[-1], residual, atol=1e-9)


def test_reset_to_zero_matches_its_closed_form():
    """floor(T / ceil(threshold / a)) spikes: the neuron restarts from 0 after every spike."""
    for k in range(1, 101):
        for T in (5, 16, 33):
            spikes, _, after, _ = cq.neuron.simulate(k / 100, T, reset="zero")
            assert int(spikes.sum()) == T // math.ceil(Fraction(100, k)), (k, T)
            assert all(after[spikes] == 0)


def test_reset_to_zero_step_in_place_and_never_above_subtraction():
    v = torch.tensor([0.0, 0.5, 0.9])
    s = cq.neuron.if_step(v, torch.tensor([0.3, 0.6, 0.1]), 1.0, reset="zero")
    assert s.tolist() == [False, True, True] and v.tolist() == pytest.approx([0.3, 0.0, 0.0])
    a = torch.linspace(0, 1, 101, dtype=torch.float64)
    zero = cq.neuron.simulate(a, 32, reset="zero").spikes.sum(0)
    subtract = cq.neuron.simulate(a, 32).spikes.sum(0)
    assert (zero <= subtract).all() and (zero < subtract).any()


def test_simulate_holds_a_constant_current_or_steps_through_a_sequence():
    a = torch.tensor([0.3, 0.7, 1.2])
    held, stepped = cq.neuron.simulate(a, 10), cq.neuron.simulate(a.expand(10, 3))
    assert all(torch.equal(x, y) for x, y in zip(held, stepped))
    assert torch.equal(held.counts, held.spikes.double().cumsum(0)) and held.counts[-1].tolist() == [3, 7, 10]
    assert torch.allclose(held.before - held.after, held.spikes.double())  # reset by subtraction of θ = 1
    with pytest.raises(ValueError, match="timesteps"):
        cq.neuron.simulate(0.5, 0)
    with pytest.raises(ValueError, match="reset"):
        cq.neuron.simulate(0.5, 4, reset="none")


# The signed neuron stepped by cq.neuron.simulate (chapter 11) ---------------------------------------

def test_chapter_5_sequence_by_hand():
    """+0.6 +0.6 -0.6 -0.6: the CNN says 0; IF fires at step 2 and keeps it, signed IF takes it back."""
    currents = [0.6, 0.6, -0.6, -0.6]
    spikes, before, after, counts = simulate(currents)
    assert spikes.tolist() == [0, 1, 0, 0] and counts.tolist() == [0, 1, 1, 1]
    assert after.tolist() == pytest.approx([0.6, 0.2, -0.4, -1.0])
    spikes, before, after, counts = simulate(currents, signed=True)
    assert spikes.dtype == torch.int8 and spikes.tolist() == [0, 1, -1, 0] and counts.tolist() == [0, 1, 0, 0]
    assert before.tolist() == pytest.approx([0.6, 1.2, -0.4, 0.0]) and after.tolist() == pytest.approx([0.6, 0.2, 0.6, 0.0])
    assert cnn_counts(currents).tolist() == [0, 1, 0, 0]


def test_one_correction_per_step_leaves_a_late_error():
    """A large negative input at the last step needs two corrections; the neuron can send one."""
    currents = [0.5, 0.5, 0.5, 0.5, -2.0]
    assert simulate(currents).counts[-1] == 2
    assert simulate(currents, signed=True).counts[-1] == 1
    assert cnn_counts(currents)[-1] == 0


def test_both_neurons_obey_reset_by_subtraction_and_signed_never_goes_negative():
    generator = torch.Generator().manual_seed(11)
    currents = (torch.rand(40, 500, generator=generator, dtype=torch.float64) * 2.4 - 1.2)  # 500 neurons
    for neuron, threshold in (("if", 1.0), ("signed", 1.0), ("signed", 0.7)):
        spikes, before, after, counts = simulate(currents, threshold=threshold, signed=neuron == "signed")
        assert torch.allclose(after[-1], currents.sum(0) - counts[-1] * threshold, atol=1e-9)
        assert torch.equal(counts, spikes.double().cumsum(0)) and spikes.double().abs().max() <= 1
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
    cnn = cnn_counts(currents)[-1]
    many = {}
    for neuron in ("if", "signed"):
        _, _, after, counts = simulate(currents, signed=neuron == "signed")
        v, n = after[-1], counts[-1]
        below, above = (v < 0) & (n > 0), (v >= 1) & (n < 24)
        assert torch.equal(n != cnn, below | above) and above.any()
        assert torch.equal(n > cnn, below)
        many[neuron] = int(below.sum())
    assert 0 < many["signed"] < many["if"] / 10


def test_cnn_counts_is_the_floor_law_of_the_running_sum():
    currents = torch.tensor([0.9, 0.9, -0.6, 0.3, 2.0, -3.0], dtype=torch.float64)
    expected = [min(max(math.floor(s + 1e-9), 0), t) for t, s in enumerate(currents.cumsum(0).tolist(), start=1)]
    assert cnn_counts(currents).tolist() == expected
