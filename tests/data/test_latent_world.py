"""The latent-community world: determinism, the readers' contracts, a community effect no column shows."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from geograph.constants import DST_POI, NAICS_CODE, POI_ID, SRC_POI, STATE, VISITORS
from geograph.covisit.config import CovisitConfig
from geograph.data import load_world, read_covisits, read_pois, read_regions, validate_world, write_world
from geograph.data.latent_world import (
    CONTIGUOUS_STATES,
    LATENT_PROCESS_VERSION,
    generate_latent_world,
    generate_latent_world_with_truth,
)
from geograph.data.synthetic import generate_world
from geograph.errors import ConfigError

N_POIS = 2000


@pytest.fixture(scope="module")
def latent():
    return generate_latent_world_with_truth(N_POIS, seed=5)


def _rows(world) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into ``world.pois`` of each co-visit row's two ends."""
    pos = {pid: i for i, pid in enumerate(world.pois[POI_ID].to_list())}
    a = np.array([pos[p] for p in world.covisits[SRC_POI].to_list()])
    b = np.array([pos[p] for p in world.covisits[DST_POI].to_list()])
    return a, b


def test_same_seed_same_tables_other_seed_other_tables():
    one, two = generate_latent_world(400, seed=3), generate_latent_world(400, seed=3)
    for name in ("pois", "covisits", "regions"):
        assert one.tables()[name].equals(two.tables()[name]), name
    assert one.fingerprint() == two.fingerprint()
    assert generate_latent_world(400, seed=4).fingerprint() != one.fingerprint()
    # its own seed stream: seed 0 is not the embedded world's seed 0
    emb = generate_world(400, seed=0, n_images=0, progress=False)
    lat0 = generate_latent_world(400, seed=0)
    assert not np.allclose(emb.pois["latitude"].to_numpy(), lat0.pois["latitude"].to_numpy())
    assert lat0.meta["generator"].endswith("generate_latent_world")
    assert lat0.meta["process_version"] == LATENT_PROCESS_VERSION and lat0.meta["seed"] == 0


def test_passes_the_readers_and_round_trips(latent, tmp_path):
    world, _ = latent
    pois = read_pois(world.pois)
    read_covisits(world.covisits, pois=pois)
    read_regions(world.regions)
    assert world.images is None
    assert set(world.pois[STATE].unique().to_list()) <= set(CONTIGUOUS_STATES)
    assert world.covisits[VISITORS].min() >= 0
    zero = float((world.covisits[VISITORS] == 0).mean())
    assert 0.25 < zero < 0.45  # zero_fraction 0.35 is the expected share
    # each unordered pair is listed once, within one state
    key = pl.concat_str([pl.min_horizontal(SRC_POI, DST_POI), pl.max_horizontal(SRC_POI, DST_POI)])
    assert world.covisits.select(key.n_unique()).item() == world.covisits.height
    folder = write_world(world, tmp_path / "w")
    validate_world(folder)
    back = load_world(folder)
    assert back.fingerprint() == world.fingerprint()
    assert back.meta["params"]["n_communities_per_metro"] == 4


def test_community_raises_co_visits_at_equal_distance(latent):
    world, truth = latent
    y = np.log1p(world.covisits[VISITORS].to_numpy().astype(np.float64))
    a, b = _rows(world)
    same = truth.community[a] == truth.community[b]
    assert np.array_equal(same, truth.covisit_same_community)
    d = truth.covisit_distance_km
    for lo, hi in ((0, 2), (2, 5), (5, 10), (10, 25)):
        s, o = (d >= lo) & (d < hi) & same, (d >= lo) & (d < hi) & ~same
        assert s.sum() >= 50 and o.sum() >= 50, (lo, hi)
        assert y[s].mean() - y[o].mean() > 0.6, (lo, hi, y[s].mean(), y[o].mean())


def _eta2(x: np.ndarray, group: np.ndarray) -> float:
    """Share of the within-metro sum of squares of ``x`` (n, p) that lies between ``group`` means
    (``x`` already centred per metro)."""
    _, inv = np.unique(group, return_inverse=True)
    n = np.bincount(inv).astype(np.float64)
    means = np.stack([np.bincount(inv, weights=x[:, j]) for j in range(x.shape[1])], 1) / n[:, None]
    return float((n[:, None] * means**2).sum() / (x**2).sum())


