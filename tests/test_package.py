"""cqlearn as an installed package, not a checkout: the wheel built from the tracked files, installed into
a fresh virtual environment in a temporary folder, runs the demo and finds, loads and converts every
shipped checkpoint (data/*.pt, installed as the package data cqlearn/bundled/), and chapter 9's CIFAR-10
sample.

The fresh environment borrows this environment's site-packages (torch, numpy, ...) through a .pth file
instead of installing torch again; the wheel itself goes in with `pip install --no-deps --no-index`."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import json, sys, warnings
from pathlib import Path
import torch
import cqlearn as cq

report = {"file": cq.__file__, "path": sys.path, "checkpoints": {}}
for path in sorted((Path(cq.__file__).parent / "bundled").glob("*.pt")):
    found = cq.shipped(path.name)
    model = cq.load(found)
    shape = (1, 8, 8) if model.meta["dataset"] == "digits" else cq.data.SHAPES[model.meta["dataset"]]
    x = torch.rand(2, *shape)
    entry = {"found": str(found), "cnn": list(model(x).shape)}
    if any(isinstance(m, cq.CQ) for m in model.modules()):
        entry["snn"] = list(cq.convert(model, timesteps=4)(x).shape)
    report["checkpoints"][path.name] = entry
with warnings.catch_warnings(record=True) as notes:
    warnings.simplefilter("always")
    sample = cq.data.load("cifar10", "test")
report["sample"] = [len(sample), str(cq.data.CIFAR_SUBSET), " ".join(str(n.message) for n in notes)]
print(json.dumps(report))
"""


def run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding the wheel, its environment variables, a working folder, the
    checkpoints git tracks in data/, the output of building the wheel)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the wheel is built from the tracked files)")
    tmp = tmp_path_factory.mktemp("package")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [f for f in files.decode().split("\0") if f and (ROOT / f).is_file()]
    source = tmp / "source"
    for name in files:  # the tracked files only, as in a fresh clone
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "CQLEARN_DATA")}
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v",
                 "-w", str(tmp / "wheels"), str(source)], tmp, env)
    environment = tmp / "venv"
    venv.create(environment, with_pip=False)
    python = environment / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel, = (tmp / "wheels").glob("cqlearn-*.whl")
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], tmp, env)
    work = tmp / "work"
    work.mkdir()
    shipped = sorted(Path(f).name for f in files if f.startswith("data/") and f.endswith(".pt"))
    return python, env, work, shipped, built


def test_the_build_warns_about_no_deprecated_metadata(installed):
    *_, built = installed
    assert "deprecat" not in built.lower(), built


def test_the_installed_package_loads_and_converts_every_shipped_checkpoint(installed):
    python, env, work, shipped, _ = installed
    report = json.loads(run([str(python), "-c", CHECK], work, env).splitlines()[-1])
    environment = python.parents[1].resolve()
    assert Path(report["file"]).resolve().is_relative_to(environment), report["file"]
    assert not any(Path(p).resolve() == ROOT for p in report["path"] if p)
    assert len(shipped) >= 5 and sorted(report["checkpoints"]) == shipped
    converted = 0
    for name, entry in report["checkpoints"].items():
        assert Path(entry["found"]).resolve().is_relative_to(environment), entry
        assert entry["cnn"] == [2, 10]
        converted += entry.get("snn") == [2, 10]
    assert converted == len(shipped) - 1  # all but the plain ReLU network, which does not convert
    images, path, note = report["sample"]
    assert images == 1000 and Path(path).resolve().is_relative_to(environment) and "shipped subset" in note


def test_the_installed_command_runs_the_demo(installed):
    python, env, work, *_ = installed
    out = run([str(python.parent / "cqlearn"), "demo", "--quick", "--out", str(work / "demo")], work, env)
    assert "CQ-CNN (L=16)" in out and "SNN" in out
    assert (work / "demo" / "digits_cnn_cq16.pt").stat().st_size > 1000
