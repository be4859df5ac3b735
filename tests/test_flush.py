"""Flush steps (chapter 11): k steps after the T input steps with no input and no bias, net counts capped
at T, the readout still dividing by T."""
import pytest
import torch
from torch import nn

import cqlearn as cq
from cqlearn import memory
from test_snn import every_setting, random_cq_net


@every_setting
def test_run_equals_run_stepwise_with_flush_steps(encoding, mode, neuron):
    model = random_cq_net(mode=mode)
    x = torch.rand(16, 2, 8, 8, dtype=torch.float64)  # 16 images: late input in every setting
    T, k = 4, 7
    snn = cq.convert(model, timesteps=T, encoding=encoding, neuron=neuron, flush=k)
    snn.chunk = 3  # windows of 3 steps: 4 = 3 + 1 input steps, then 7 = 3 + 3 + 1 flush steps
    rec, step = snn.run(x, record=True, seed=7), snn.run_stepwise(x, record=True, seed=7)
    plain = cq.convert(model, timesteps=T, encoding=encoding, neuron=neuron).run(x, record=True, seed=7)
    for fast, slow, v_fast, v_slow, n, m, before in zip(rec.spikes, step.spikes, rec.membrane, step.membrane,
                                                         rec.counts, step.counts, plain.spikes):
        assert fast.shape == slow.shape == (T + k, *before.shape[1:])  # flush steps recorded
        assert torch.equal(fast, slow) and torch.allclose(v_fast, v_slow, atol=1e-9)
        assert torch.equal(n, m) and torch.equal(n, slow.sum(0).to(n.dtype))
        assert torch.equal(fast[:T], before)  # flush steps only come after the T steps
        assert n.max() <= T  # the cap
    for fast, slow, spikes in zip(rec.fired, step.fired, step.spikes):
        assert torch.equal(fast, slow) and torch.equal(fast, (spikes != 0).sum(0).to(fast.dtype))
    assert torch.allclose(rec.output, step.output, atol=1e-9)
    assert torch.allclose(rec.output, snn.readout(rec.counts[-1] / T), atol=1e-12)  # the readout divides by T
    assert rec.input_counts is None or torch.equal(rec.input_counts, plain.input_counts)  # no input in flush
    assert any(s[T:].any() for s in rec.spikes)  # flush steps fire: the comparison is not vacuous


def test_pieces_and_windows_with_flush_change_no_spike():
    """memory.plan counts the flush steps in the recording (T + k rows): one image per piece still fits."""
    model, x = random_cq_net(), torch.rand(6, 2, 8, 8, dtype=torch.float64)
    snn = cq.convert(model, 4, "current", "signed", flush=5)
    joined = snn.run(x, record=True)
    footprint, steps = memory.plan(snn, x, record=True).footprint, snn.timesteps + snn.flush
    snn.max_memory = (memory.recording_bytes(footprint, len(x), steps)
                      + memory.work_bytes(footprint, 1, steps, float("inf"), 1)) / memory.HEADROOM + 1
    snn.chunk = 1
    assert memory.plan(snn, x, record=True).piece == 1
    split = snn.run(x, record=True)
    assert torch.equal(split.output, joined.output) and all(map(torch.equal, split.spikes, joined.spikes))


def late_input_net():
    """x -> A (weight 1) -> B = (2 A, 8 A, bias 0.3) -> readout sum(B). With x = 1/4 and T = L = 4, A fires
    once, at step 4; the CQ-CNN's B is (0.5, 1 (clamped from 2), 0.25): 2, 4 and 1 spikes."""
    model = nn.Sequential(nn.Linear(1, 1), cq.CQ(4), nn.Linear(1, 3), cq.CQ(4), nn.Linear(3, 1)).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0), model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[2.0], [8.0], [0.0]])), model[2].bias.copy_(torch.tensor([0, 0, 0.3]))
        model[4].weight.fill_(1.0), model[4].bias.zero_()
    return model


