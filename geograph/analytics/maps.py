"""Maps of query results: one HTML file (folium / Leaflet) and a static PNG (matplotlib).

A map is a :class:`MapLayers`: points (POIs, with popups), lines (co-visit flows) and H3
cells (coloured by a value). Builders turn each query's result into layers.

Every text that comes from data (names, brands, ids) is escaped before it reaches the
HTML: folium inserts tooltip and popup text as raw HTML inside JavaScript template
literals, so ``<``, ``>``, ``&``, quotes, backticks, ``$`` and backslashes are all
replaced by character references (a POI named ``<script>alert(1)</script>`` shows as that
text). In the PNG, ``$`` is escaped so matplotlib does not read a name as mathtext.

The HTML is a single file, but like every folium map it loads Leaflet (and the tiles)
from public CDNs when opened: it needs a network connection to render. The PNG needs none.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import numpy as np
import polars as pl

from geograph.constants import H3_CELL, LAT, LON, NAME, POI_ID
from geograph.errors import ConfigError
from geograph.utils.atomic import atomic_write, atomic_write_text

LABEL = "label"
VALUE = "value"
ROLE = "role"
_ROLE_COLOURS = {"query": "#d62728", "venue": "#d62728", "comparison": "#9467bd", "poi": "#1f77b4"}
# folium renders popup / tooltip text through Jinja2: braces must never reach it as braces,
# or a POI name like "{{ ... }}" is executed as template code.
_JS_UNSAFE = {"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;"}


def escape_html(value: Any) -> str:
    """Text safe inside folium's HTML and JavaScript template literals (see the module doc)."""
    text = html.escape("" if value is None else str(value), quote=True)
    for ch, ref in _JS_UNSAFE.items():
        text = text.replace(ch, ref)
    return text


def escape_mpl(value: Any) -> str:
    """Text for a matplotlib label: ``$`` escaped so it is not mathtext."""
    return ("" if value is None else str(value)).replace("$", r"\$")


@dataclass
class MapLayers:
    """What a map shows.

    Attributes:
        points: ``latitude, longitude, label, role`` (``query``, ``venue``, ``comparison`` or
            ``poi``), optional ``value`` (marker size); other columns go to the popup.
        lines: ``lat_a, lon_a, lat_b, lon_b, value`` (line width by value).
        cells: ``h3_cell, value`` (fill colour by value).
        title: Map title.
    """

    points: pl.DataFrame | None = None
    lines: pl.DataFrame | None = None
    cells: pl.DataFrame | None = None
    title: str = "geograph"
    notes: list[str] = field(default_factory=list)

    def bounds(self) -> tuple[float, float, float, float]:
        """``(south, west, north, east)`` of everything shown."""
        lats: list[float] = []
        lons: list[float] = []
        if self.points is not None and self.points.height:
            lats += self.points[LAT].to_list()
            lons += self.points[LON].to_list()
        if self.cells is not None and self.cells.height:
            for c in self.cells[H3_CELL].to_list():
                for la, lo in h3.cell_to_boundary(c):
                    lats.append(la)
                    lons.append(lo)
        if not lats:
            raise ConfigError("nothing to map: the result is empty")
        return min(lats), min(lons), max(lats), max(lons)


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    if len(v) == 0:
        return v
    v = np.log1p(np.clip(v, 0, None))
    span = v.max() - v.min()
    return np.full(len(v), (lo + hi) / 2) if span <= 0 else lo + (v - v.min()) / span * (hi - lo)


def _popup_html(row: dict[str, Any], skip: set[str]) -> str:
    parts = []
    for k, v in row.items():
        if k in skip or v is None:
            continue
        shown = f"{v:,.3f}" if isinstance(v, float) else v
        parts.append(f"<b>{escape_html(k)}</b>: {escape_html(shown)}")
    return "<br>".join(parts)


def _colour(values: np.ndarray, cmap_name: str = "viridis", diverging: bool = False) -> list[str]:
    import matplotlib

    cmap = matplotlib.colormaps[cmap_name]
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    if len(v) == 0:
        return []
    if diverging:
        m = float(np.abs(v).max()) or 1.0
        t = (v / m + 1) / 2
    else:
        lo, hi = float(v.min()), float(v.max())
        t = np.full(len(v), 0.5) if hi <= lo else (v - lo) / (hi - lo)
    return [matplotlib.colors.to_hex(cmap(float(x))) for x in t]


