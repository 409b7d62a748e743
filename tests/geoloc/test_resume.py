"""Geolocation checkpoints: a run stopped after epoch k and resumed equals an uninterrupted run."""

from __future__ import annotations

import pytest
import torch

from geograph.errors import CheckpointError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import prepare
from geograph.geolocate.train import fit
from geograph.graph.cache import load_checked

EPOCHS = 5


def _config(tmp_path, **train) -> dict:
    return {
        "name": "geo_resume",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        # dropout draws from the global RNG: the checkpoint must carry its state
        "head": {"hidden": 32, "queue_size": 128, "dropout": 0.2},
        "train": {
            "epochs": EPOCHS,
            "batch_size": 64,
            "device": "cpu",
            **train,
        },
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare(GeolocateConfig.from_dict(_config(tmp_path_factory.mktemp("d"))))


def _ckpt(tmp_path):
    return tmp_path / "ckpt" / "last.pt"


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    return fit(GeolocateConfig.from_dict(_config(tmp_path_factory.mktemp("a"))), data)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("stop", [1, 3])
def test_stopped_then_resumed_equals_uninterrupted(data, uninterrupted, tmp_path, stop):
    cfg = GeolocateConfig.from_dict(_config(tmp_path))
    part = fit(cfg, data, stop_after_epoch=stop, checkpoint=_ckpt(tmp_path))
    assert len(part.history) == stop and part.resumed_from is None
    state = load_checked(_ckpt(tmp_path))
    assert state["epoch"] == stop and int(state["model"]["queue_count"]) > 0  # the GPS queue is kept
    seen = []
    resumed = fit(cfg, data, on_epoch=lambda e, m: seen.append(e), checkpoint=_ckpt(tmp_path), resume=True)
    assert resumed.resumed_from == stop and seen == list(range(stop + 1, EPOCHS + 1))
    assert resumed.history == uninterrupted.history
    assert resumed.best_epoch == uninterrupted.best_epoch
    assert _same_state(resumed.head, uninterrupted.head)


def test_resume_without_checkpoint_starts_fresh_and_no_checkpoint_writes_nothing(
    data, uninterrupted, tmp_path
):
    fresh = fit(GeolocateConfig.from_dict(_config(tmp_path, checkpoint=False)), data,
                checkpoint=_ckpt(tmp_path), resume=True)
    assert fresh.resumed_from is None and fresh.history == uninterrupted.history
    assert not (tmp_path / "ckpt").exists()


def test_resume_refuses_another_config_and_a_damaged_checkpoint(data, tmp_path):
    fit(GeolocateConfig.from_dict(_config(tmp_path)), data, stop_after_epoch=1, checkpoint=_ckpt(tmp_path))
    other = _config(tmp_path, lr=0.01)
    with pytest.raises(CheckpointError, match="another training config"):
        fit(GeolocateConfig.from_dict(other), data, checkpoint=_ckpt(tmp_path), resume=True)
    path = _ckpt(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        fit(GeolocateConfig.from_dict(_config(tmp_path)), data, checkpoint=path, resume=True)


def test_training_key_ignores_only_the_checkpoint_switches(tmp_path):
    a = GeolocateConfig.from_dict(_config(tmp_path))
    b = GeolocateConfig.from_dict(
        _config(tmp_path, resume="0123abcd", checkpoint=False, checkpoint_dir=str(tmp_path / "elsewhere"))
    )
    assert a.training_key() == b.training_key()
    assert a.training_key() != GeolocateConfig.from_dict(_config(tmp_path, seed=1)).training_key()
