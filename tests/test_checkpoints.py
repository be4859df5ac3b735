"""Saving and loading with metadata; what is refused (chapter 9)."""
import pickle

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
