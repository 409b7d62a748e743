"""Approximate gallery search (``predict.search: ivf``, :mod:`geograph.retrieval.ann`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geograph.errors import ConfigError
from geograph.geolocate.config import PredictConfig
from geograph.retrieval import chunked_topk
from geograph.retrieval.ann import SEARCH_METHODS, SearchOptions, default_nlist
from geograph.retrieval.gallery import Gallery


def _clustered(n_centres: int = 20, per: int = 500, dim: int = 32, seed: int = 0) -> torch.Tensor:
    """Unit vectors in tight clusters: the structure an inverted file exploits."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_centres, dim, generator=g)
    pts = centres.repeat_interleave(per, 0) + 0.15 * torch.randn(n_centres * per, dim, generator=g)
    return torch.nn.functional.normalize(pts, dim=1)


def test_options_and_config_are_checked(monkeypatch):
    assert SEARCH_METHODS == ("exact", "ivf")
    with pytest.raises(ConfigError, match="search method must be one of"):
        SearchOptions("hnsw")
    with pytest.raises(ConfigError, match="nprobe >= 1"):
        SearchOptions("ivf", nprobe=0)
    with pytest.raises(ConfigError, match=r"predict.search / .*search method must be one of .*'fast'"):
        PredictConfig(search="fast")
    with pytest.raises(ConfigError, match=r"predict.ivf_nprobe: .*nprobe >= 1, got 0, 0"):
        PredictConfig(search="ivf", ivf_nprobe=0)
    assert PredictConfig(search="ivf", ivf_nprobe=8).search_options(3) == SearchOptions("ivf", 0, 8, 3)
    assert default_nlist(100_000) == 1024 and default_nlist(350) == 8 and default_nlist(10) == 1
    from geograph.cli.geolocate_cmd import SEARCH_CHOICES

    assert SEARCH_CHOICES == SEARCH_METHODS
    # without faiss: a clear error at the first approximate search, the exact search unaffected
    monkeypatch.setitem(sys.modules, "faiss", None)
    g = Gallery(np.array([[10.0, 20.0], [30.0, 40.0]])).set_embeddings(torch.eye(2))
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        g.search(torch.eye(2), 1, options=SearchOptions("ivf"))
    assert g.search(torch.eye(2), 1)[1].tolist() == [[0], [1]]


def test_ivf_finds_the_exact_neighbours_on_clustered_embeddings():
    pytest.importorskip("faiss")
    from geograph.retrieval.ann import IVFIndex

    keys = _clustered()
    g = torch.Generator().manual_seed(1)
    q = torch.nn.functional.normalize(keys[torch.randint(0, len(keys), (64,), generator=g)] + 0.05 * torch.randn(64, 32, generator=g), dim=1)
    es, ei = chunked_topk(q, keys, 10)
    idx = IVFIndex(keys, SearchOptions("ivf", nlist=32, nprobe=4))
    s, i = idx.search(q, 10)
    assert s.shape == i.shape == (64, 10) and s.dtype == keys.dtype and i.dtype == torch.long
    recall = sum(len(set(a) & set(b)) for a, b in zip(i.tolist(), ei.tolist(), strict=True)) / (64 * 10)
    assert recall >= 0.95
    assert torch.allclose(s, (q.unsqueeze(1) * keys[i]).sum(-1), atol=1e-5)  # each index carries its score
    assert (s[:, :-1] >= s[:, 1:]).all()  # best first
    # every list probed: the exact top 10
    s_all, i_all = IVFIndex(keys, SearchOptions("ivf", nlist=32, nprobe=32)).search(q, 10)
    assert torch.allclose(s_all, es, atol=1e-5)
    # the same seed, the same index and answers
    s2, i2 = IVFIndex(keys, SearchOptions("ivf", nlist=32, nprobe=4)).search(q, 10)
    assert torch.equal(i, i2) and torch.equal(s, s2)


def test_ivf_falls_back_to_exact_when_the_probed_lists_are_short():
    pytest.importorskip("faiss")
    from geograph.retrieval.ann import IVFIndex

    keys = _clustered(n_centres=40, per=50)
    q = keys[:5]
    idx = IVFIndex(keys, SearchOptions("ivf", nlist=40, nprobe=1))
    s, i = idx.search(q, 200)  # more than one list holds
    es, ei = chunked_topk(q, keys, 200)
    assert (i >= 0).all() and torch.allclose(s, es, atol=1e-5)


def test_gallery_keeps_its_index_until_the_embeddings_change():
    pytest.importorskip("faiss")
    keys = _clustered(n_centres=10, per=100)
    gal = Gallery(np.column_stack([np.linspace(-60, 60, len(keys)), np.linspace(-170, 170, len(keys))]))
    gal.set_embeddings(keys)
    opts = SearchOptions("ivf", nlist=8, nprobe=8)
    s1, i1 = gal.search(keys[:4], 5, options=opts)
    first = gal._index[1]
    gal.search(keys[4:8], 5, options=opts)
    assert gal._index[1] is first  # reused
    gal.set_embeddings(keys.flip(0).contiguous())
    s2, i2 = gal.search(keys[:4], 5, options=opts)
    assert gal._index[1] is not first  # rebuilt for the new keys
    assert torch.equal(i2, len(keys) - 1 - i1) and torch.allclose(s1, s2)


def test_cli_and_config_search_ivf(tmp_path: Path, empty_store_db: Path, capsys) -> None:
    """``predict.search: ivf`` through training, and ``geograph geolocate --search / --nprobe``
    on the logged model: probing every list gives the exact search's predictions."""
    pytest.importorskip("faiss")
    import json

    from geograph.cli.main import main
    from geograph.geolocate.config import GeolocateConfig, apply_fast
    from geograph.geolocate.data import prepare
    from geograph.geolocate.run import run_from_config

    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "name": "geo_ivf",
        "data": {"source": "world", "n_pois": 300, "n_images": 500},
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "predict": {"search": "ivf", "ivf_nprobe": 2},
        "train": {"checkpoint": False},
        "tracking": {"experiment": "ivf", "log_plots": False},
    }
    res = run_from_config(cfg, tracking_uri=uri, fast=True)
    assert np.isfinite(res["metrics"]["test_median_km"])
    q, _ = prepare(GeolocateConfig.from_dict(apply_fast(cfg))).part("test")
    np.save(tmp_path / "q.npy", q[:20])
    base = ["geolocate", "--query-embeddings", str(tmp_path / "q.npy"), "--tracking-uri", uri,
            "--run-id", res["run_id"], "--quiet"]  # fmt: skip
    outs = {}
    for name, extra in {
        "exact": ["--search", "exact"],
        "all_lists": ["--search", "ivf", "--nprobe", "100000"],
        "model": [],
    }.items():
        out = tmp_path / f"{name}.geojson"
        assert main([*base, *extra, "--output", str(out)]) == 0
        outs[name] = [f["geometry"]["coordinates"] for f in json.loads(out.read_text())["features"]]
    assert outs["all_lists"] == outs["exact"]
    assert len(outs["model"]) == 20
    assert main([*base, "--nprobe", "0"]) == 2
    assert "--nprobe must be >= 1, got 0" in capsys.readouterr().err
