"""Resuming `cqlearn train` (chapter 9): after a stop at any checkpoint write of a 3-stage run, in this
process or by a real SIGKILL of the command, `--resume` ends with the same weights, bit for bit."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cqlearn as cq
from cqlearn import experiments
from cqlearn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
EPOCHS = (2, 2, 1)  # plain, clamp, cq: two stage boundaries, each stage a first and a last epoch
# the checkpoint writes of that run, in order: each epoch writes last.pt, and a stage's last epoch first
# writes the stage's own file (plain.pt, clamp.pt, the final CQ checkpoint)
WRITES = ["last.pt", "plain.pt", "last.pt", "last.pt", "clamp.pt", "last.pt", "digits_digits_cnn_cq16.pt", "last.pt"]
FLAGS = ["--model", "digits_cnn", "--dataset", "digits", "--epochs", *map(str, EPOCHS), "--width", "2",
         "--dropout", "0", "--limit", "100", "--test-limit", "50", "--batch-size", "25", "--device", "cpu",
         "--threads", "1", "--no-progress"]
FILES = ["plain.pt", "clamp.pt", "digits_digits_cnn_cq16.pt", "last.pt"]

# Runs `cqlearn train` and SIGKILLs it right after its N-th checkpoint write: a deterministic place to
# kill it, by the operating system, with no chance to clean up.
KILLED_AFTER_WRITE = """
import os, signal, sys
from cqlearn import experiments
from cqlearn.cli import main
writes, real_save = [int(sys.argv[1])], experiments.save
def save(*args, **kwargs):
    path = real_save(*args, **kwargs)
    writes[0] -= 1
    if writes[0] == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
experiments.save = save
main(sys.argv[2:])
"""


class Stop(Exception):
    pass


def stop_after(n, monkeypatch):
    """Make this process's train_run stop (raise Stop) right after its n-th checkpoint write."""
    writes, real_save = [], experiments.save

    def save(*args, **kwargs):
        path = real_save(*args, **kwargs)
        writes.append(Path(path).name)
        if len(writes) == n:
            raise Stop
        return path

    monkeypatch.setattr(experiments, "save", save)
    return writes


def train(out, *more):
    main(["train", *FLAGS, "--out", str(out), *more])


def state_dicts(out):
    return {name: cq.load(out / name).state_dict() for name in FILES}


def assert_same_run(out, reference):
    ours = state_dicts(out)
    for name, expected in state_dicts(reference).items():
        assert ours[name].keys() == expected.keys(), name
        assert all(torch.equal(ours[name][k], expected[k]) for k in expected), name
    final = [cq.load(folder / FILES[2]).meta for folder in (out, reference)]
    assert [h["epoch"] for h in final[0]["history"]["clamp"]] == [1, 2]
    assert {k: final[0][k] for k in ("accuracy", "plain_accuracy", "clamp_accuracy")} == \
        {k: final[1][k] for k in ("accuracy", "plain_accuracy", "clamp_accuracy")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    train(out)
    return out


def test_the_run_writes_its_checkpoints_in_the_order_the_tests_stop_at(tmp_path, monkeypatch):
    writes = stop_after(len(WRITES) + 1, monkeypatch)
    train(tmp_path)
    assert writes == WRITES


@pytest.mark.parametrize("n", range(1, len(WRITES) + 1), ids=lambda n: f"after-{n}-{WRITES[n - 1]}")
def test_resume_after_a_stop_at_any_checkpoint_write_gives_the_same_weights(reference, tmp_path, monkeypatch, n):
    """Every epoch of every stage, both stage boundaries (with and without the stage's own file
    written), and the finished run."""
    stop_after(n, monkeypatch)
    with pytest.raises(Stop):
        train(tmp_path)
    monkeypatch.undo()
    train(tmp_path, "--resume")
    assert_same_run(tmp_path, reference)
    model = cq.load(tmp_path / FILES[2])
    assert sum(isinstance(m, cq.CQ) for m in model.modules()) == 4 and cq.convert(model, 16) is not None


def test_sigkill_at_each_stage_boundary_then_resume(reference, tmp_path):
    """The real command killed by SIGKILL when the plain stage has ended, resumed and killed again when
    the clamp stage has ended (where `--epochs 2 2 1` used to fail with KeyError: 'cq'), resumed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", KILLED_AFTER_WRITE]
    argv = ["train", *FLAGS, "--out", str(tmp_path)]
    for writes, extra, stage in ((3, [], "plain"), (3, ["--resume"], "clamp")):
        result = subprocess.run(command + [str(writes)] + argv + extra, env=env, cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == -9, result.stderr  # killed, not finished or failed
        last = cq.load(tmp_path / "last.pt").meta
        assert (last["stage"], last["finished"]) == (stage, True)
    train(tmp_path, "--resume")
    assert_same_run(tmp_path, reference)


def test_each_stage_starts_from_the_weights_the_stage_before_ended_with(tmp_path, monkeypatch):
    """Clamp starts from plain.pt and CQ from clamp.pt (not from fresh weights), also when the run is
    resumed at the boundary between them."""
    starts, real_epoch = {}, experiments._epoch

    def epoch(model, *args):
        stage = args[-1].split()[0]  # the progress label, "clamp 1"
        starts.setdefault(stage, {k: v.clone() for k, v in model.state_dict().items()})
        return real_epoch(model, *args)

    monkeypatch.setattr(experiments, "_epoch", epoch)
    for out, stops in ((tmp_path / "a", ()), (tmp_path / "b", (3, 3))):
        starts.clear()
        for i, n in enumerate(stops):
            with monkeypatch.context() as m:
                stop_after(n, m)
                with pytest.raises(Stop):
                    train(out, *(["--resume"] if i else []))
        train(out, *(["--resume"] if stops else []))
        assert list(starts) == list(experiments.STAGES)
        for stage, before in (("clamp", "plain.pt"), ("cq", "clamp.pt")):
            ended = cq.load(out / before).state_dict()
            assert all(torch.equal(starts[stage][k], ended[k]) for k in ended), (out.name, stage)
