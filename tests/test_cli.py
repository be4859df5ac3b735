"""The `cqlearn` command."""
import subprocess
import sys
from pathlib import Path

import pytest

import cqlearn as cq
from cqlearn.cli import main


def test_demo_quick_prints_the_table_and_writes_figures(tmp_path, capsys):
    main(["demo", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "CQ-CNN (L=16)" in out and "SNN" in out and str(tmp_path.resolve()) in out
    for name in ["raster.png", "membrane.png", "accuracy_vs_timesteps.png", "digits_cnn_cq16.pt"]:
        assert (tmp_path / name).stat().st_size > 1000, name


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["eval"]])
def test_help_on_every_subcommand(command):
    result = subprocess.run([sys.executable, "-m", "cqlearn", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: cqlearn" in result.stdout


CHECKPOINT = str(Path(__file__).resolve().parents[1] / "data" / "digits_cnn_cq16.pt")
TRAIN = ["train", "--model", "mnist_cnn", "--dataset", "mnist", "--out"]


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--limit", "0"], "argument --limit: must be at least 1, got 0"),
    (["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
    (["--epochs", "2", "-1"], "argument --epochs: must be at least 0, got -1")])
def test_bad_numbers_are_refused_by_the_parser(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit:
        main(TRAIN + [str(tmp_path / "run"), *argv])
    assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["eval", "missing.pt"], "no checkpoint at missing.pt"),
    (["eval", CHECKPOINT, "--figure", "accuracy.exe"], "choose a file name ending in .png, .svg, .pdf"),
    (["eval", CHECKPOINT, "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "--model", "resnet", "--dataset", "digits", "--out", "{tmp}"], "unknown model 'resnet'"),
    (["train", "--model", "mnist_cnn", "--dataset", "mnist", "--root", "{tmp}", "--out", "{tmp}"],
     "mnist not found under")])
def test_mistakes_end_in_one_clean_error_and_debug_shows_the_traceback(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit:
        main(argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.startswith("cqlearn: error: ") and message in err.splitlines()[0]
    assert "Traceback" not in err
    with pytest.raises((ValueError, OSError), match=message.split(" ")[0]):
        main(argv + ["--debug"])


def test_the_missing_dataset_message_says_what_to_do_on_the_command_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(TRAIN + [str(tmp_path / "run"), "--root", str(tmp_path)])
    assert "--download" in capsys.readouterr().err
    asked = []
    monkeypatch.setattr(cq.data, "_download", lambda name, root: asked.append((name, root)))
    with pytest.raises(SystemExit):
        main(TRAIN + [str(tmp_path / "run"), "--root", str(tmp_path), "--download"])
    assert asked == [("mnist", tmp_path)] and "even after downloading" in capsys.readouterr().err


def test_an_unsupported_figure_is_refused_before_anything_is_measured(tmp_path, monkeypatch):
    from cqlearn import evaluation
    monkeypatch.setattr(evaluation, "load", lambda *a, **k: pytest.fail("measured before refusing"))
    with pytest.raises(ValueError, match="accuracy.exe"):
        evaluation.eval_run(CHECKPOINT, figure=tmp_path / "accuracy.exe", progress=False, log=lambda *a: None)


def test_the_cnn_column_is_measured_on_the_same_images_or_left_out(capsys):
    from cqlearn import evaluation
    options = dict(timesteps=(8,), encodings=("current",), layer_images=0, progress=False)
    full = evaluation.eval_run(CHECKPOINT, **options, log=lambda *a: None)
    assert full[0]["cnn"] == cq.load(CHECKPOINT).meta["plain_accuracy"] and full[0]["images"] == 360
    logged = []
    part = evaluation.eval_run(CHECKPOINT, limit=64, **options, log=logged.append)
    assert part[0]["cnn"] is None and "CNN - %" in logged[-1] and "64 images" in logged[-1]
    assert "CNN accuracy left out" in logged[0]
    plain = cq.shipped("digits_cnn_plain.pt")
    measured = evaluation.eval_run(CHECKPOINT, limit=64, baseline=plain, calibration=32, **options,
                                    log=lambda *a: None)
    expected = cq.evaluate(cq.load(plain), cq.data.load("digits", "test", limit=64))
    assert measured[0]["cnn"] == pytest.approx(expected) and measured[0]["network"] == "CQ"


def test_a_real_command_exits_with_code_2_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cqlearn", "eval", str(tmp_path / "none.pt")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("cqlearn: error: no checkpoint at")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_eval_neuron_gives_a_row_per_neuron_that_matches_the_library(tmp_path, capsys):
    """--neuron if signed: a row per neuron, each equal to cq.convert(..., neuron=...) on the same images,
    with the neuron in the printed line, the results table and the checkpoint's record."""
    checkpoint = tmp_path / "digits.pt"
    checkpoint.write_bytes(Path(CHECKPOINT).read_bytes())
    results = tmp_path / "results.csv"
    main(["eval", str(checkpoint), "--neuron", "if", "signed", "--encoding", "current", "--timesteps", "8", "16",
          "--limit", "120", "--layer-images", "40", "--results", str(results), "--record", "--no-progress"])
    out = capsys.readouterr().out
    assert " if current T=16 " in out and " signed current T=16 " in out
    import csv
    rows = list(csv.DictReader(results.open()))
    assert [(r["neuron"], r["timesteps"]) for r in rows] == [("if", "8"), ("if", "16"), ("signed", "8"), ("signed", "16")]
    model, test_set = cq.load(CHECKPOINT), cq.data.load("digits", "test", limit=120)
    for row in rows:
        snn = cq.convert(model, int(row["timesteps"]), "current", neuron=row["neuron"])
        assert float(row["snn"]) == pytest.approx(cq.evaluate(snn, test_set))
        assert float(row["agreement"]) == pytest.approx(cq.analysis.prediction_agreement(model, snn, test_set))
    # T = L = 16 with the current encoding: the first layer is exact for both neurons
    assert all(r["layer_exact"].split(" / ")[0] == "100.0" for r in rows if r["timesteps"] == "16")
    meta = cq.load(checkpoint).meta
    assert meta["snn_accuracy"]["current"][16] == pytest.approx(float(rows[1]["snn"]))
    assert meta["snn_accuracy"]["current signed"][16] == pytest.approx(float(rows[3]["snn"]))
    with pytest.raises(SystemExit):
        main(["eval", CHECKPOINT, "--neuron", "leaky"])
    assert "invalid choice: 'leaky'" in capsys.readouterr().err


def test_eval_per_layer_counts_in_batches_equal_one_batch():
    """The per-layer statistics run in batches (a whole 1000-image recording overflowed max_memory on
    CIFAR-10); the fractions are the same as over one batch."""
    from cqlearn import evaluation
    rows = evaluation.eval_run(CHECKPOINT, timesteps=(8,), encodings=("spikes",), neurons=("signed",), limit=40,
                                layer_images=40, batch_size=16, progress=False, log=lambda *a: None)
    model = cq.load(CHECKPOINT)
    images = cq.data.load("digits", "test", limit=40).images
    whole = cq.analysis.layer_agreement(model, cq.convert(model, 8, "spikes", "signed"), images)
    assert rows[0]["layer_exact"] == " / ".join(f"{100 * layer['exact']:.1f}" for layer in whole)
