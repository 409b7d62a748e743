"""Maps: names from data are escaped in the HTML (a POI named <script>... renders as text); the HTML
loads nothing from the network; every map has a legend and a colour scale; the queried POI is
marked; PNG labels do not overlap; missing values are drawn as missing.

That the HTML really draws in a browser with the network off is checked in
``test_maps_browser.py`` (headless Chromium).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from geograph.analytics import WorldSource, covisited, hotspots
from geograph.analytics.maps import (
    MISSING_COLOUR,
    ColourScale,
    MapLayers,
    covisited_layers,
    escape_html,
    hotspot_layers,
    leaflet_assets,
    place_labels,
    png_figure,
    points_layers,
    write_html,
    write_png,
)
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
    # popups are bound as JSON strings of escaped HTML (no jQuery): decoded, the brand is still text
    popups = [json.loads(m) for m in re.findall(r"\.bindPopup\((\".*?(?<!\\)\"), \{maxWidth", page)]
    assert len(popups) == 5
    assert any("Evil&#96;&#36;&#123;alert(2)&#125;&#96;&#92;Co &amp; &quot;Sons&quot; &#x27;Ltd&#x27;" in p
               for p in popups)
    assert not any("<script" in p or "`" in p or "${" in p for p in popups)
    # the page holds exactly the script tags folium writes, none from data
    assert page.count("<script") == page.count("</script>")
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    bodies = _script_bodies(page).replace(escaped, "").replace(json.dumps(escaped).strip('"').replace("&", "\\u0026"), "")
    assert "alert(1)" not in bodies


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


def test_html_loads_nothing_from_the_network(source: WorldSource, tmp_path: Path) -> None:
    page = write_html(covisited_layers(covisited(source, "p00"), source.poi("p00")), tmp_path / "m.html").read_text()
    js, css = leaflet_assets()
    assert js in page and css in page  # Leaflet inlined, its icons as data URIs
    assert "url(images/" not in page and "url(data:image/png;base64," in page
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=", page, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, flags=re.I)
    assert "L.tileLayer" not in page and "jquery" not in page.lower() and "$(`" not in page
    assert '"kind": "state"' in page and '"kind": "country"' in page  # the outline basemap


def test_html_legend_colour_scale_and_missing_cells(source: WorldSource, tmp_path: Path) -> None:
    hot = hotspots(source, 8)
    layers = hotspot_layers(hot.with_columns(pl.when(pl.col("rank") == 2).then(None).otherwise(pl.col("visitors"))
                                             .alias("visitors")), "hotspots")
    page = write_html(layers, tmp_path / "h.html").read_text()
    legend = json.loads(re.search(r"div\.innerHTML = (\".*?\");", page).group(1))
    scale = ColourScale.for_values(layers.cells["value"].cast(pl.Float64).fill_null(float("nan")).to_numpy(), "visitors")
    assert scale.cmap == "YlOrRd" and (scale.vmin, scale.vmax) == (hot["visitors"].drop_nulls().min(), 310.0)
    assert "H3 cells: visitors" in legend and scale.css_gradient() in legend and ">310<" in legend
    assert "no data" in legend and MISSING_COLOUR in page  # the null cell is grey, named in the legend
    assert "8828308287fffff" in page


def test_colour_scale_is_diverging_around_zero() -> None:
    scale = ColourScale.for_values(np.array([-2.0, 1.0, np.nan]), "mean residual")
    assert (scale.vmin, scale.vmax, scale.cmap) == (-2.0, 2.0, "RdBu_r")
    lo, mid, missing = scale.hex(np.array([-2.0, 0.0, np.nan]))
    assert missing == MISSING_COLOUR and mid.lower() in {"#f7f6f6", "#f7f7f7"} and lo != mid


def test_queried_poi_is_marked(source: WorldSource, tmp_path: Path) -> None:
    me = source.poi("p00")
    layers = covisited_layers(covisited(source, "p00"), me)
    page = write_html(layers, tmp_path / "m.html").read_text()
    assert page.count('"permanent": true') == 1 and "queried POI: Bluebird Coffee #1" in page
    fig = png_figure(layers)
    try:
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "queried POI" in texts and any(t.startswith("POI (size: visitors, 10 to 120)") for t in texts)
        assert any(t.startswith("co-visit flow") for t in texts) and any(t.startswith("state / country") for t in texts)
        assert "Bluebird Coffee #1" in [t.get_text() for t in fig.axes[0].texts]  # the query is labelled
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    pts = points_layers(source.pois().collect().filter(pl.col("poi_id") != "p00").head(4)
                        .with_columns(pl.lit(0.5).alias("similarity")), "similar to p00", query=me)
    assert pts.points["role"].to_list() == ["query", "poi", "poi", "poi", "poi"] and pts.value_name == "similarity"
    assert "queried POI" in write_html(pts, tmp_path / "s.html").read_text()


def test_png_has_a_colour_scale(source: WorldSource) -> None:
    import matplotlib.pyplot as plt

    fig = png_figure(hotspot_layers(hotspots(source, 8)))
    try:
        assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "H3 cell visitors"  # the colorbar
    finally:
        plt.close(fig)


def test_place_labels_leaves_out_overlapping_labels() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    xy = rng.normal(0, 0.05, size=(40, 2))
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    fig.canvas.draw()
    placed = place_labels(ax, [(x, y, f"label number {i}") for i, (x, y) in enumerate(xy)])
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(renderer) for a in placed]
    plt.close(fig)
    assert 2 <= len(placed) < 40
    assert placed[0].get_text() == "label number 0"  # the first (most important) label is always tried first
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(len(boxes)) for j in range(i + 1, len(boxes)))


def test_map_layers_without_data_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to map"):
        write_html(MapLayers(title="empty"), tmp_path / "e.html")
