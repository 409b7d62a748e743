"""Table operations on co-visit and POI tables (geograph.data), without the graph layer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from geograph.constants import POI_ID
from geograph.data.covisit_tables import aggregate_pairs, map_poi_ids, sorted_unique
from geograph.data.poi_tables import check_unique, poi_feature_columns
from geograph.errors import DataValidationError
from geograph.testing import hand_made_world


def test_aggregate_pairs_drops_self_loops_and_sums_duplicates():
    src = np.array([2, 0, 1, 0, 1, 2], dtype=np.int64)
    dst = np.array([0, 1, 1, 1, 2, 0], dtype=np.int64)
    vis = np.array([5, 3, 9, 4, 0, 1], dtype=np.int64)
    s, d, v, counts = aggregate_pairs(src, dst, vis, n=3)
    assert list(zip(s.tolist(), d.tolist(), v.tolist(), strict=True)) == [(0, 1, 7), (1, 2, 0), (2, 0, 6)]
    assert counts == {"covisit_self_loops_dropped": 1, "covisit_duplicates_summed": 2}
    assert v.dtype == np.int64


def test_sorted_unique():
    order, starts, uniq = sorted_unique(np.array([5, 1, 5, 3]))
    assert uniq.tolist() == [1, 3, 5] and starts.tolist() == [True, True, True, False]
    assert np.array_equal(np.array([5, 1, 5, 3])[order], [1, 3, 5, 5])


def test_map_poi_ids_names_the_first_unknown_row():
    pois = hand_made_world().pois
    assert map_poi_ids(pl.Series(["p3", "p0"]), pois, "src_poi_id").tolist() == [3, 0]
    with pytest.raises(DataValidationError, match="'nope' which is not in the POI table") as err:
        map_poi_ids(pl.Series(["p1", "nope", "zz"]), pois, "dst_poi_id", "covisits.csv")
    assert (err.value.row, err.value.field) == (1, "dst_poi_id")


def test_poi_feature_columns_and_unique_ids():
    pois = hand_made_world().pois
    assert poi_feature_columns(pois) == ["visits"]
    with pytest.raises(DataValidationError, match="duplicate poi_id 'p0'"):
        check_unique(pl.concat([pois, pois.head(1)])[POI_ID], POI_ID, "pois.csv")


def test_data_layer_does_not_import_the_graph_layer():
    code = (
        "import sys; import geograph.data, geograph.data.brands, geograph.data.covisit_tables, "
        "geograph.data.state_scan; print(sorted(m for m in sys.modules if m.startswith('geograph.graph')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
