"""Region keys beyond the US: ISO 3166-2 codes in the readers, world folders, sharding, the
held-out-region split and ``geograph query --state``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from geograph.cli.main import main
from geograph.constants import (
    BRAND_COL,
    DST_BRAND,
    DST_POI,
    LAT,
    LON,
    NAICS_CODE,
    NAME,
    POI_ID,
    SRC_BRAND,
    SRC_POI,
    STATE,
    VISITORS,
)
from geograph.covisit.sharded import plan_states
from geograph.data import (
    DATAFRAME,
    World,
    normalize_region,
    read_covisits,
    read_pois,
    region_from_coordinates,
)
from geograph.data.regions import _ALIASES, H3_PREFIX, region_spellings
from geograph.data.state_scan import load_state_world, state_sizes
from geograph.data.world_io import load_world, scan_table, write_world
from geograph.distributed.sharding import balanced_partition
from geograph.errors import DataValidationError
from geograph.graph import StatePartitioner, build_graph, split_covisits

# (key as a file may spell it, canonical key, centre)
REGIONS = (
    ("CA", "CA", (34.05, -118.24)),  # Los Angeles
    ("US-NY", "NY", (40.71, -74.01)),  # New York
    ("ON", "CA-ON", (43.65, -79.38)),  # Toronto
    ("fi-18", "FI-18", (60.17, 24.94)),  # Helsinki
    ("DE-BY", "DE-BY", (48.14, 11.58)),  # Munich
)
CODES = ("722515", "311811", "441110", "445110")


def region_world(seed: int = 0, per_region: int = 6) -> World:
    """``per_region`` POIs around each centre of REGIONS, co-visits between POIs of one region."""
    rng = np.random.default_rng(seed)
    pois, cov = [], []
    for r, (key, _, (lat, lon)) in enumerate(REGIONS):
        ids = [f"r{r}p{i}" for i in range(per_region)]
        for i, pid in enumerate(ids):
            pois.append(
                {
                    POI_ID: pid,
                    NAME: f"venue {pid}",
                    BRAND_COL: "Bluebird Coffee" if i % 3 == 0 else None,
                    NAICS_CODE: CODES[i % len(CODES)],
                    LAT: lat + float(rng.normal(0, 0.01)),
                    LON: lon + float(rng.normal(0, 0.01)),
                    STATE: key,
                    "visits": int(rng.integers(100, 1000)),
                }
            )
        for i in range(per_region):
            for j in range(i + 1, per_region):
                cov.append({SRC_POI: ids[i], DST_POI: ids[j], VISITORS: int(rng.integers(0, 50)), STATE: key})
    return World(pois=pl.DataFrame(pois), covisits=pl.DataFrame(cov), meta={"generator": "test_region_keys"})


# -- keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("CA", "CA"),
        (" ny ", "NY"),
        ("US-CA", "CA"),
        ("us-dc", "DC"),
        ("PR", "PR"),
        ("ON", "CA-ON"),
        ("bc", "CA-BC"),
        ("CA-QC", "CA-QC"),
        ("fi-18", "FI-18"),
        ("DE-BY", "DE-BY"),
        ("GB-ENG", "GB-ENG"),
        ("US-GU", "US-GU"),
        ("h3-831126FFFFFFFFF", "H3-831126fffffffff"),
    ],
)
def test_normalize_region(text, key):
    assert normalize_region(text) == key
    assert normalize_region(key) == key  # canonical keys are fixed points
    assert region_spellings(key)[0] == key
    assert text.strip() in region_spellings(key) or key.startswith(H3_PREFIX)  # scans match these texts


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("FI-99", "FI-19"), ("ZZ", None), ("CAL", "CA"), ("US-ZZ", None), ("H3-zz", None), ("", None)],
)
def test_unknown_region_is_refused_with_close_matches(text, suggestion):
    with pytest.raises(ValueError, match="region") as ei:
        normalize_region(text)
    if suggestion is not None:
        assert "did you mean" in str(ei.value) and suggestion in str(ei.value)


def test_region_from_coordinates_names_admin1_regions():
    lat = [60.1699, 34.05, 43.65, 48.14, 38.9, 51.48, 18.4]
    lon = [24.9384, -118.24, -79.38, 11.58, -77.03, -3.18, -66.06]
    assert region_from_coordinates(np.array(lat), np.array(lon)) == [
        "FI-18", "CA", "CA-ON", "DE-BY", "DC", "GB-WLS", "PR"
    ]  # fmt: skip
    assert region_from_coordinates(np.array([]), np.array([])) == []


def test_region_from_coordinates_falls_back_to_an_h3_key():
    # Lyon: GeoNames files it under the pre-2016 region "Rhone-Alpes", which ISO 3166-2 no longer lists
    (key,) = region_from_coordinates([45.76], [4.83])
    assert key.startswith(H3_PREFIX) and normalize_region(key) == key


def test_region_from_coordinates_checks_its_input():
    with pytest.raises(ValueError, match="same length"):
        region_from_coordinates([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="point 1"):
        region_from_coordinates([1.0, 91.0], [1.0, 1.0])


def test_region_from_coordinates_is_thread_safe():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 70, 200), rng.uniform(-180, 180, 200)
    want = region_from_coordinates(lat, lon)
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda _: region_from_coordinates(lat, lon), range(8)))
    assert all(g == want for g in got)


def test_aliases_name_real_subdivisions():
    assert all(normalize_region(code) == code for code in _ALIASES.values())


# -- readers ----------------------------------------------------------------------------------
def test_readers_store_canonical_keys():
    world = region_world()
    pois = read_pois(world.pois)
    assert pois[STATE].unique(maintain_order=True).to_list() == [k for _, k, _ in REGIONS]
    cov = read_covisits(world.covisits, pois)
    assert set(cov[STATE].unique()) == {k for _, k, _ in REGIONS}
    brand = read_covisits(pl.DataFrame({SRC_BRAND: ["A"], DST_BRAND: ["B"], STATE: ["qc"], VISITORS: [3]}))
    assert brand[STATE].to_list() == ["CA-QC"]


def test_bad_region_names_file_row_and_field(tmp_path):
    df = region_world().pois.with_columns(pl.col(STATE).cast(pl.String))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("FI-99")).otherwise(pl.col(STATE)).alias(STATE))
    path = tmp_path / "pois.csv"
    df.write_csv(path)
    with pytest.raises(DataValidationError) as ei:
        read_pois(path)
    assert (ei.value.file, ei.value.row, ei.value.field) == (str(path), 7, STATE)
    assert "got 'FI-99'" in str(ei.value) and "did you mean" in str(ei.value)


def test_missing_region_column_is_derived_from_coordinates():
    pois = region_world().pois.drop(STATE)
    with pytest.warns(UserWarning, match="no state column"):
        out = read_pois(pois)
    assert out.columns[:7] == [POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE]
    assert out[STATE].unique(maintain_order=True).to_list() == [k for _, k, _ in REGIONS]
    with pytest.raises(DataValidationError) as ei:  # a present but empty key stays an error
        read_pois(region_world().pois.with_columns(pl.lit("").alias(STATE)))
    assert (ei.value.file, ei.value.row, ei.value.field) == (DATAFRAME, 0, STATE)


# -- world folders, sharding, held-out regions, queries --------------------------------------
@pytest.fixture(scope="module")
def hive_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("regions") / "world"
    write_world(region_world(), folder, partition_by="state")
    return folder


def test_hive_partitions_are_named_by_region_key(hive_dir):
    names = sorted(p.name for p in (hive_dir / "pois").iterdir())
    assert names == sorted(f"state={k}" for _, k, _ in REGIONS)
    sizes = state_sizes(hive_dir)
    assert sizes == {k: {"pois": 6, "covisits": 15} for _, k, _ in sorted(REGIONS, key=lambda r: r[1])}
    fi = scan_table(hive_dir, "pois", ["fi-18"]).collect()
    assert fi.height == 6 and set(fi[POI_ID].str.slice(0, 2)) == {"r3"}
    assert scan_table(hive_dir, "pois", ["ON", "US-CA"]).collect().height == 12
    with pytest.raises(DataValidationError, match="unknown state code"):
        scan_table(hive_dir, "pois", ["FI-99"])


def test_regions_shard_over_two_ranks_and_load_alone(hive_dir):
    sizes = state_sizes(hive_dir)
    plan = plan_states(sizes, 2)
    assert sorted(k for rank in plan for k in rank) == sorted(sizes)
    assert all(plan) and plan == balanced_partition({k: v["covisits"] for k, v in sizes.items()}, 2)
    one = load_state_world(hive_dir, "on")
    assert one.state == "CA-ON" and one.core_pois == 6
    assert set(one.world.pois[STATE]) == {"CA-ON"} and all("state=CA-ON" in f for f in one.files["pois"])
    with pytest.raises(DataValidationError, match="region"):
        load_state_world(hive_dir, "XX-1")


def test_graph_splits_by_held_out_region(tmp_path):
    write_world(region_world(seed=1), tmp_path / "w")
    graph = build_graph(load_world(tmp_path / "w"))
    keys = sorted(k for _, k, _ in REGIONS)
    assert list(graph.index["states"]) == keys
    split = split_covisits(graph, protocol="states", val_frac=0.2, test_frac=0.2, seed=0)
    held = split.groups["val"] + split.groups["test"]
    assert len(split.groups["val"]) == len(split.groups["test"]) == 1 and set(held) <= set(keys)
    assert sorted(held + split.groups["train"]) == keys
    # every scored val / test pair starts in its held-out region; no training pair does
    state = graph.data["poi"].state
    for s in ("val", "test"):
        (name,) = split.groups[s]
        assert {keys[i] for i in state[split.pairs[s].src].tolist()} == {name}
    assert not set(held) & {keys[i] for i in state[split.pairs["train"].src].tolist()}
    sub = StatePartitioner(graph).subgraph("FI-18")
    assert sub.data["poi"].num_nodes == 6


def test_query_by_region(capsys, tmp_path):
    folder = tmp_path / "flat"
    write_world(region_world(), folder)
    assert main(["query", "hotspots", "--resolution", "5", "--data", str(folder), "--state", "fi-18",
                 "--format", "json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(abs(r[LAT] - 60.17) < 1 and abs(r[LON] - 24.94) < 1 for r in rows)
    assert main(["query", "covisited", "--poi", "r2p0", "--data", str(folder), "--state", "ON",
                 "--format", "json"]) == 0  # fmt: skip
    partners = json.loads(capsys.readouterr().out)
    assert partners and all(r[POI_ID].startswith("r2") for r in partners)
    assert main(["query", "hotspots", "--data", str(folder), "--state", "FI-99"]) != 0
    assert "did you mean" in capsys.readouterr().err
