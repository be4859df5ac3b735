"""Saving and loading with metadata; what is refused (chapter 9)."""
import datetime
import pickle
from pathlib import Path

import numpy as np

import pytest
import torch
from torch import nn

import cqlearn as cq


def test_round_trip_keeps_weights_architecture_and_metadata(tmp_path):
    model = cq.to_cq(cq.models.digits_cnn(width=8), levels=8, mode="round")
    path = cq.save(model, tmp_path / "sub" / "m.pt", dataset="digits", levels=8, accuracies={"cq": 0.98})
    loaded = cq.load(path)
    assert not loaded.training
    assert loaded.meta == {"dataset": "digits", "levels": 8, "accuracies": {"cq": 0.98}}
    assert [m.levels for m in loaded.modules() if isinstance(m, cq.CQ)] == [8] * 4
    assert all(m.mode == "round" for m in loaded.modules() if isinstance(m, cq.CQ))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x))
    assert not list(tmp_path.glob("sub/*.partial"))


def test_a_custom_model_loads_into_a_module_you_pass(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2))
    cq.save(model, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="model="):
        cq.load(tmp_path / "custom.pt")
    assert torch.equal(cq.load(tmp_path / "custom.pt", model=nn.Sequential(nn.Linear(3, 2)))[0].weight,
                       model[0].weight)


class Boom:
    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cqlearn-checkpoint", "payload": Boom()}, path)
    with pytest.raises(ValueError, match="could run code"):
        cq.load(path)
    assert "this ran" not in capsys.readouterr().out
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError):
        cq.load(plain)
    assert "this ran" not in capsys.readouterr().out


def test_files_that_are_not_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cqlearn checkpoint"):
        cq.load(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        cq.load(tmp_path / "text.pt")
    good = cq.save(cq.models.digits_cnn(width=4), tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        cq.load(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        cq.load(tmp_path / "missing.pt")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = cq.save(cq.models.digits_cnn(width=4), tmp_path / "m.pt", note="first")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cq.save(cq.models.digits_cnn(width=4), path, note="second")
    assert cq.load(path).meta == {"note": "first"}


def test_shipped_digits_checkpoints_load_with_their_metadata():
    model = cq.load(cq.shipped("digits_cnn_cq16.pt"))
    assert model.meta["dataset"] == "digits" and model.meta["levels"] == 16
    assert cq.evaluate(model, cq.data.load("digits", "test")) >= 0.98
    with pytest.raises(FileNotFoundError, match="not found"):
        cq.shipped("nothing_here.pt")


@pytest.mark.parametrize("name", ["mnist_mnist_cnn_cq16.pt", "fashion-mnist_mnist_cnn_cq16.pt", "cifar10_vgg_small_cq16.pt"])
def test_shipped_checkpoints_name_a_setting_that_converts(name):
    """meta holds the recommended neuron, T, encoding and flush steps (RESULTS.md); they convert as they are."""
    model = cq.load(cq.shipped(name))
    m = model.meta
    snn = cq.convert(model, m["timesteps"], m["encoding"], m["neuron"], flush=m["flush"])
    assert (snn.timesteps, snn.flush) == (m["timesteps"], m["flush"]) and m["timesteps"] == cq.cq_config(model).levels
    x = torch.rand(2, *model.meta.get("input_shape", (1, 28, 28) if "mnist" in name else (3, 32, 32)))
    assert snn(x).shape == (2, 10)


def test_numpy_values_paths_and_tuples_are_saved_as_plain_python(tmp_path):
    """Whatever cq.save accepts, cq.load reads back (weights_only=True refuses numpy's own types)."""
    meta = {"accuracy": np.float64(0.99), "images": np.int64(360), "folder": Path("runs") / "a", "bits": (8, 9),
            "curve": np.array([0.5, 0.75]), "by_t": {np.int64(16): np.float32(0.5)}, "ok": np.bool_(True),
            "name": np.str_("digits"), "nested": [{"t": (1, np.int32(2))}], "counts": torch.arange(3)}
    loaded = cq.load(cq.save(cq.models.digits_cnn(width=2), tmp_path / "m.pt", **meta)).meta
    assert loaded == {"accuracy": 0.99, "images": 360, "folder": str(Path("runs") / "a"), "bits": [8, 9],
                      "curve": [0.5, 0.75], "by_t": {16: 0.5}, "ok": True, "name": "digits",
                      "nested": [{"t": [1, 2]}], "counts": loaded["counts"]}
    assert torch.equal(loaded["counts"], torch.arange(3))
    assert type(loaded["accuracy"]) is float and type(loaded["images"]) is int and type(loaded["ok"]) is bool
    assert type(next(iter(loaded["by_t"]))) is int


@pytest.mark.parametrize("meta, where", [({"when": datetime.date(2026, 1, 1)}, r"meta\['when'\]"),
                                         ({"h": {"x": [1, object()]}}, r"meta\['h'\]\['x'\]\[1\]"),
                                         ({"h": {(1, 2): 3}}, r"meta\['h'\]: its key \(1, 2\)"),
                                         ({"a": np.array(["x", None], dtype=object)}, r"meta\['a'\]")])
def test_what_cannot_be_saved_is_refused_naming_the_key_and_nothing_is_written(tmp_path, meta, where):
    with pytest.raises(ValueError, match=where):
        cq.save(cq.models.digits_cnn(width=2), tmp_path / "m.pt", **meta)
    assert list(tmp_path.iterdir()) == []


def test_random_bytes_are_not_a_checkpoint_rather_than_code(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a readable checkpoint") as error:
        cq.load(path)
    assert "could run code" not in str(error.value)


def test_a_checkpoint_whose_arch_would_build_a_huge_network_is_refused_before_building(tmp_path, monkeypatch):
    path = cq.save(cq.models.mnist_cnn(width=2), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["arch"]["kwargs"]["width"] = 10 ** 6  # terabytes of weights
    torch.save(payload, tmp_path / "huge.pt")
    built = []
    monkeypatch.setitem(cq.models.MODELS, "mnist_cnn", lambda **kw: built.append(kw) or cq.models.mnist_cnn(**kw))
    with pytest.raises(ValueError, match=r"huge.pt: model 'mnist_cnn' .* 9e\+13 parameters"):
        cq.load(tmp_path / "huge.pt")
    assert all(kw["width"] == 10 ** 6 for kw in built) and len(built) == 1  # only on the meta device
    payload["arch"]["kwargs"]["width"] = 3  # a sane size that does not fit the stored weights
    torch.save(payload, tmp_path / "altered.pt")
    with pytest.raises(ValueError, match=r"weights do not fit .* stored \(2, 1, 3, 3\), the model has \(3, 1, 3, 3\)"):
        cq.load(tmp_path / "altered.pt")
    payload["arch"] = {"name": "mnist_cnn", "kwargs": {"width": "wide"}}
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="cannot be built"):
        cq.load(tmp_path / "odd.pt")


def test_models_refuse_sizes_nobody_can_build():
    with pytest.raises(ValueError, match="parameters"):
        cq.models.create("vgg19", width=1000.0)
    with pytest.raises(ValueError, match="too small"):
        cq.models.create("mnist_cnn", in_shape=(1, 4, 4))