def _permutation_p(x: np.ndarray, metro: np.ndarray, community: np.ndarray, rng, n_perm: int = 200) -> float:
    """P-value of ``eta2(x, community)`` against labels shuffled within each metro."""
    x = x - np.stack([np.bincount(metro, weights=x[:, j])[metro] / np.bincount(metro)[metro] for j in range(x.shape[1])], 1)
    obs = _eta2(x, community)
    null = []
    for _ in range(n_perm):
        # rows are sorted by metro, so this reorders the labels within each metro
        null.append(_eta2(x, community[np.lexsort((rng.random(len(metro)), metro))]))
    return (1 + sum(v >= obs for v in null)) / (1 + n_perm)


def test_no_poi_column_shows_the_community_but_the_graph_does(latent):
    world, truth = latent
    pois = world.pois
    # metros with at least 30 POIs, their POIs sorted by metro (permutations stay within a metro)
    counts = np.bincount(truth.metro)
    keep = np.flatnonzero(counts[truth.metro] >= 30)
    keep = keep[np.argsort(truth.metro[keep], kind="stable")]
    _, metro = np.unique(truth.metro[keep], return_inverse=True)
    community = truth.community[keep]
    assert len(keep) > 500 and len(np.unique(community)) > 20
    rng = np.random.default_rng(0)
    numeric = [c for c, dt in pois.schema.items() if dt.is_numeric()]
    assert {"visits", "latitude", "longitude"} <= set(numeric)
    codes = pois[NAICS_CODE].to_numpy()
    columns = {c: pois[c].to_numpy().astype(np.float64)[:, None] for c in numeric}
    columns[NAICS_CODE] = (codes[:, None] == np.unique(codes)[None, :]).astype(np.float64)
    columns["brand"] = pois["brand"].is_null().to_numpy().astype(np.float64)[:, None]
    for name, x in columns.items():
        p = _permutation_p(x[keep], metro, community, rng)
        assert p > 0.01, (name, p)
    # the co-visit graph reveals it: the visitor-weighted NAICS-subsector mix of a POI's partners
    a, b = _rows(world)
    w = world.covisits[VISITORS].to_numpy().astype(np.float64)
    g = truth.group
    mix = np.zeros((pois.height, len(truth.groups)))
    np.add.at(mix, (a, g[b]), w)
    np.add.at(mix, (b, g[a]), w)
    mix /= np.maximum(mix.sum(1, keepdims=True), 1.0)
    assert _permutation_p(mix[keep], metro, community, rng) < 0.01


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="n_communities_per_metro"):
        generate_latent_world(100, n_communities_per_metro=0)
    with pytest.raises(ConfigError, match="zero_fraction"):
        generate_latent_world(100, zero_fraction=1.5)
    with pytest.raises(ConfigError, match="states"):
        generate_latent_world(100, states=["XX"])


def test_config_picks_the_generator_and_trains_fast(tmp_path):
    with pytest.raises(ConfigError, match="data.generator"):
        CovisitConfig.from_dict({"data": {"generator": "lattice"}})
    assert CovisitConfig.from_dict({"data": {"generator": "embedded"}}).hash() == CovisitConfig().hash()
    base = {
        "data": {"generator": "latent", "n_pois": 500, "cache_dir": None},
        "model": {"hidden": 16, "head_hidden": [16], "dropout": 0.0},
        "train": {"epochs": 2, "progress": False, "checkpoint_dir": str(tmp_path / "ckpt")},
    }
    cfg = CovisitConfig.from_dict(base)
    assert cfg.hash() != CovisitConfig.from_dict({**base, "data": {**base["data"], "generator": "embedded"}}).hash()
    from geograph import covisit as C
    from geograph.covisit.data import load_world_for

    assert load_world_for(cfg).fingerprint() == generate_latent_world(500, seed=0).fingerprint()
    for family in ("gnn", "gbt"):
        prep = C.prepare(CovisitConfig.from_dict({**base, "model": {**base["model"], "family": family}}))
        metrics = C.evaluate.evaluate(C.fit(prep), prep)
        assert math.isfinite(metrics["test_observed_r2_log1p"]), family


def test_world_command_writes_the_latent_world(tmp_path):
    from geograph.cli.main import main

    out = tmp_path / "latent"
    assert main(["world", "--generator", "latent", "--pois", "300", "--seed", "2", "--out", str(out)]) == 0
    assert load_world(out).fingerprint() == generate_latent_world(300, seed=2).fingerprint()
