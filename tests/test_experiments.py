"""`cqlearn train` (staged, checkpointed, resumable) and `cqlearn eval` (rows, weight bits), on a tiny
fake MNIST written by the tests."""
import csv
import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import cqlearn as cq
from cqlearn import baseline, evaluation, experiments
from cqlearn.cli import main
from cqlearn.train import batches

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"width": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A fake "mnist.npz": 10 classes, each a bright square at its own place plus noise."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)

    def images(n):
        labels = np.arange(n) % 10
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            r, c = divmod(label, 4)
            x[i, 2 + 7 * r:8 + 7 * r, 2 + 6 * c:8 + 6 * c] = 250
        return x, labels.astype(np.uint8)

    (xtr, ytr), (xte, yte) = images(80), images(30)
    np.savez(folder / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return folder


def run(out, root, **kwargs):
    """train_run with a TrainConfig of the tiny defaults below, changed by the kwargs that are its fields."""
    fields = {f.name for f in dataclasses.fields(experiments.TrainConfig)}
    config = dict(model="mnist_cnn", dataset="mnist", levels=16, epochs=(2, 0, 2), batch_size=16, model_kwargs=TINY)
    options = dict(root=root, device="cpu", progress=False, log=lambda *a: None)
    for key, value in kwargs.items():
        (config if key in fields else options)[key] = value
    return experiments.train_run(out, experiments.TrainConfig(**config), **options)


def weights(path):
    return cq.load(path).state_dict()


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return out, run(out, root)


def test_staged_run_writes_every_stage_and_a_loadable_cq_checkpoint(reference, root):
    out, summary = reference
    final = out / "mnist_mnist_cnn_cq16.pt"
    assert {p.name for p in out.iterdir()} >= {"last.pt", "plain.pt", final.name}
    assert summary["checkpoint"] == str(final) and 0 <= summary["plain_accuracy"] <= 1
    model = cq.load(final)
    assert sum(isinstance(m, cq.CQ) and m.levels == 16 for m in model.modules()) == 6
    meta = model.meta
    assert (meta["dataset"], meta["model_name"], meta["levels"], meta["stage"]) == ("mnist", "mnist_cnn", 16, "cq")
    assert meta["accuracy"] == summary["cq_accuracy"] and meta["plain_accuracy"] == summary["plain_accuracy"]
    assert meta["accuracy"] == pytest.approx(cq.evaluate(model, cq.data.load("mnist", "test", root=root)), abs=1e-6)
    assert [h["epoch"] for h in meta["history"]["plain"]] == [1, 2] and len(meta["history"]["cq"]) == 2
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)  # images in [0, 1], (B, C, H, W)
    assert not any(isinstance(m, cq.CQ) for m in cq.load(out / "plain.pt").modules())


class Interrupt(Exception):
    pass


def interrupt_at(stage, epoch):
    def hook(s, e):
        if (s, e) == (stage, epoch):
            raise Interrupt
    return hook


@pytest.mark.parametrize("stage, epoch", [("plain", 1), ("plain", 2), ("cq", 1)])
def test_resume_after_an_interruption_ends_with_the_same_weights(root, reference, tmp_path, stage, epoch):
    with pytest.raises(Interrupt):
        run(tmp_path, root, on_epoch=interrupt_at(stage, epoch))
    with pytest.raises(FileExistsError, match="--resume"):
        run(tmp_path, root)
    summary = run(tmp_path, root, resume=True)
    out, expected = reference
    assert summary["cq_accuracy"] == expected["cq_accuracy"]
    assert same_weights(weights(tmp_path / "mnist_mnist_cnn_cq16.pt"), weights(out / "mnist_mnist_cnn_cq16.pt"))
    assert same_weights(weights(tmp_path / "plain.pt"), weights(out / "plain.pt"))
    history = cq.load(tmp_path / "mnist_mnist_cnn_cq16.pt").meta["history"]
    assert [h["epoch"] for h in history["cq"]] == [1, 2]


def test_resume_refuses_other_settings(root, tmp_path):
    with pytest.raises(Interrupt):
        run(tmp_path, root, on_epoch=interrupt_at("plain", 1))
    with pytest.raises(ValueError, match="levels"):
        run(tmp_path, root, levels=8, resume=True)


