"""Every HTML map draws in headless Chromium with the network off: the screenshot is not blank and
the legend (a Leaflet control, so it exists only once Leaflet ran) is in the DOM.

Chromium runs with a dead proxy and every host name unresolvable, so a page that needed a CDN
or a tile server would draw nothing. A control page with the inlined Leaflet removed shows that
both checks fail on a map that did not draw. Skipped when no Chromium binary is installed
(``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from geograph.analytics import WorldSource, covisited, hotspots
from geograph.analytics.maps import (
    LEGEND_CLASS,
    covisited_layers,
    hotspot_layers,
    leaflet_assets,
    points_layers,
    whatif_layers,
    write_html,
)

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
WIDTH, HEIGHT = 1024, 768
# a blank page has one colour; a drawn map has outlines, markers, text and a legend
MIN_COLOURS = 50
MIN_DRAWN_SHARE = 0.03


def _open(page: Path, tmp_path: Path) -> tuple[str, np.ndarray]:
    """``(DOM after scripts ran, screenshot RGB)`` of ``page`` in headless Chromium, network off."""
    import matplotlib.image as mpimg

    profile = tmp_path / f"profile-{page.stem}"
    shot = tmp_path / f"{page.stem}.png"
    profile.mkdir()
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0 and shot.is_file(), f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout, (mpimg.imread(shot)[..., :3] * 255).round().astype(np.uint8)


def _drawn(image: np.ndarray) -> tuple[int, float]:
    """Distinct colours, and the share of pixels that differ from the most common colour."""
    _, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return len(counts), 1.0 - counts.max() / counts.sum()


def _legend(dom: str) -> str:
    """The text of the rendered legend control ('' when Leaflet did not run)."""
    m = re.search(rf'<div class="{LEGEND_CLASS} leaflet-control"[^>]*>(.*?)</div></div></div>', dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", m.group(1)) if m else ""


def _map(name: str, source: WorldSource, folder: Path) -> Path:
    """Write the HTML map ``name`` (one per kind of query) of the hand-made world."""
    me = source.poi("p00")
    pts = source.pois().collect().filter(pl.col("poi_id") != "p00").head(5)
    if name == "covisited":
        layers = covisited_layers(covisited(source, "p00"), me)
    elif name == "hotspots":  # the cell ranked 3rd has no value
        hot = hotspots(source, 8)
        layers = hotspot_layers(hot.with_columns(pl.when(pl.col("rank") == 3).then(None).otherwise(pl.col("visitors"))
                                                 .alias("visitors")), "hotspots")
    elif name == "similar":
        layers = points_layers(pts.with_columns(pl.lit(0.7).alias("similarity")), "similar to p00", query=me)
    else:
        layers = whatif_layers(SimpleNamespace(
            venue={"latitude": 37.781, "longitude": -122.41, "name": "Corner Coffee 2", "naics_code": "722515"},
            neighbours=pts.with_columns(pl.lit(3.0).alias("predicted_visitors")),
            comparison={"poi_id": "p02", "latitude": 37.785, "longitude": -122.409, "name": "Bluebird Coffee #2",
                        "total_predicted": 9.0},
            total_predicted=12.0,
        ))
    return write_html(layers, folder / f"{name}.html")


# what each map's legend must say once drawn
EXPECTED = {
    "covisited": ("queried POI", "POI (size: visitors", "co-visit flow", "state / country outlines"),
    "hotspots": ("H3 cells: visitors", "no data", "state / country outlines"),
    "similar": ("queried POI", "POI (size: similarity", "state / country outlines"),
    "whatif": ("what-if venue", "comparison POI", "co-visit flow (width: predicted visitors"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_html_map_draws_offline(name: str, source: WorldSource, tmp_path: Path) -> None:
    page = _map(name, source, tmp_path)
    dom, image = _open(page, tmp_path)
    colours, share = _drawn(image)
    assert colours >= MIN_COLOURS and share >= MIN_DRAWN_SHARE, f"{name}: blank screenshot ({colours} colours, {share:.3f})"
    legend = _legend(dom)
    for text in EXPECTED[name]:
        assert text in legend, f"{name}: {text!r} missing from the drawn legend {legend!r}"
    assert "leaflet-container" in dom and dom.count("<path") >= 2  # outlines and data drawn as SVG
    if "queried POI" in EXPECTED[name]:  # the query's permanent label is drawn on the map
        assert re.search(r'class="leaflet-tooltip[^"]*"[^>]*>\s*(<[^>]+>\s*)*queried POI: Bluebird Coffee #1', dom)


def test_a_map_without_leaflet_fails_the_checks(source: WorldSource, tmp_path: Path) -> None:
    page = _map("covisited", source, tmp_path)
    js, _ = leaflet_assets()
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace(js, ""))
    dom, image = _open(broken, tmp_path)
    colours, share = _drawn(image)
    assert colours < MIN_COLOURS and share < MIN_DRAWN_SHARE
    assert _legend(dom) == ""
