"""Graph cache, the PyG InMemoryDataset and the networkx export."""

from __future__ import annotations

import io
from pathlib import Path

import networkx as nx
import pytest
import torch
from torch_geometric.data import HeteroData

import geograph.graph.cache as cache_mod
import geograph.graph.dataset as dataset_mod
from geograph.constants import COVISITS, NEAR, POI
from geograph.data.world_io import write_world
from geograph.errors import CheckpointError
from geograph.graph import (
    FeaturePreprocessor,
    GeoGraph,
    GeoGraphDataset,
    GraphConfig,
    build_graph,
    cached_build,
    raw_features,
    to_networkx,
)
from geograph.graph.cache import cache_key, load_checked, save_checked
from geograph.testing import hand_made_world

CFG = GraphConfig(near_k=2, near_radius_km=5.0, image_k=1)


def assert_same_graph(a: GeoGraph, b: GeoGraph) -> None:
    assert set(a.data.node_types) == set(b.data.node_types)
    assert set(a.data.edge_types) == set(b.data.edge_types)
    for store_a in a.data.node_stores + a.data.edge_stores:
        store_b = b.data[store_a._key]
        assert set(store_a.keys()) == set(store_b.keys()), store_a._key
        for k, v in store_a.items():
            assert torch.equal(v, store_b[k]) if isinstance(v, torch.Tensor) else v == store_b[k], (
                store_a._key,
                k,
            )
    assert a.index == b.index and a.config == b.config


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("graph-*.pt"))


def test_second_cached_build_is_a_hit_and_equal(tmp_path, monkeypatch):
    world = hand_made_world()
    first = cached_build(world, CFG, tmp_path / "c")
    assert first.stats["cache"] == "miss"
    [path] = cache_files(tmp_path / "c")
    assert path.name == f"graph-{cache_key(world, CFG)}.pt"
    calls = []
    monkeypatch.setattr(cache_mod, "build_graph", lambda *a, **k: calls.append(1))
    second = cached_build(hand_made_world(), CFG, tmp_path / "c")  # equal content, new objects
    assert calls == [] and second.stats["cache"] == "hit"
    assert_same_graph(first, second)
    assert {k: v for k, v in second.stats.items() if k != "cache"} == {
        k: v for k, v in first.stats.items() if k != "cache"
    }


def test_cache_key_depends_on_world_and_config():
    w = hand_made_world()
    assert cache_key(w, CFG) == cache_key(
        hand_made_world(), GraphConfig(near_k=2, near_radius_km=5.0, image_k=1)
    )
    assert cache_key(w, CFG) != cache_key(w, GraphConfig(near_k=3, near_radius_km=5.0, image_k=1))
    other = hand_made_world()
    other.covisits = other.covisits.with_columns(other.covisits["visitors"] + 1)
    assert cache_key(other, CFG) != cache_key(w, CFG)


def test_default_cache_dir_is_relative_and_none_disables(tmp_path):
    g = cached_build(hand_made_world(), CFG)  # the autouse fixture made tmp_path the cwd
    assert len(cache_files(tmp_path / ".geograph_cache")) == 1 and g.stats["cache"] == "miss"
    g2 = cached_build(hand_made_world(), CFG, cache_dir=None)
    assert "cache" not in g2.stats


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_byte", "empty"])
def test_damaged_cache_file_warns_and_rebuilds(tmp_path, damage):
    world = hand_made_world()
    good = cached_build(world, CFG, tmp_path)
    [path] = cache_files(tmp_path)
    raw = path.read_bytes()
    bad = {
        "truncate": raw[: len(raw) // 2],
        "garbage": b"not a cache file at all",
        "flip_byte": raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:],
        "empty": b"",
    }[damage]
    path.write_bytes(bad)
    with pytest.raises(CheckpointError):
        load_checked(path)
    with pytest.warns(UserWarning, match="rebuilding the graph"):
        again = cached_build(world, CFG, tmp_path)
    assert again.stats["cache"] == "miss"
    assert_same_graph(good, again)
    assert path.read_bytes() == raw  # rewritten whole
    assert cached_build(world, CFG, tmp_path).stats["cache"] == "hit"


