"""`cqlearn train` and `cqlearn eval` under torchrun: two CPU processes talking through gloo, on digits.

One DDP step on a global batch equals the step of one process on that batch; a run interrupted and
resumed under torchrun ends with the weights of an uninterrupted one; the sharded evaluation gives the
rows of one process exactly; only rank 0 logs and writes."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import cqlearn as cq
from cqlearn import distributed, experiments
from cqlearn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
# one step per epoch: 64 training images, a global batch of 64 (32 per process), no dropout
TRAIN = ["--model", "digits_cnn", "--dataset", "digits", "--epochs", "1", "2", "--width", "4", "--dropout", "0",
         "--limit", "64", "--batch-size", "64", "--test-limit", "100", "--no-progress"]
INTERRUPTED = """
import sys
import torch.distributed as dist
from cqlearn import distributed, experiments

class Interrupt(Exception):
    pass

def stop(stage, epoch):
    if (stage, epoch) == ("cq", 1):
        dist.barrier()  # rank 0 has saved last.pt
        raise Interrupt

distributed.setup("cpu")
try:
    config = experiments.TrainConfig("digits_cnn", "digits", epochs=(1, 0, 2), batch_size=64, limit=64,
                                     test_limit=100, model_kwargs={"width": 4, "dropout": 0.0})
    experiments.train_run(sys.argv[1], config, progress=False, on_epoch=stop)
except Interrupt:
    print("interrupted after cq epoch 1")
finally:
    distributed.teardown()
"""


def torchrun(*arguments, cwd):
    """Two processes on this CPU, started as a user would, with this checkout's cqlearn."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def single(out):
    config = experiments.TrainConfig("digits_cnn", "digits", epochs=(1, 0, 2), batch_size=64, limit=64,
                                     test_limit=100, model_kwargs={"width": 4, "dropout": 0.0})
    return experiments.train_run(out, config, device="cpu", progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return out, torchrun("-m", "cqlearn", "train", *TRAIN, "--out", str(out), cwd=out)


def test_one_ddp_step_equals_one_process_on_the_global_batch(ddp_run, tmp_path):
    out, _ = ddp_run
    single(tmp_path)
    ddp, one = cq.load(out / "plain.pt").state_dict(), cq.load(tmp_path / "plain.pt").state_dict()
    torch.manual_seed(0)
    start = experiments.build_model("digits_cnn", cq.data.load("digits", "train", limit=64), width=4, dropout=0.0)
    moved = [k for k, v in start.state_dict().items() if v.is_floating_point() and not torch.equal(v, one[k])]
    assert len(moved) > 10  # the step changed the weights (and BatchNorm's running statistics)
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


def test_only_rank_0_logs_and_writes(ddp_run):
    out, log = ddp_run
    assert log.count("plain epoch 1/1") == 1 and log.count("cq epoch 2/2") == 1 and log.count("done:") == 1
    assert sorted(p.name for p in out.iterdir()) == ["digits_digits_cnn_cq16.pt", "last.pt", "plain.pt"]
    model = cq.load(out / "digits_digits_cnn_cq16.pt")
    assert model.meta["accuracy"] == cq.evaluate(model, cq.data.load("digits", "test", limit=100))


def test_an_interrupted_run_resumes_under_torchrun_to_the_same_weights(ddp_run, tmp_path):
    out, _ = ddp_run
    (tmp_path / "interrupted.py").write_text(INTERRUPTED)
    assert "interrupted after cq epoch 1" in torchrun(str(tmp_path / "interrupted.py"), str(tmp_path / "run"),
                                                      cwd=tmp_path)
    assert not (tmp_path / "run" / "digits_digits_cnn_cq16.pt").exists()
    log = torchrun("-m", "cqlearn", "train", *TRAIN, "--out", str(tmp_path / "run"), "--resume", cwd=tmp_path)
    assert log.count("resuming") == 1 and "cq epoch 2/2" in log and "cq epoch 1/2" not in log
    resumed = cq.load(tmp_path / "run" / "digits_digits_cnn_cq16.pt").state_dict()
    whole = cq.load(out / "digits_digits_cnn_cq16.pt").state_dict()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_sharded_eval_equals_one_process_row_for_row(tmp_path):
    checkpoint = cq.shipped("digits_cnn_cq16.pt")
    options = ["--timesteps", "8", "16", "--encoding", "current", "spikes", "--weight-bits", "6", "--limit", "90",
               "--batch-size", "20", "--layer-images", "30", "--no-progress"]  # 5 batches: 3 on rank 0, 2 on rank 1
    torchrun("-m", "cqlearn", "eval", str(checkpoint), *options, "--results", "sharded.csv", cwd=tmp_path)
    main(["eval", str(checkpoint), *options, "--results", str(tmp_path / "one.csv"), "--device", "cpu"])

    def rows(name):
        with open(tmp_path / name) as f:
            return [{k: v for k, v in row.items() if k not in ("command", "machine")} for row in csv.DictReader(f)]

    sharded, one = rows("sharded.csv"), rows("one.csv")
    assert len(one) == 8 and sharded == one
    assert all(row["images"] == "90" and row["layer_exact"] for row in one)


def test_a_launch_without_torchrun_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set.*torchrun"):
        distributed.setup()
    with pytest.raises(SystemExit) as exit:  # the demo is one process: one clean error line, exit code 2
        main(["demo", "--quick"])
    assert exit.value.code == 2


def test_a_device_that_does_not_match_the_process_is_refused(monkeypatch):
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="LOCAL_RANK|no GPU"):
        distributed.setup("cuda:1")
    with pytest.raises(ValueError, match="cpu .gloo. or cuda .nccl."):
        distributed.setup("mps")
    assert not dist.is_initialized()


def test_the_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    assert distributed.local_batch(64) == 32
    with pytest.raises(ValueError, match="multiple of 2"):
        distributed.local_batch(63)


def test_one_process_uses_the_whole_set_and_plain_means():
    test_set = cq.data.load("digits", "test")
    assert distributed.shard(test_set, 50) is test_set and distributed.total(3, 4.5) == (3, 4.5)
    matches = torch.rand(101) < 0.3
    assert distributed.fraction(matches) == matches.float().mean().item()
    order = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(7)).tolist()
    assert list(distributed.sampler(test_set, 5, 2)) == order  # seed 5, epoch 2