def test_a_killed_command_resumes(root, reference, tmp_path):
    """SIGKILL the real command once its first checkpoint is on disk, then `--resume`."""
    command = [sys.executable, "-m", "cqlearn", "train", "--model", "mnist_cnn", "--dataset", "mnist",
               "--epochs", "2", "2", "--batch-size", "16", "--width", "2", "--dropout", "0", "--device", "cpu", "--threads", "1",
               "--out", str(tmp_path), "--root", str(root), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (tmp_path / "last.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    main(command[3:] + ["--resume"])
    out, _ = reference
    assert same_weights(weights(tmp_path / "mnist_mnist_cnn_cq16.pt"), weights(out / "mnist_mnist_cnn_cq16.pt"))


def test_mixed_precision_path_runs_on_the_cpu(root, tmp_path):
    summary = run(tmp_path, root, epochs=(1, 0, 1), amp=True)  # bfloat16 autocast on the CPU
    history = cq.load(summary["checkpoint"]).meta["history"]
    assert np.isfinite(history["cq"][0]["loss"])


def test_init_fine_tunes_another_runs_plain_network(root, reference, tmp_path):
    """--init with 0 plain epochs: the CQ stage starts from the given plain.pt, weights included."""
    out, _ = reference
    plain = weights(out / "plain.pt")
    steps = []
    summary = run(tmp_path, root, epochs=(0, 0, 1), levels=8, mode="round", init=out / "plain.pt",
                  on_epoch=lambda stage, epoch: steps.append(stage))
    assert steps == ["cq"] and summary["plain_accuracy"] is None
    model = cq.load(summary["checkpoint"])
    assert {(m.levels, m.mode) for m in model.modules() if isinstance(m, cq.CQ)} == {(8, "round")}
    assert model.meta["command"] is None and cq.load(tmp_path / "last.pt").meta["config"]["init"] == str(out / "plain.pt")
    # one epoch moved the weights away from the plain network it started from, but not far
    moved = [(model.state_dict()[k] - plain[k]).abs().max().item() for k in plain if k.endswith("weight")]
    assert 0 < max(moved) < 1


def test_init_refuses_another_network(root, reference, tmp_path):
    out, _ = reference
    with pytest.raises(ValueError, match="another network"):
        run(tmp_path, root, epochs=(0, 0, 1), init=out / "plain.pt", model_kwargs={"width": 3, "dropout": 0.0})


def test_sgd_runs_and_resumes_to_the_same_weights(root, tmp_path):
    with pytest.raises(Interrupt):
        run(tmp_path / "a", root, optimizer="sgd", lr=0.05, on_epoch=interrupt_at("plain", 1))
    run(tmp_path / "a", root, optimizer="sgd", lr=0.05, resume=True)
    run(tmp_path / "b", root, optimizer="sgd", lr=0.05)
    assert same_weights(weights(tmp_path / "a" / "mnist_mnist_cnn_cq16.pt"),
                        weights(tmp_path / "b" / "mnist_mnist_cnn_cq16.pt"))
    with pytest.raises(ValueError, match="optimizer"):
        run(tmp_path / "c", root, optimizer="rmsprop")


def test_stage_epochs():
    assert experiments.stage_epochs([4]) == (4, 0, 4)
    assert experiments.stage_epochs([4, 2]) == (4, 0, 2)
    assert experiments.stage_epochs([4, 1, 2]) == (4, 1, 2)
    with pytest.raises(ValueError):
        experiments.stage_epochs([1, 2, 3, 4])


def test_batched_crop_flip_is_a_shifted_and_maybe_flipped_copy():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    y = cq.data.crop_flip(x, padding=2)
    padded = torch.nn.functional.pad(x, (2,) * 4)
    flips = []
    for i in range(len(x)):
        matches = [(t, l, f) for t in range(5) for l in range(5) for f in (False, True)
                   if torch.equal(y[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, t:t + 8, l:l + 8]))]
        assert matches, i
        flips.append(matches[0][2])
    assert 10 < sum(flips) < 54


def test_batches_cover_the_data_once_in_a_seeded_order(root):
    ds = cq.data.load("mnist", "test", root=root)
    labels = torch.cat([y for _, y in batches(ds, 7, shuffle=True, seed=3)])
    again = torch.cat([y for _, y in batches(ds, 7, shuffle=True, seed=3)])
    assert torch.equal(labels, again) and sorted(labels.tolist()) == sorted(ds.labels.tolist())


def test_eval_rows_match_the_library(reference, root, tmp_path):
    out, summary = reference
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes((out / "mnist_mnist_cnn_cq16.pt").read_bytes())
    results = tmp_path / "results.md"
    rows = evaluation.eval_run(checkpoint, timesteps=(16, 5), encodings=("current",), weight_bits=(8,),
                                root=root, results=results, record=True, progress=False, log=lambda *a: None)
    assert [(r["timesteps"], r["weights"], r["readout"]) for r in rows] == [
        (16, "float32", "float32"), (16, "8-bit", "8-bit"), (5, "float32", "float32"), (5, "8-bit", "8-bit")]
    model, test_set = cq.load(checkpoint), cq.data.load("mnist", "test", root=root)
    snn = cq.convert(model, 5, "current")
    assert rows[2]["snn"] == pytest.approx(cq.evaluate(snn, test_set))
    assert rows[3]["snn"] == pytest.approx(cq.evaluate(snn.with_weight_bits(8), test_set))
    assert rows[0]["cq_cnn"] == pytest.approx(cq.evaluate(model, test_set)) and rows[0]["cnn"] == summary["plain_accuracy"]
    assert rows[0]["agreement"] == pytest.approx(cq.analysis.prediction_agreement(model, cq.convert(model, 16, "current"), test_set))
    # "current" encoding with T = levels: the first spiking layer's counts are exact (the design's contract)
    assert rows[0]["layer_exact"].split(" / ")[0] == "100.0"
    lines = results.read_text().splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("| date | dataset") and "| 8-bit |" in lines[3]
    meta = cq.load(checkpoint).meta
    assert meta["snn_accuracy"]["current"][5] == rows[2]["snn"]
    assert meta["weight_bits_accuracy"]["current"][16][8] == rows[1]["snn"] and meta["weight_bits_readout"] is True


def test_cli_train_and_eval_append_csv_rows(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CQLEARN_DATA", str(root))
    main(["train", "--model", "mnist_cnn", "--dataset", "mnist", "--epochs", "1", "--width", "2",
          "--batch-size", "32", "--limit", "40", "--out", str(tmp_path / "run"), "--no-progress"])
    checkpoint = tmp_path / "run" / "mnist_mnist_cnn_cq16.pt"
    assert cq.load(checkpoint).meta["command"].startswith("cqlearn train --model mnist_cnn")
    results = tmp_path / "results.csv"
    for _ in range(2):
        main(["eval", str(checkpoint), "--timesteps", "4", "--weight-bits", "6", "--float-readout",
              "--results", str(results), "--no-progress", "--layer-images", "0"])
    out = capsys.readouterr().out
    assert "SNN" in out and "CQ-CNN" in out and "weights 6-bit (readout float32)" in out
    rows = list(csv.DictReader(results.open()))
    assert len(rows) == 4 and rows[1]["weights"] == "6-bit" and rows[1]["readout"] == "float32"
    assert float(rows[0]["snn"]) == float(rows[2]["snn"])
    main(["eval", str(checkpoint), "--timesteps", "4", "--weight-bits", "6", "--float-readout", "--no-float",
          "--results", str(results), "--no-progress", "--layer-images", "0"])
    rows = list(csv.DictReader(results.open()))  # only the 6-bit row was added, and it is the same
    assert len(rows) == 5 and rows[4]["weights"] == "6-bit" and rows[4]["snn"] == rows[1]["snn"]
    with pytest.raises(ValueError, match="nothing to measure"):
        evaluation.eval_run(checkpoint, timesteps=(4,), float_weights=False, progress=False, log=lambda *a: None)


def test_train_errors_say_what_to_do(root, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        run(tmp_path, root, model="resnet")
    with pytest.raises(ValueError, match="no option 'depth'"):
        run(tmp_path, root, model_kwargs={"depth": 3})
    with pytest.raises(ValueError, match="CQ stage"):
        run(tmp_path, root, epochs=(1, 0, 0))


def test_eval_converts_the_plain_network_naively_as_the_baseline(reference, root):
    out, _ = reference
    rows = evaluation.eval_run(out / "mnist_mnist_cnn_cq16.pt", timesteps=(8,), encodings=("current",),
                                baseline=out / "plain.pt", calibration=20, layer_images=0, root=root,
                                progress=False, log=lambda *a: None)
    assert [r["network"] for r in rows] == ["CQ", "ReLU baseline (p99.9)"]
    plain, test_set = cq.load(out / "plain.pt"), cq.data.load("mnist", "test", root=root)
    images = cq.data.load("mnist", "train", root=root, limit=20).images
    naive = baseline.normalise(plain, images, 8, "current", 99.9)
    assert rows[1]["snn"] == pytest.approx(cq.evaluate(naive, test_set))
    assert rows[1]["cnn"] == pytest.approx(cq.evaluate(plain, test_set)) and rows[1]["cq_cnn"] is None
    assert rows[1]["snn_minus_converted"] == pytest.approx(rows[1]["snn"] - rows[1]["cnn"])


def test_eval_baseline_max_and_percentile_and_the_figure(reference, root, tmp_path):
    """--percentile 100 99.9 gives a max-normalised and a percentile row per T; --figure draws them."""
    out, _ = reference
    figure = tmp_path / "figure" / "accuracy.png"
    rows = evaluation.eval_run(out / "mnist_mnist_cnn_cq16.pt", timesteps=(8, 16), encodings=("current",),
                                baseline=out / "plain.pt", percentiles=(100, 99.9), calibration=20,
                                layer_images=0, root=root, progress=False, log=lambda *a: None, figure=figure)
    assert [(r["network"], r["timesteps"]) for r in rows] == [
        ("CQ", 8), ("ReLU baseline (max)", 8), ("ReLU baseline (p99.9)", 8),
        ("CQ", 16), ("ReLU baseline (max)", 16), ("ReLU baseline (p99.9)", 16)]
    plain = cq.load(out / "plain.pt")
    images = cq.data.load("mnist", "train", root=root, limit=20).images
    test_set = cq.data.load("mnist", "test", root=root)
    assert rows[4]["snn"] == pytest.approx(cq.evaluate(baseline.normalise(plain, images, 16, "current", 100), test_set))
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
