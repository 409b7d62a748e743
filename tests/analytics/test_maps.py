"""Maps: names from data are escaped in the HTML (a POI named <script>... renders as text), PNGs.

A headless-Chromium rendering test is not included: folium pages load Leaflet and the tiles
from public CDNs, which the test machines cannot reach, and /usr/bin/chromium is not
installed there; the escaping is checked on the HTML text itself instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from geograph.analytics import WorldSource, covisited, hotspots
from geograph.analytics.maps import covisited_layers, escape_html, hotspot_layers, write_html, write_png
from geograph.cli.main import main
from geograph.data import World, write_world
from geograph.errors import ConfigError

EVIL = "<script>alert(1)</script>"
EVIL_BRAND = "Evil`${alert(2)}`\\Co & \"Sons\" 'Ltd' $x$"


@pytest.fixture
def evil_world(world: World) -> World:
    pois = world.pois.with_columns(
        pl.when(pl.col("poi_id") == "p01").then(pl.lit(EVIL)).otherwise(pl.col("name")).alias("name"),
        pl.when(pl.col("poi_id") == "p03").then(pl.lit(EVIL_BRAND)).otherwise(pl.col("brand")).alias("brand"),
    )
    return World(pois=pois, covisits=world.covisits)


def _script_bodies(page: str) -> str:
    return "\n".join(re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S))


def test_escape_html() -> None:
    assert escape_html(EVIL) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escape_html("a`b${c}\\d") == "a&#96;b&#36;&#123;c&#125;&#92;d"
    assert escape_html(None) == ""


def test_html_map_escapes_names(evil_world: World, tmp_path: Path) -> None:
    src = WorldSource.from_world(evil_world)
    me = src.poi("p00")
    page = write_html(covisited_layers(covisited(src, "p00"), me), tmp_path / "m.html").read_text()
    assert EVIL not in page and "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text in the tooltip
    assert "${alert(2)}" not in page and "`${" not in page  # no way out of the JS template literal
    assert "Evil&#96;&#36;&#123;alert(2)&#125;&#96;&#92;Co &amp; &quot;Sons&quot; &#x27;Ltd&#x27;" in page
    # the page holds exactly the script tags folium writes, none from data
    assert page.count("<script") == page.count("</script>")
    assert "alert(1)" not in _script_bodies(page).replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")


def test_cli_map_escapes_names(capsys, evil_world: World, tmp_path: Path) -> None:
    folder = write_world(evil_world, tmp_path / "world")
    html = tmp_path / "out" / "map.html"
    rc = main(["query", "covisited", "--poi", "p00", "--data", str(folder), "--map", str(html), "--png",
               str(tmp_path / "map.png")])
    assert rc == 0, capsys.readouterr().err
    page = html.read_text()
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_hotspot_map_and_png(source: WorldSource, tmp_path: Path) -> None:
    layers = hotspot_layers(hotspots(source, 8))
    page = write_html(layers, tmp_path / "h.html").read_text()
    assert page.count("L.polygon(") == 11
    png = write_png(layers, tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_png_with_dollar_names(evil_world: World, tmp_path: Path) -> None:
    src = WorldSource.from_world(evil_world)
    layers = covisited_layers(covisited(src, "p00"), src.poi("p00"))
    layers.points = layers.points.with_columns(pl.lit("$\\frac{unclosed").alias("label"))
    assert write_png(layers, tmp_path / "d.png").stat().st_size > 1000  # no mathtext error


def test_brand_results_cannot_be_mapped(source: WorldSource) -> None:
    with pytest.raises(ConfigError, match="brand results have no coordinates"):
        covisited_layers(covisited(source, brand="Fresh Market"), {})