def test_cache_files_load_with_weights_only(tmp_path):
    cached_build(hand_made_world(), CFG, tmp_path)
    [path] = cache_files(tmp_path)
    raw = path.read_bytes()
    header, digest, payload = raw.split(b"\n", 2)
    assert header == b"GEOGRAPH-CACHE-1" and len(digest) == 64
    state = torch.load(io.BytesIO(payload), weights_only=True)  # plain containers only, no pickle of classes
    assert set(state) == {"nodes", "edges", "index", "config", "stats"}
    assert_same_graph(GeoGraph.from_state(state), build_graph(hand_made_world(), CFG))


def _with_legacy_key(state: dict) -> dict:
    """A graph state as written before node features moved from ``x_raw`` to ``x``."""
    nodes = {}
    for nt, attrs in state["nodes"].items():
        attrs = dict(attrs)
        if nt != "image":  # image embeddings were always ``x``
            if "x_unscaled" in attrs:  # a preprocessed graph kept both
                attrs["x_raw"] = attrs.pop("x_unscaled")
            else:
                attrs["x_raw"] = attrs.pop("x")
        nodes[nt] = attrs
    return dict(state, nodes=nodes)


def test_cache_written_with_x_raw_still_loads(tmp_path):
    world = hand_made_world()
    fresh = build_graph(world, CFG)
    path = tmp_path / f"graph-{cache_key(world, CFG)}.pt"
    save_checked(_with_legacy_key(fresh.to_state()), path)  # an older geograph's cache file
    hit = cached_build(world, CFG, tmp_path)
    assert hit.stats["cache"] == "hit" and "x_raw" not in hit.data[POI]
    assert_same_graph(hit, fresh)


def test_preprocessed_graph_saved_with_x_raw_loads_as_x_unscaled():
    graph = build_graph(hand_made_world(), CFG)
    done = FeaturePreprocessor().fit(graph)(graph)
    old = GeoGraph.from_state(_with_legacy_key(done.to_state()))  # e.g. an older model bundle
    assert_same_graph(old, done)
    assert torch.equal(raw_features(old.data[POI]), graph.data[POI].x)


class Custom:
    """Any class: ``torch.load(weights_only=True)`` refuses to unpickle it."""


