"""The embedded world: determinism, contract, realism and the documented co-visit signal."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from geograph.constants import (
    BRAND_COL,
    DST_POI,
    EMBEDDING,
    H3_CELL,
    IMAGE_ID,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    POI_REQUIRED,
    SRC_POI,
    STATE,
    TEXT,
    VISITORS,
)
from geograph.data.naics import NAICSTaxonomy
from geograph.data.readers import US_STATES, read_covisits, read_images, read_pois, read_regions
from geograph.data.synthetic import (
    AFFINITY_RULES,
    CATALOGUE,
    PROCESS_VERSION,
    covisit_r2_diagnostics,
    generate_world,
    generate_world_with_truth,
    summarize_world,
    us_cities,
)
from geograph.errors import ConfigError
from geograph.geo import haversine_km
from geograph.testing import hand_made_world, tiny_world


@pytest.fixture(scope="module")
def world():
    return generate_world(3000, seed=0)


@pytest.fixture(scope="module")
def big():
    """A few-thousand-POI world with dense pairs, for the statistical checks."""
    return generate_world_with_truth(6000, seed=1, n_images=0, covisits_per_poi=20.0)


def _pairs(w):
    p = w.pois.select(POI_ID, NAICS_CODE, STATE, BRAND_COL, LAT, LON)
    out = w.covisits.join(p.rename(lambda c: f"a_{c}"), left_on=SRC_POI, right_on=f"a_{POI_ID}")
    out = out.join(p.rename(lambda c: f"b_{c}"), left_on=DST_POI, right_on=f"b_{POI_ID}")
    d = haversine_km(out[f"a_{LAT}"].to_numpy(), out[f"a_{LON}"].to_numpy(), out[f"b_{LAT}"], out[f"b_{LON}"])
    return out.with_columns(pl.Series("d_km", d), pl.col(VISITORS).log1p().alias("y"))


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_world():
    a = generate_world(400, seed=7)
    b = generate_world(400, seed=7)
    assert a.fingerprint() == b.fingerprint()
    assert a.meta == b.meta
    for name, df in a.tables().items():
        assert df.equals(b.tables()[name]), name


def test_different_seed_different_world():
    assert generate_world(400, seed=7).fingerprint() != generate_world(400, seed=8).fingerprint()


def test_meta_records_the_process(world):
    assert world.meta["process_version"] == PROCESS_VERSION
    assert world.meta["seed"] == 0
    assert world.meta["params"]["n_pois"] == 3000
    assert world.meta["params"]["covisits_per_poi"] == 10.0


# --- contract and realism -----------------------------------------------------------------------


def test_schema_and_dtypes(world):
    pois = world.pois
    assert pois.columns[: len(POI_REQUIRED)] == list(POI_REQUIRED)
    assert pois.schema[POI_ID] == pl.String and pois[POI_ID].n_unique() == pois.height
    assert pois.schema[NAICS_CODE] == pl.String and pois.schema[STATE] == pl.String
    assert pois.schema[LAT] == pl.Float64 and pois.schema[LON] == pl.Float64
    for col, dt in {"visits": pl.Int64, "median_dwell_min": pl.Float64, "area_sqft": pl.Int64}.items():
        assert pois.schema[col] == dt
    assert pois["visits"].min() >= 1
    assert pois["open_hours"].min() >= 4 and pois["open_hours"].max() <= 24
    assert pois[NAME].str.contains(r" #\d+$").all()
    assert world.covisits.columns == [SRC_POI, DST_POI, VISITORS, STATE]
    assert world.covisits.schema[VISITORS] == pl.Int64
    assert world.images.columns[:5] == [IMAGE_ID, LAT, LON, EMBEDDING, TEXT]
    assert world.images.schema[EMBEDDING] == pl.List(pl.Float32)
    assert world.regions.columns[0] == H3_CELL


def test_tables_pass_the_readers(world):
    pois = read_pois(world.pois)
    assert read_covisits(world.covisits, pois=pois).height == world.covisits.height
    assert read_images(world.images).height == world.images.height
    assert read_regions(world.regions).height == world.regions.height


def test_naics_states_and_coordinates_are_real(world):
    tax = NAICSTaxonomy()
    assert all(tax.is_valid(k.code) for k in CATALOGUE)
    assert 40 <= len(CATALOGUE) <= 60
    assert {k.code[:2] for k in CATALOGUE} >= {"44", "45", "72", "71", "81", "62", "52", "61", "31"}
    assert set(world.pois[NAICS_CODE].unique()) <= {k.code for k in CATALOGUE}
    assert set(world.pois[STATE].unique()) <= US_STATES
    assert world.pois[STATE].n_unique() >= 45
    cities = us_cities()
    assert set(world.pois["city"].unique()) <= set(cities["city"])
    for df in (world.pois, world.images, world.regions):
        assert df[LAT].is_between(18, 72).all() and df[LON].is_between(-180, -60).all()
    # the biggest states hold the most POIs
    top = world.pois[STATE].value_counts(sort=True)[STATE].head(4).to_list()
    assert "CA" in top and "TX" in top


def test_pois_cluster_around_their_city(world):
    c = us_cities().select("city", STATE, pl.col(LAT).alias("c_lat"), pl.col(LON).alias("c_lon"))
    j = world.pois.join(c, on=["city", STATE], how="left")
    d = haversine_km(j[LAT].to_numpy(), j[LON].to_numpy(), j["c_lat"].to_numpy(), j["c_lon"].to_numpy())
    assert np.median(d) < 15 and np.quantile(d, 0.99) < 100


def test_brands_chains_and_local(world):
    pois = world.pois
    branded = pois.filter(pl.col(BRAND_COL).is_not_null())
    assert 0.5 < branded.height / pois.height < 0.85
    span = branded.group_by(BRAND_COL).agg(pl.col(STATE).n_unique().alias("n"), pl.col(NAICS_CODE).n_unique())
    assert span[NAICS_CODE].max() == 1  # a brand has one code
    assert span.filter(pl.col("n") >= 10).height >= 10  # national chains
    assert (span["n"] == 1).mean() > 0.5  # most brands are local
    # names count the locations of a brand: "<brand> #1 .. #k"
    name_k = branded.with_columns(pl.col(NAME).str.extract(r"#(\d+)$").cast(pl.Int64).alias("k"))
    per = name_k.group_by(BRAND_COL).agg(pl.col("k").max(), pl.len())
    assert (per["k"] == per["len"]).all()


def test_states_option_restricts_the_world():
    w = generate_world(300, seed=0, states=["NV", "OR"])
    assert set(w.pois[STATE].unique()) == {"NV", "OR"}
    assert set(w.covisits[STATE].unique()) <= {"NV", "OR"}


def test_images_option():
    w = generate_world(200, seed=0, n_images=0)
    assert w.images is None
    w = generate_world(200, seed=0, n_images=37, embedding_dim=8)
    assert w.images.height == 37 and w.images[EMBEDDING].list.len().unique().to_list() == [8]


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="n_pois"):
        generate_world(0)
    with pytest.raises(ConfigError, match="unknown state 'XX'"):
        generate_world(10, states=["CA", "XX"])
    with pytest.raises(ConfigError, match="unknown world option"):
        generate_world(10, nonsense=1)
    with pytest.raises(ConfigError, match="zero_fraction"):
        generate_world(10, zero_fraction=1.5)


# --- co-visits ----------------------------------------------------------------------------------


def test_pairs_are_unordered_unique_and_within_state(world):
    pr = _pairs(world)
    assert (pr[f"a_{STATE}"] == pr[f"b_{STATE}"]).all() and (pr[f"a_{STATE}"] == pr[STATE]).all()
    assert (pr[SRC_POI] != pr[DST_POI]).all()
    key = pl.concat_str(
        [pl.min_horizontal(SRC_POI, DST_POI), pl.max_horizontal(SRC_POI, DST_POI)], separator="|"
    )
    assert pr.select(key.n_unique()).item() == pr.height
    # src / dst are in random order, not always the smaller id first
    assert 0.4 < (pr[SRC_POI] < pr[DST_POI]).mean() < 0.6
    degree = 2 * pr.height / world.pois.height
    assert 8.5 < degree <= 10.5


def test_zero_fraction_and_heavy_tail(world):
    v = world.covisits[VISITORS]
    assert 0.4 < (v == 0).mean() < 0.6
    assert v.min() == 0 and v.max() > 50 * v.filter(v > 0).median()


def test_distance_decay(big):
    pr = _pairs(big[0])
    near = pr.filter(pl.col("d_km") < 3)["y"].mean()
    far = pr.filter(pl.col("d_km") > 30)["y"].mean()
    assert near > far + 0.5


def test_affinity_visible_at_equal_distance(big):
    pr = _pairs(big[0]).filter(pl.col("d_km") < 10)

    def mean_y(a: str, b: str) -> float:
        sel = pr.filter(
            ((pl.col(f"a_{NAICS_CODE}") == a) & (pl.col(f"b_{NAICS_CODE}") == b))
            | ((pl.col(f"a_{NAICS_CODE}") == b) & (pl.col(f"b_{NAICS_CODE}") == a))
        )
        assert sel.height >= 10, (a, b, sel.height)
        return sel["y"].mean()

    coffee_bakery = mean_y("722515", "311811")
    coffee_cars = mean_y("722515", "441110")
    assert coffee_bakery > coffee_cars + 0.5
    assert mean_y("456110", "445110") > mean_y("456110", "441110")  # pharmacy: grocery vs car dealer


def test_affinity_matrix_hand_set_pairs(big):
    truth = big[1]
    a = truth.affinity
    assert np.allclose(a, a.T)
    ix = {c: i for i, c in enumerate(truth.codes)}
    assert ("722515", "311811", 1.5) in AFFINITY_RULES
    assert a[ix["722515"], ix["311811"]] > a[ix["722515"], ix["441110"]]


def test_r2_diagnostics(big):
    """Distance + masses explain part of log1p(visitors); NAICS affinity and latents add a lot."""
    r = covisit_r2_diagnostics(*big)
    print({k: round(v, 3) for k, v in r.items()})
    assert 0.15 < r["r2_distance_mass"] < 0.4
    assert r["r2_distance_mass_naics"] > r["r2_distance_mass"] + 0.05
    assert r["r2_distance_mass_naics_latent"] > 0.6


# --- regions and images -------------------------------------------------------------------------


def test_regions_cover_the_pois(world):
    from geograph.geo import latlng_to_cells

    cells = set(latlng_to_cells(world.pois[LAT].to_numpy(), world.pois[LON].to_numpy(), 6))
    assert set(world.regions[H3_CELL]) == cells
    r = world.regions
    assert r["population"].min() > 0
    assert r["pct_college"].is_between(0, 1).all() and r["median_income"].is_between(10_000, 500_000).all()
    # denser cells are more populous: the cell of a big city beats a small-town cell
    assert r["population"].max() > 10 * r["population"].median()


def test_images_are_near_pois_and_geolocatable(world):
    from scipy.spatial import cKDTree

    im = world.images
    assert im.height == world.pois.height // 2
    assert im[TEXT].str.contains(r"^street view near .+, [A-Z]{2}$").all()
    emb = np.asarray(im[EMBEDDING].to_list(), dtype=np.float32)
    assert emb.shape == (im.height, 64) and np.isfinite(emb).all()
    # 1-NN in embedding space between two halves: better than chance, far from perfect
    half = im.height // 2
    _, nn = cKDTree(emb[:half]).query(emb[half:], k=1)
    lat, lon = im[LAT].to_numpy(), im[LON].to_numpy()
    d = haversine_km(lat[half:], lon[half:], lat[:half][nn], lon[:half][nn])
    assert 0.1 < (d < 200).mean() < 0.9
    st = im[STATE].to_numpy()
    assert (st[half:] == st[:half][nn]).mean() > 0.25


def test_summary(world):
    s = summarize_world(world)
    assert s["pois"] == 3000 and s["covisits"] == s["covisits_zero"] + s["covisits_nonzero"]
    assert len(s["pois_per_state"]) == 10 and s["pois_per_state"][0][0] == "CA"
    assert ["44-45", "Retail Trade"] == s["naics_sectors"][0][:2] or s["naics_sectors"][0][0] == "72"
    assert s["images"] == 1500 and s["regions"] == world.regions.height


# --- geograph.testing ---------------------------------------------------------------------------


def test_tiny_world():
    w = tiny_world()
    assert w.pois.height == 60 and set(w.pois[STATE].unique()) <= {"CA", "NY", "TX"}
    assert w.covisits.height > 100 and w.images.height == 30
    assert tiny_world().fingerprint() == w.fingerprint()


def test_hand_made_world_exact_numbers():
    w = hand_made_world()
    assert w.pois.height == 8 and w.pois[STATE].n_unique() == 2 and w.pois[NAICS_CODE].n_unique() == 3
    assert w.pois[BRAND_COL].drop_nulls().n_unique() == 2
    assert w.covisits.height == 10 and w.covisits[VISITORS].sum() == 338
    assert (w.covisits[VISITORS] == 0).sum() == 3
    pois = read_pois(w.pois)
    read_covisits(w.covisits, pois=pois)
    read_images(w.images)
    read_regions(w.regions)
    s = summarize_world(w)
    assert s["brands"] == 2 and s["covisits_zero"] == 3 and s["visitors_max"] == 120


def test_pair_log_rate_reproduces_the_rows_law_and_scores_any_pair():
    from geograph.data.synthetic import pair_log_rate

    world, truth = generate_world_with_truth(n_pois=400, seed=4, n_images=0)
    pos = {pid: i for i, pid in enumerate(world.pois[POI_ID].to_list())}
    # truth arrays are in pair order (src < dst); co-visit rows keep that order
    a = np.array([pos[x] for x in world.covisits[SRC_POI].to_list()])
    b = np.array([pos[x] for x in world.covisits[DST_POI].to_list()])
    np.testing.assert_allclose(pair_log_rate(world, truth, a, b), truth.covisit_log_rate, rtol=0, atol=1e-9)
    # symmetric, and defined for pairs that are not rows
    np.testing.assert_allclose(pair_log_rate(world, truth, b, a), truth.covisit_log_rate, atol=1e-9)
    far = pair_log_rate(world, truth, np.array([0]), np.array([1]))
    assert far.shape == (1,) and np.isfinite(far).all()