def write_html(layers: MapLayers, path: str | Path, tiles: str | None = "OpenStreetMap") -> Path:
    """Write ``layers`` as one HTML file (atomically); data text is escaped (module doc).

    Args:
        layers: What to show.
        path: Destination ``.html`` file.
        tiles: folium tile layer name, or None for no base map.
    """
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is in requirements.txt
        raise ConfigError("HTML maps need folium: pip install -c constraints.txt folium") from exc

    south, west, north, east = layers.bounds()
    fmap = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=tiles, control_scale=True)
    fmap.fit_bounds([[south, west], [north, east]], padding=(20, 20))
    title = f'<h4 style="position:absolute;z-index:1000;left:50px;top:5px;background:white;padding:2px 6px">{escape_html(layers.title)}</h4>'
    fmap.get_root().html.add_child(folium.Element(title))
    if layers.cells is not None and layers.cells.height:
        group = folium.FeatureGroup(name="cells")
        diverging = bool((layers.cells[VALUE] < 0).any())
        colours = _colour(layers.cells[VALUE].to_numpy(), "RdBu_r" if diverging else "YlOrRd", diverging)
        for row, colour in zip(layers.cells.iter_rows(named=True), colours, strict=True):
            ring = [list(p) for p in h3.cell_to_boundary(row[H3_CELL])]
            folium.Polygon(
                ring,
                color=colour,
                weight=1,
                fill=True,
                fill_color=colour,
                fill_opacity=0.45,
                tooltip=folium.Tooltip(escape_html(f"{row[H3_CELL]}: {row[VALUE]:,.3g}")),
                popup=folium.Popup(_popup_html(row, set()), parse_html=False, max_width=320),
            ).add_to(group)
        group.add_to(fmap)
    if layers.lines is not None and layers.lines.height:
        group = folium.FeatureGroup(name="co-visit flows")
        widths = _scale(layers.lines[VALUE].to_numpy(), 1.0, 8.0)
        for row, w in zip(layers.lines.iter_rows(named=True), widths, strict=True):
            folium.PolyLine(
                [[row["lat_a"], row["lon_a"]], [row["lat_b"], row["lon_b"]]],
                weight=float(w),
                color="#ff7f0e",
                opacity=0.7,
                tooltip=folium.Tooltip(escape_html(f"{row[VALUE]:,.1f} co-visitors")),
            ).add_to(group)
        group.add_to(fmap)
    if layers.points is not None and layers.points.height:
        group = folium.FeatureGroup(name="POIs")
        pts = layers.points
        sizes = _scale(pts[VALUE].to_numpy(), 4.0, 14.0) if VALUE in pts.columns else np.full(pts.height, 6.0)
        for row, size in zip(pts.iter_rows(named=True), sizes, strict=True):
            role = row.get(ROLE) or "poi"
            colour = _ROLE_COLOURS.get(role, _ROLE_COLOURS["poi"])
            folium.CircleMarker(
                [row[LAT], row[LON]],
                radius=float(size if role == "poi" else 10.0),
                color=colour,
                fill=True,
                fill_color=colour,
                fill_opacity=0.8,
                tooltip=folium.Tooltip(escape_html(row.get(LABEL))),
                popup=folium.Popup(_popup_html(row, {ROLE, LABEL}), parse_html=False, max_width=320),
            ).add_to(group)
        group.add_to(fmap)
    folium.LayerControl().add_to(fmap)
    path = Path(path)
    atomic_write_text(path, fmap.get_root().render())
    return path


