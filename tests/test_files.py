"""Atomic, concurrent-safe writes (cqlearn.files): checkpoints, results tables and figures (chapter 9)."""
import csv
import multiprocessing
import os
import shutil
import time

import pytest
import torch

import cqlearn as cq
from cqlearn import files
from cqlearn.cli import main


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".tmp", ".partial"))


def test_atomic_write_replaces_the_file_whole_and_keeps_its_permissions(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    with files.atomic_write(path, "w") as f:
        f.write("one\n")
    assert path.read_text() == "one\n" and oct(path.stat().st_mode & 0o777) == oct(0o666 & ~files._UMASK)
    path.chmod(0o640)
    with files.atomic_write(path, "w") as f:
        f.write("two\n")
        assert path.read_text() == "one\n"  # readers see the old file until the new one is complete
    assert path.read_text() == "two\n" and path.stat().st_mode & 0o777 == 0o640
    assert leftovers(path.parent) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_write(path, "w") as f:
            f.write("half")
            raise KeyboardInterrupt
    assert path.read_text() == "old" and leftovers(tmp_path) == []


def test_save_never_follows_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("m.pt.partial", ".m.pt.tmp", "m.pt.tmp"):  # every name an attacker might guess
        (tmp_path / name).symlink_to(victim)
    cq.save(cq.models.digits_cnn(width=2), tmp_path / "m.pt")
    assert victim.read_text() == "precious" and cq.load(tmp_path / "m.pt") is not None
    assert all((tmp_path / name).is_symlink() for name in ("m.pt.partial", ".m.pt.tmp", "m.pt.tmp"))


def test_save_onto_a_folder_or_into_a_read_only_one_names_the_path(tmp_path, monkeypatch):
    (tmp_path / "m.pt").mkdir()
    with pytest.raises(IsADirectoryError, match="m.pt: it is a folder"):
        cq.save(cq.models.digits_cnn(width=2), tmp_path / "m.pt")
    assert leftovers(tmp_path) == []

    def read_only(*args, **kwargs):  # what mkstemp meets in a read-only folder (root may write anywhere)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError, match=f"cannot write {tmp_path / 'x.pt'}: .*{tmp_path}.*Permission denied"):
        cq.save(cq.models.digits_cnn(width=2), tmp_path / "x.pt")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_into_a_really_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="ro.m.pt"):
        cq.save(cq.models.digits_cnn(width=2), folder / "m.pt")


def _eval(arguments):
    torch.set_num_threads(1)
    main(arguments)


def test_four_evals_recording_side_by_side_keep_every_row(tmp_path):
    """Four `cqlearn eval --record --results` processes on one checkpoint and one results file: every
    T of every process is recorded, every row is in the table, and the checkpoint loads throughout."""
    checkpoint, results = tmp_path / "cq.pt", tmp_path / "results.csv"
    shutil.copy(cq.shipped("digits_cnn_cq16.pt"), checkpoint)
    before = cq.load(checkpoint).meta["snn_accuracy"]["current"]
    timesteps = [[str(4 * p + t) for t in range(1, 5)] for p in range(4)]  # 16 different T
    common = ["--limit", "8", "--layer-images", "0", "--record", "--results", str(results), "--no-progress",
              "--device", "cpu", "--encoding", "current"]
    cq.data.load("digits", "test")  # import scikit-learn once, before the processes fork
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=_eval, args=(["eval", str(checkpoint), "--timesteps", *ts, *common],))
                 for ts in timesteps]
    for p in processes:
        p.start()
    while any(p.is_alive() for p in processes):
        cq.load(checkpoint)  # never a half-written file
        time.sleep(0.02)
    assert [p.exitcode for p in processes] == [0] * 4
    recorded = cq.load(checkpoint).meta["snn_accuracy"]["current"]
    measured = sorted(int(t) for ts in timesteps for t in ts)
    assert sorted(recorded) == sorted(set(measured) | set(before))
    rows = list(csv.DictReader(results.open(newline="")))
    assert sorted(int(r["timesteps"]) for r in rows) == measured
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "cq.pt", "cq.pt.lock", "results.csv", "results.csv.lock"]


def test_results_files_name_mode_and_flush_and_keep_an_older_files_columns(tmp_path):
    from cqlearn.results import COLUMNS, append_results, header
    row = {c: f"v-{c}" for c in COLUMNS if c not in {"cnn", "cq_cnn", "snn", "agreement", "snn_minus_converted"}}
    row.update(cnn=None, cq_cnn=0.5, snn=0.25, agreement=1.0, snn_minus_converted=-0.25, mode="round", flush=4)
    for suffix in (".md", ".csv"):
        new, old = tmp_path / f"new{suffix}", tmp_path / f"old{suffix}"
        append_results([row], new)
        text = new.read_text()
        assert header(text, suffix) == COLUMNS and "mode" in COLUMNS and "flush" in COLUMNS
        assert "round" in text and "v-neuron" in text
        old_columns = [c for c in COLUMNS if c not in ("mode", "flush")]  # a file from before both columns
        old.write_text(("| " + " | ".join(old_columns) + " |\n|" + "---|" * len(old_columns) + "\n")
                       if suffix == ".md" else ",".join(old_columns) + "\r\n")
        append_results([row, row], old)
        lines = old.read_text().splitlines()
        assert header(old.read_text(), suffix) == old_columns and len(lines) == (4 if suffix == ".md" else 3)
        cells = lines[-1].strip("|").split("|") if suffix == ".md" else next(csv.reader([lines[-1]]))
        assert len(cells) == len(old_columns) and "round" not in lines[-1]
    rows = list(csv.DictReader((tmp_path / "new.csv").open()))
    assert rows[0]["mode"] == "round" and rows[0]["flush"] == "4" and rows[0]["cnn"] == ""