def test_load_checked_refuses_what_weights_only_cannot_load(tmp_path):
    save_checked({"x": Custom()}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="could not be decoded"):
        load_checked(tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checked(tmp_path / "missing.pt")


# --- the PyG dataset ------------------------------------------------------------------------------
def test_dataset_on_embedded_world_reloads_processed_files(tmp_path, monkeypatch):
    root = tmp_path / "pyg"
    cfg = GraphConfig(near_k=2, image_k=2)
    ds = GeoGraphDataset(root, config=cfg, n_pois=40, seed=1)
    assert len(ds) == 1
    data = ds[0]
    assert isinstance(data, HeteroData)
    assert data[POI].num_nodes == 40
    assert len(ds.index_tables["poi_ids"]) == 40
    processed = sorted(p.name for p in (root / "processed").iterdir() if not p.name.startswith("pre_"))
    assert processed == sorted(ds.processed_file_names)
    # a second dataset with the same arguments reads the processed files instead of building
    monkeypatch.setattr(dataset_mod, "build_graph", lambda *a, **k: pytest.fail("rebuilt"))
    again = GeoGraphDataset(root, config=cfg, n_pois=40, seed=1)
    for et in data.edge_types:
        assert torch.equal(again[0][et].edge_index, data[et].edge_index), et
    assert again.index_tables == ds.index_tables
    # other arguments are other processed files
    monkeypatch.setattr(dataset_mod, "build_graph", build_graph)
    other = GeoGraphDataset(root, config=cfg, n_pois=40, seed=2)
    assert other.processed_file_names != ds.processed_file_names


def test_dataset_from_world_folder_with_transforms(tmp_path):
    folder = write_world(hand_made_world(), tmp_path / "world")
    seen = []

    def pre(data):
        seen.append("pre")
        data[POI].tag = torch.ones(data[POI].num_nodes)
        return data

    def on_access(data):
        data[POI].doubled = data[POI].x * 2
        return data

    ds = GeoGraphDataset(
        tmp_path / "root", world_dir=folder, config=CFG, pre_transform=pre, transform=on_access
    )
    data = ds[0]
    assert seen == ["pre"]
    assert data[POI].num_nodes == 8 and data[POI].tag.shape == (8,)
    assert torch.equal(data[POI].doubled, data[POI].x * 2)
    assert ds.index_tables["poi_ids"] == [f"p{i}" for i in range(8)]
    ref = build_graph(hand_made_world(), CFG)
    assert torch.equal(data[POI, COVISITS, POI].edge_index, ref.data[POI, COVISITS, POI].edge_index)
    GeoGraphDataset(tmp_path / "root", world_dir=folder, config=CFG, pre_transform=pre)
    assert seen == ["pre"]  # pre_transform ran once


def test_dataset_with_a_fitted_preprocessor_as_transform(tmp_path, monkeypatch):
    graph = build_graph(hand_made_world(), CFG)
    pre = FeaturePreprocessor().fit(graph)
    folder = write_world(hand_made_world(), tmp_path / "world")
    ds = GeoGraphDataset(tmp_path / "root", world_dir=folder, config=CFG, transform=pre)
    data = ds[0]
    ref = pre(graph).data
    assert data.brand_names == graph.index["brands"]
    for key in ("x", "x_unscaled", "naics", "brand_idx"):
        assert torch.equal(data[POI][key], ref[POI][key]), key
    assert "x_unscaled" not in ds._data[POI]  # the stored graph is not changed by the transform
    # processed files of an older format (x_raw) have other names: rebuilt, never loaded
    names = ds.processed_file_names
    monkeypatch.setattr(dataset_mod, "FORMAT_VERSION", 1)
    assert ds.processed_file_names != names


def test_dataset_sees_an_edited_world_folder(tmp_path):
    folder = write_world(hand_made_world(), tmp_path / "world")
    first = GeoGraphDataset(tmp_path / "root", world_dir=folder, config=CFG)
    assert int(first[0][POI, COVISITS, POI].visitors.sum()) == 338
    names = first.processed_file_names  # a property: computed from the folder as it is now
    edited = hand_made_world()
    edited.covisits = edited.covisits.with_columns(edited.covisits["visitors"] * 2)
    write_world(edited, folder, overwrite=True)
    again = GeoGraphDataset(tmp_path / "root", world_dir=folder, config=CFG)
    assert again.processed_file_names != names
    assert int(again[0][POI, COVISITS, POI].visitors.sum()) == 676


# --- networkx export --------------------------------------------------------------------------------
def test_to_networkx_covisits_and_near():
    g = build_graph(hand_made_world(), CFG)
    nxg = to_networkx(g)
    assert isinstance(nxg, nx.DiGraph)
    assert nxg.number_of_nodes() == 8 and nxg.number_of_edges() == 10
    assert nxg.nodes["p5"] == {
        "state": "NY",
        "naics_code": "722515",
        "lat": pytest.approx(40.7128),
        "lon": pytest.approx(-74.006),
    }
    assert nxg.edges["p0", "p1"] == {"visitors": 120}
    assert sum(w for _, _, w in nxg.edges(data="visitors")) == 338
    near = to_networkx(g, relation=NEAR)
    assert near.number_of_edges() == g.data[POI, NEAR, POI].edge_index.size(1)
    assert set(near.edges["p0", "p1"]) == {"distance_km"} and near.edges["p0", "p1"]["distance_km"] < 0.2


def test_to_networkx_induced_subgraph():
    g = build_graph(hand_made_world(), CFG)
    sub = to_networkx(g, pois=torch.tensor([5, 6, 7]))
    assert sorted(sub.nodes) == ["p5", "p6", "p7"]
    assert sorted(sub.edges(data="visitors")) == [("p5", "p6", 80), ("p5", "p7", 1), ("p6", "p7", 0)]