@pytest.mark.parametrize("neuron", ["if", "signed"])
@pytest.mark.parametrize("flush, expected", [(0, [1, 1, 1]), (1, [2, 2, 1]), (8, [2, 4, 1])])
def test_late_input_fires_its_spikes_in_the_flush_steps_up_to_T(neuron, flush, expected):
    """B gets 2 and 8 at step 4, too late to fire 2 and 4 spikes; flush steps fire the rest, the cap stops B2
    at T = 4 (uncapped, 9) with its potential keeping the charge (8 - 4); neither x nor the bias 0.3 drives
    anything during flush (with them, A and B3 would fire again)."""
    model, x = late_input_net(), torch.tensor([[0.25]], dtype=torch.float64)
    cnn = cq.analysis.cq_activations(model, x)[1] * 4
    snn = cq.convert(model, timesteps=4, encoding="current", neuron=neuron, flush=flush)
    for rec in (snn.run(x, record=True), snn.run_stepwise(x, record=True)):
        assert rec.counts[0].tolist() == [[1.0]]
        assert rec.counts[1].tolist() == [expected]
        assert rec.output.item() == pytest.approx(sum(expected) / 4)
        if flush == 8:
            assert torch.equal(rec.counts[1], cnn)
            assert rec.membrane[1][-1, 0].tolist() == pytest.approx([0.0, 4.0, 0.2])


def test_the_cap_leaves_minus_one_spikes_free():
    """if_step's limit stops +1 spikes at the net count `limit` only: a signed neuron at the limit with a
    negative potential still takes a spike back."""
    v, count = torch.tensor([2.0, 2.0, -0.5]), torch.tensor([4.0, 3.0, 4.0])
    spikes = cq.neuron.if_step(v, torch.zeros(3), signed=True, count=count, limit=4)
    assert spikes.tolist() == [0, 1, -1] and count.tolist() == [4, 4, 3] and v.tolist() == [2, 1, 0.5]
    with pytest.raises(ValueError, match="count="):
        cq.neuron.if_step(v, torch.zeros(3), limit=4)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", float("nan")])
def test_flush_must_be_a_whole_number_of_steps(bad):
    with pytest.raises(ValueError, match="flush must be a whole number"):
        cq.convert(late_input_net(), 4, "current", flush=bad)


def test_all_timesteps_with_flush_is_refused_with_the_fix():
    snn = cq.convert(late_input_net(), 4, "current", flush=2)
    x = torch.tensor([[0.25]], dtype=torch.float64)
    for run in (snn.run, snn.run_stepwise):
        with pytest.raises(ValueError, match="flush=2 steps after step T.*sweep T with flush=0"):
            run(x, all_timesteps=True)


def test_energy_counts_the_flush_steps_spikes():
    model, x = late_input_net(), torch.tensor([[0.25]], dtype=torch.float64)
    rows = {k: cq.energy.count(cq.convert(model, 4, "current", "signed", flush=k), x) for k in (0, 8)}
    assert [r["spikes"] for r in rows[0][:2]] == [1, 3] and [r["spikes"] for r in rows[8][:2]] == [1, 7]
    assert rows[8][2]["synops"] == 7 and rows[0][2]["synops"] == 3  # the readout: one addition per spike
    assert rows[8][1]["rate"] == pytest.approx(7 / (3 * 12))  # per neuron and step, flush steps included
    with pytest.raises(ValueError, match="flush=8 steps after step T"):
        cq.energy.count_every_timestep(cq.convert(model, 4, "current", "signed", flush=8), x)


def test_eval_flush_rows_match_the_library(tmp_path, capsys):
    """cqlearn eval --flush K: one simulation per T, each row equal to cq.convert(..., flush=K) on the same
    images, with the flush in the printed line and its own key in the checkpoint's record."""
    from pathlib import Path

    from cqlearn.cli import main
    checkpoint = tmp_path / "digits.pt"
    checkpoint.write_bytes(Path(cq.shipped("digits_cnn_cq16.pt")).read_bytes())
    results = tmp_path / "results.csv"
    main(["eval", str(checkpoint), "--neuron", "signed", "--encoding", "spikes", "--timesteps", "8", "16", "--flush",
          "2", "--limit", "60", "--layer-images", "0", "--results", str(results), "--record", "--no-progress"])
    assert " signed spikes T=16, flush 2 " in capsys.readouterr().out
    import csv
    rows = list(csv.DictReader(results.open()))
    model, test_set = cq.load(checkpoint), cq.data.load("digits", "test", limit=60)
    for row in rows:
        snn = cq.convert(model, int(row["timesteps"]), "spikes", "signed", flush=2)
        assert "--flush 2" in row["command"] and float(row["snn"]) == pytest.approx(cq.evaluate(snn, test_set))
    assert model.meta["snn_accuracy"]["spikes signed, flush 2"][16] == pytest.approx(float(rows[1]["snn"]))
