"""The shipped basemap outlines and the NAICS heatmap's missing cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from geograph.analytics import WorldSource, flow_heatmap, naics_flow
from geograph.analytics.naics_flow import MISSING_FACE
from geograph.data.outlines import COUNTRY, OUTLINES_FILE, STATE, load_outlines, outlines_in, simplify


def test_outlines_are_shipped_small_and_complete() -> None:
    assert OUTLINES_FILE.stat().st_size < 1_000_000
    feats = load_outlines()
    states = {f["name"] for f in feats if f["kind"] == STATE}
    countries = {f["name"] for f in feats if f["kind"] == COUNTRY}
    assert {"California", "New York", "Texas", "Alaska", "Hawaii", "District of Columbia"} <= states
    assert len(states) >= 51 and {"United States of America", "Canada", "Mexico", "France"} <= countries
    ca = next(f for f in feats if f["name"] == "California")
    west, south, east, north = ca["bbox"]
    assert -124.5 < west < -124.2 and 32.4 < south < 32.6 and -114.2 < east < -114.0 and 41.9 < north < 42.1


def test_outlines_in_a_view() -> None:
    sf = {f["name"] for f in outlines_in(37.7, -122.5, 37.8, -122.4)}
    assert sf == {"California", "United States of America"}
    assert not list(outlines_in(-10.0, -140.0, -5.0, -130.0))  # open Pacific


def test_simplify_keeps_corners_and_drops_near_collinear_points() -> None:
    line = np.array([[0, 0], [1, 0.001], [2, 0], [2, 1], [2.001, 2], [2, 3]], dtype=float)
    assert simplify(line, 0.01).tolist() == [[0, 0], [2, 0], [2, 3]]
    assert len(simplify(line, 0.0001)) == len(line)


def _grey_pixels(path: Path) -> int:
    import matplotlib.image as mpimg

    rgb = (mpimg.imread(path)[..., :3] * 255).round().astype(int)
    want = np.array([int(MISSING_FACE[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=-1) <= 3).sum())


def test_heatmap_draws_missing_cells_as_missing(source: WorldSource, tmp_path: Path) -> None:
    flow = naics_flow(source, 2)  # 4 sectors, 12 of the 16 ordered pairs observed
    with_gaps = flow_heatmap(flow, tmp_path / "gaps.png")
    codes = sorted(set(flow["src_naics"].to_list()))
    full = flow.join(pl.DataFrame({"src_naics": codes}).join(pl.DataFrame({"dst_naics": codes}), how="cross"),
                     on=["src_naics", "dst_naics"], how="right").with_columns(pl.col("lift").fill_null(1.0))
    no_gaps = flow_heatmap(full, tmp_path / "full.png")
    # 4 missing cells of about 110x110 pixels each are grey (between the hatching lines)
    assert _grey_pixels(with_gaps) > 4 * 2000
    assert _grey_pixels(no_gaps) < 200
