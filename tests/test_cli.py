"""The `cqlearn` command."""
import subprocess
import sys

import pytest

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