def write_png(layers: MapLayers, path: str | Path, label_top: int = 10) -> Path:
    """Write ``layers`` as a static PNG (lon / lat axes, no base map), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    south, west, north, east = layers.bounds()
    fig, ax = plt.subplots(figsize=(8, 7))
    if layers.cells is not None and layers.cells.height:
        polys = [[(lo, la) for la, lo in h3.cell_to_boundary(c)] for c in layers.cells[H3_CELL].to_list()]
        diverging = bool((layers.cells[VALUE] < 0).any())
        colours = _colour(layers.cells[VALUE].to_numpy(), "RdBu_r" if diverging else "YlOrRd", diverging)
        ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors="#555555", linewidths=0.4, alpha=0.6))
        # cells are specks on a country-wide map: mark each centre too, sized by |value|, and number them
        centres = np.asarray([h3.cell_to_latlng(c) for c in layers.cells[H3_CELL].to_list()])
        size = _scale(np.abs(layers.cells[VALUE].to_numpy()), 20.0, 220.0)
        ax.scatter(centres[:, 1], centres[:, 0], s=size, c=colours, edgecolors="black", linewidths=0.4, alpha=0.8, zorder=2)
        for i, (la, lo) in enumerate(centres[:label_top]):
            ax.annotate(str(i + 1), (lo, la), fontsize=7, xytext=(4, 4), textcoords="offset points", zorder=4)
    if layers.lines is not None and layers.lines.height:
        segs = [[(r["lon_a"], r["lat_a"]), (r["lon_b"], r["lat_b"])] for r in layers.lines.iter_rows(named=True)]
        widths = _scale(layers.lines[VALUE].to_numpy(), 0.5, 5.0)
        ax.add_collection(LineCollection(segs, linewidths=widths, colors="#ff7f0e", alpha=0.6))
    if layers.points is not None and layers.points.height:
        pts = layers.points
        roles = pts[ROLE].to_list() if ROLE in pts.columns else ["poi"] * pts.height
        sizes = _scale(pts[VALUE].to_numpy(), 12.0, 120.0) if VALUE in pts.columns else np.full(pts.height, 30.0)
        colours = [_ROLE_COLOURS.get(r or "poi", _ROLE_COLOURS["poi"]) for r in roles]
        sizes = np.where(np.asarray([r != "poi" for r in roles]), 160.0, sizes)
        ax.scatter(pts[LON].to_numpy(), pts[LAT].to_numpy(), s=sizes, c=colours, edgecolors="black", linewidths=0.4, zorder=3)
        for i, row in enumerate(pts.iter_rows(named=True)):
            if i < label_top or roles[i] != "poi":
                ax.annotate(escape_mpl(row.get(LABEL)), (row[LON], row[LAT]), fontsize=7, xytext=(4, 4),
                            textcoords="offset points", zorder=4)
    pad_lat = max((north - south) * 0.08, 0.002)
    pad_lon = max((east - west) * 0.08, 0.002)
    ax.set_xlim(west - pad_lon, east + pad_lon)
    ax.set_ylim(south - pad_lat, north + pad_lat)
    ax.set_aspect(1 / max(np.cos(np.radians((south + north) / 2)), 0.1))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(escape_mpl(layers.title))
    ax.grid(True, lw=0.3, alpha=0.5)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# builders: query result -> layers
# ---------------------------------------------------------------------------------------
def covisited_layers(result: pl.DataFrame, query: dict[str, Any]) -> MapLayers:
    """The query POI, its co-visited POIs (size: visitors) and flows to them."""
    if LAT not in result.columns:
        raise ConfigError("brand results have no coordinates to map; query a POI (--poi) for a map")
    value = "visitors" if "predicted_visitors" not in result.columns else "predicted_visitors"
    vals = result["visitors"].cast(pl.Float64).fill_null(result.get_column(value).cast(pl.Float64)).fill_null(0.0)
    others = result.with_columns(
        pl.col(NAME).fill_null(pl.col(POI_ID)).alias(LABEL), pl.lit("poi").alias(ROLE), vals.alias(VALUE)
    )
    me = pl.DataFrame(
        {LAT: [query[LAT]], LON: [query[LON]], LABEL: [query.get(NAME) or query[POI_ID]], ROLE: ["query"],
         POI_ID: [query[POI_ID]], VALUE: [None]},
        schema_overrides={VALUE: pl.Float64},
    )
    points = pl.concat([me, others], how="diagonal_relaxed")
    lines = result.select(
        pl.lit(query[LAT]).alias("lat_a"), pl.lit(query[LON]).alias("lon_a"),
        pl.col(LAT).alias("lat_b"), pl.col(LON).alias("lon_b"), vals.alias(VALUE),
    )
    return MapLayers(points=points, lines=lines, title=f"co-visited with {query.get(NAME) or query[POI_ID]}")


def hotspot_layers(result: pl.DataFrame, title: str = "hotspots") -> MapLayers:
    """Cells coloured by visitors (volume) or by mean residual."""
    value = "mean_residual" if "mean_residual" in result.columns else "visitors"
    cells = result.with_columns(pl.col(value).cast(pl.Float64).alias(VALUE))
    return MapLayers(cells=cells, title=title)


def whatif_layers(result: Any) -> MapLayers:
    """The venue, the comparison venue, and predicted flows to the top neighbours."""
    v = result.venue
    nb = result.neighbours
    others = nb.with_columns(
        pl.col(NAME).fill_null(pl.col(POI_ID)).alias(LABEL), pl.lit("poi").alias(ROLE),
        pl.col("predicted_visitors").alias(VALUE),
    )
    rows = [pl.DataFrame({LAT: [v["latitude"]], LON: [v["longitude"]], LABEL: [v["name"]], ROLE: ["venue"],
                          "naics_code": [v["naics_code"]], "total_predicted": [result.total_predicted]})]
    c = result.comparison
    if c is not None and c.get(LAT) is not None:
        rows.append(pl.DataFrame({LAT: [c[LAT]], LON: [c[LON]], LABEL: [c.get(NAME) or c[POI_ID]], ROLE: ["comparison"],
                                  POI_ID: [c[POI_ID]], "total_predicted": [c["total_predicted"]]}))
    points = pl.concat([*rows, others], how="diagonal_relaxed")
    lines = nb.select(
        pl.lit(v["latitude"]).alias("lat_a"), pl.lit(v["longitude"]).alias("lon_a"),
        pl.col(LAT).alias("lat_b"), pl.col(LON).alias("lon_b"), pl.col("predicted_visitors").alias(VALUE),
    )
    return MapLayers(points=points, lines=lines, title=f"what if: {v['name']} ({v['naics_code']})")


def points_layers(result: pl.DataFrame, title: str) -> MapLayers:
    """Any table with ``latitude, longitude`` as points (e.g. ``similar``)."""
    if LAT not in result.columns:
        raise ConfigError("this result has no coordinates to map")
    label = pl.col(NAME).fill_null(pl.col(POI_ID)) if NAME in result.columns else pl.col(result.columns[1]).cast(pl.String)
    return MapLayers(points=result.with_columns(label.alias(LABEL), pl.lit("poi").alias(ROLE)), title=title)
