"""Maps of query results: one self-contained HTML file (folium / Leaflet) and a static PNG (matplotlib).

A map is a :class:`MapLayers`: points (POIs, with popups), lines (co-visit flows) and H3
cells (coloured by a value). Builders turn each query's result into layers.

Both maps work offline and say what they show:

* The HTML inlines Leaflet's JavaScript and CSS (from the ``xstatic-leaflet`` package,
  icons as data URIs) instead of linking folium's CDNs, so it renders from ``file://``
  with no network. There is no tile layer by default (tiles need the network): a light
  basemap of US state and world country outlines shipped with geograph
  (:mod:`geograph.data.outlines`) is drawn under the data instead.
* Every map has a legend (a Leaflet control in the HTML, a matplotlib legend in the PNG):
  the queried POI (a star), the POIs (marker size: value), the flows (line width: value),
  the cells' colour scale, "no data" for cells without a value (grey, hatched in the PNG),
  and the outlines.
* PNG labels are placed greedily in screen space: a label that would overlap one already
  placed is moved to another corner of its point, or left out (:func:`place_labels`).

Every text that comes from data (names, brands, ids) is escaped before it reaches the
HTML: folium inserts tooltip text as raw HTML inside JavaScript template literals, and
popups and the legend are set as HTML (passed as JSON strings), so ``<``, ``>``, ``&``, quotes, backticks, ``$`` and backslashes are all
replaced by character references (a POI named ``<script>alert(1)</script>`` shows as that
text). In the PNG, ``$`` is escaped so matplotlib does not read a name as mathtext.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import h3
import numpy as np
import polars as pl

from geograph.constants import H3_CELL, LAT, LON, NAME, POI_ID
from geograph.data.outlines import COUNTRY, outlines_in
from geograph.errors import ConfigError
from geograph.utils.atomic import atomic_write, atomic_write_text

LABEL = "label"
VALUE = "value"
ROLE = "role"
POI = "poi"
QUERY = "query"
# role -> (colour, matplotlib marker, HTML symbol, legend text); the query roles are drawn on top, labelled
_ROLES: dict[str, tuple[str, str, str, str]] = {
    QUERY: ("#d62728", "*", "&#9733;", "queried POI"),
    "venue": ("#d62728", "*", "&#9733;", "what-if venue"),
    "comparison": ("#9467bd", "D", "&#9670;", "comparison POI"),
    POI: ("#1f77b4", "o", "&#9679;", "POI"),
}
FLOW_COLOUR = "#ff7f0e"
MISSING_COLOUR = "#bdbdbd"
SEA_COLOUR = "#eaf1f7"
LAND_COLOUR = "#fbfbf7"
COUNTRY_EDGE = "#9a9a9a"
STATE_EDGE = "#c4c4c4"
OUTLINES_TEXT = "state / country outlines (US Census 2016, Natural Earth 1:110m)"
LEGEND_CLASS = "geograph-legend"
# degrees of outlines drawn around the data, so a zoomed-out HTML map still has a basemap
_OUTLINE_MARGIN = 6.0
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
        cells: ``h3_cell, value`` (fill colour by value; null is drawn as "no data").
        title: Map title.
        value_name: What ``value`` is, for the legend and the colour scale (default ``"value"``).
        notes: Lines shown under the legend.
    """

    points: pl.DataFrame | None = None
    lines: pl.DataFrame | None = None
    cells: pl.DataFrame | None = None
    title: str = "geograph"
    value_name: str = VALUE
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


def _values(frame: pl.DataFrame) -> np.ndarray:
    """``value`` as float64 with null -> NaN."""
    return frame[VALUE].cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _scale(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Marker sizes / line widths in ``lo..hi`` by log1p of ``values`` (NaN -> ``lo``)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    if len(v) == 0:
        return v
    v = np.log1p(np.clip(v, 0, None))
    span = v.max() - v.min()
    return np.full(len(v), (lo + hi) / 2) if span <= 0 else lo + (v - v.min()) / span * (hi - lo)


def _range_text(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if not v.size:
        return "no values"
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:,.3g}" if lo == hi else f"{lo:,.3g} to {hi:,.3g}"


@dataclass(frozen=True)
class ColourScale:
    """The colour scale of cell values: sequential (YlOrRd) or, with negative values, diverging (RdBu_r) around 0.

    Attributes:
        name: What the colours mean (shown on the scale).
        vmin: Value of the lowest colour.
        vmax: Value of the highest colour.
        cmap: matplotlib colormap name.
    """

    name: str
    vmin: float
    vmax: float
    cmap: str

    @classmethod
    def for_values(cls, values: np.ndarray, name: str) -> ColourScale:
        """The scale spanning the finite ``values`` (NaN is "no data")."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if not v.size:
            return cls(name, 0.0, 1.0, "YlOrRd")
        if (v < 0).any():
            m = float(np.abs(v).max())
            return cls(name, -m, m, "RdBu_r")
        return cls(name, float(v.min()), float(v.max()), "YlOrRd")

    def fractions(self, values: np.ndarray) -> np.ndarray:
        """Positions ``0..1`` on the scale (0.5 when it spans one value; NaN stays NaN)."""
        v = np.asarray(values, dtype=np.float64)
        if self.vmax <= self.vmin:
            return np.where(np.isfinite(v), 0.5, np.nan)
        return np.clip((v - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0)

    def hex(self, values: np.ndarray) -> list[str]:
        """One colour per value; NaN -> the "no data" grey."""
        import matplotlib

        cmap = matplotlib.colormaps[self.cmap]
        return [MISSING_COLOUR if not np.isfinite(t) else matplotlib.colors.to_hex(cmap(float(t)))
                for t in self.fractions(values)]

    def mappable(self) -> Any:
        """A matplotlib ``ScalarMappable`` for a colorbar."""
        import matplotlib
        from matplotlib.cm import ScalarMappable

        hi = self.vmax if self.vmax > self.vmin else self.vmin + 1.0
        return ScalarMappable(matplotlib.colors.Normalize(self.vmin, hi), matplotlib.colormaps[self.cmap])

    def css_gradient(self, steps: int = 9) -> str:
        """A CSS ``linear-gradient`` from the lowest to the highest colour."""
        stops = self.hex(np.linspace(self.vmin, self.vmax, steps)) if self.vmax > self.vmin else self.hex(np.zeros(1)) * 2
        return f"linear-gradient(to right, {', '.join(stops)})"


def _popup_html(row: dict[str, Any], skip: set[str]) -> str:
    parts = []
    for k, v in row.items():
        if k in skip or v is None:
            continue
        shown = f"{v:,.3f}" if isinstance(v, float) else v
        parts.append(f"<b>{escape_html(k)}</b>: {escape_html(shown)}")
    return "<br>".join(parts)


def _roles(points: pl.DataFrame) -> list[str]:
    if ROLE not in points.columns:
        return [POI] * points.height
    return [r if r in _ROLES else POI for r in points[ROLE].fill_null(POI).to_list()]


def _outline_features(layers: MapLayers, margin: float) -> list[dict[str, Any]]:
    south, west, north, east = layers.bounds()
    return list(outlines_in(south - margin, west - margin, north + margin, east + margin))


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JavaScript and CSS (icons inlined as data URIs) from the ``xstatic-leaflet`` package."""
    try:
        import xstatic.pkg.leaflet as xleaflet
    except ImportError as exc:  # pragma: no cover - xstatic-leaflet is in requirements.txt
        raise ConfigError("offline HTML maps need xstatic-leaflet: pip install -c constraints.txt xstatic-leaflet") from exc
    base = Path(xleaflet.BASE_DIR)
    js = (base / "leaflet.js").read_text(encoding="utf-8")
    if "</script" in js.lower():  # pragma: no cover - would end the inline script early
        raise ConfigError(f"{base / 'leaflet.js'} cannot be inlined: it contains '</script'")

    def data_uri(m: re.Match[str]) -> str:
        return f"url(data:image/png;base64,{base64.b64encode((base / m.group(1)).read_bytes()).decode()})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", data_uri, (base / "leaflet.css").read_text(encoding="utf-8"))
    return js, css


_LEGEND_CSS = f"""
.leaflet-container {{ background: {SEA_COLOUR}; }}
.{LEGEND_CLASS} {{ background: rgba(255,255,255,0.92); padding: 6px 8px; font: 12px/1.35 sans-serif;
  border-radius: 4px; box-shadow: 0 0 4px rgba(0,0,0,0.3); max-width: 280px; }}
.{LEGEND_CLASS} .gg-title {{ font-weight: bold; margin-bottom: 4px; }}
.{LEGEND_CLASS} .gg-row {{ display: flex; align-items: center; gap: 6px; margin: 2px 0; }}
.{LEGEND_CLASS} .gg-sym {{ display: inline-block; width: 18px; text-align: center; font-size: 15px; }}
.{LEGEND_CLASS} .gg-bar {{ height: 10px; width: 170px; border: 1px solid #777; }}
.{LEGEND_CLASS} .gg-ticks {{ display: flex; justify-content: space-between; width: 172px; font-size: 11px; }}
.{LEGEND_CLASS} .gg-note {{ color: #555; font-size: 11px; }}
.geograph-star {{ font-size: 26px; line-height: 26px; text-align: center;
  text-shadow: -1px -1px 0 #000, 1px -1px 0 #000, -1px 1px 0 #000, 1px 1px 0 #000; }}
"""


def _legend_html(layers: MapLayers, scale: ColourScale | None, outlines: bool) -> str:
    """The legend's HTML; every text from data is escaped."""
    rows = [f'<div class="gg-title">{escape_html(layers.title)}</div>']

    def row(symbol: str, text: str, style: str = "") -> None:
        rows.append(f'<div class="gg-row"><span class="gg-sym" style="{style}">{symbol}</span>'
                    f"<span>{text}</span></div>")

    vname = escape_html(layers.value_name)
    if layers.points is not None and layers.points.height:
        pts = layers.points
        roles = _roles(pts)
        for role in (QUERY, "venue", "comparison"):
            if role in roles:
                colour, _, symbol, text = _ROLES[role]
                row(symbol, f"{text} (labelled)", f"color:{colour}")
        if POI in roles:
            colour, _, symbol, text = _ROLES[POI]
            sized = ""
            if VALUE in pts.columns:
                v = _values(pts.filter(pl.Series(roles) == POI))
                sized = f" (size: {vname}, {_range_text(v)})"
            row(symbol, f"{text}{sized}", f"color:{colour}")
    if layers.lines is not None and layers.lines.height:
        row('<span style="display:inline-block;width:18px;height:4px;vertical-align:middle;'
            f'background:{FLOW_COLOUR}"></span>',
            f"co-visit flow (width: {vname}, {_range_text(_values(layers.lines))})")
    if layers.cells is not None and layers.cells.height and scale is not None:
        mid = "0" if scale.vmin < 0 < scale.vmax else f"{(scale.vmin + scale.vmax) / 2:,.3g}"
        rows.append(f'<div>H3 cells: {escape_html(scale.name)}</div>'
                    f'<div class="gg-bar" style="background:{scale.css_gradient()}"></div>'
                    f'<div class="gg-ticks"><span>{scale.vmin:,.3g}</span><span>{mid}</span>'
                    f"<span>{scale.vmax:,.3g}</span></div>")
        rows.append('<div class="gg-note">circles mark cell centres (size: |value|)</div>')
        if not np.isfinite(_values(layers.cells)).all():
            row("&#9632;", "no data", f"color:{MISSING_COLOUR}")
    if outlines:
        row("&#9633;", escape_html(OUTLINES_TEXT), f"color:{COUNTRY_EDGE}")
    rows += [f'<div class="gg-note">{escape_html(n)}</div>' for n in layers.notes]
    return "".join(rows)


# scripts of the folium elements that need no jQuery (folium's ``Popup`` parses its HTML with
# ``$(...)``, which an offline page does not load); ``map`` / ``layer`` is the parent's JS name and
# every value is passed as JSON
_LEGEND_JS = (
    "var {{ this.get_name() }} = L.control({position: 'bottomright'});"
    "{{ this.get_name() }}.onAdd = function (map) {"
    "  var div = L.DomUtil.create('div', {{ this.values.css_class|tojson }});"
    "  div.innerHTML = {{ this.values.html|tojson }};"
    "  L.DomEvent.disableClickPropagation(div);"
    "  return div;"
    "};"
    "{{ this.get_name() }}.addTo({{ this._parent.get_name() }});"
)
_POPUP_JS = "{{ this._parent.get_name() }}.bindPopup({{ this.values.html|tojson }}, {maxWidth: 320});"
# fitBounds without animation, so the first frame already shows the data
_FIT_JS = "{{ this._parent.get_name() }}.fitBounds({{ this.values.bounds|tojson }}, {padding: [30, 30], animate: false});"


def _script(name: str, script: str, **values: Any) -> Any:
    """A folium element that adds ``script`` (a Jinja2 template of ``this.values``) to the map's script."""
    from branca.element import MacroElement
    from jinja2 import Template

    element = MacroElement()
    element._name = name
    element._template = Template("{% macro script(this, kwargs) %}" + script + "{% endmacro %}")
    element.values = values
    return element


def _outlines_geojson(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"kind": f["kind"]},
         "geometry": {"type": "MultiPolygon", "coordinates": [[[list(p) for p in r]] for r in f["rings"]]}}
        for f in features
    ]}


def _outline_style(feature: dict[str, Any]) -> dict[str, Any]:
    if feature["properties"]["kind"] == COUNTRY:
        return {"color": COUNTRY_EDGE, "weight": 1, "fillColor": LAND_COLOUR, "fillOpacity": 1.0}
    return {"color": STATE_EDGE, "weight": 0.8, "fill": False}


def write_html(layers: MapLayers, path: str | Path, tiles: str | None = None) -> Path:
    """Write ``layers`` as one self-contained HTML file (atomically); data text is escaped (module doc).

    Args:
        layers: What to show.
        path: Destination ``.html`` file.
        tiles: A folium tile layer name drawn over the outlines (it needs the network when the
            page is opened), or None (default) for the outlines alone: the page then loads
            nothing from the network.
    """
    try:
        import folium
    except ImportError as exc:  # pragma: no cover - folium is in requirements.txt
        raise ConfigError("HTML maps need folium: pip install -c constraints.txt folium") from exc

    south, west, north, east = layers.bounds()
    fmap = folium.Map(location=[(south + north) / 2, (west + east) / 2], tiles=None, control_scale=True)
    fmap.default_js = []  # folium's CDN links: Leaflet is inlined below, jQuery / Bootstrap are not used
    fmap.default_css = []
    js, css = leaflet_assets()
    header = fmap.get_root().header
    header.add_child(folium.Element(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(folium.Element(f"<style>{_LEGEND_CSS}</style>"), name="geograph_css")
    header.add_child(folium.Element(f"<script>{js}</script>"), name="leaflet")
    _script("GeographFitBounds", _FIT_JS, bounds=[[south, west], [north, east]]).add_to(fmap)
    features = _outline_features(layers, _OUTLINE_MARGIN)
    if features:
        folium.GeoJson(_outlines_geojson(features), name="outlines", style_function=_outline_style,
                       interactive=False).add_to(fmap)
    if tiles is not None:
        folium.TileLayer(tiles, opacity=0.6).add_to(fmap)
    scale = None
    if layers.cells is not None and layers.cells.height:
        group = folium.FeatureGroup(name="cells")
        values = _values(layers.cells)
        scale = ColourScale.for_values(values, layers.value_name)
        for row, colour, v in zip(layers.cells.iter_rows(named=True), scale.hex(values), values, strict=True):
            ring = [list(p) for p in h3.cell_to_boundary(row[H3_CELL])]
            shown = f"{v:,.3g}" if np.isfinite(v) else "no data"
            folium.Polygon(
                ring,
                color="#555555" if np.isfinite(v) else "#777777",
                weight=1,
                dash_array=None if np.isfinite(v) else "4 3",
                fill=True,
                fill_color=colour,
                fill_opacity=0.6,
                tooltip=folium.Tooltip(escape_html(f"{row[H3_CELL]}: {shown}")),
            ).add_to(group).add_child(_script("GeographPopup", _POPUP_JS, html=_popup_html(row, set())))
        # cells are specks on a country-wide map: mark each centre too, sized by |value|
        radii = _scale(np.abs(values), 4.0, 12.0)
        for row, colour, r in zip(layers.cells.iter_rows(named=True), scale.hex(values), radii, strict=True):
            folium.CircleMarker(list(h3.cell_to_latlng(row[H3_CELL])), radius=float(r), color="#333333", weight=1,
                                fill=True, fill_color=colour, fill_opacity=0.9).add_to(group)
        group.add_to(fmap)
    if layers.lines is not None and layers.lines.height:
        group = folium.FeatureGroup(name="co-visit flows")
        values = _values(layers.lines)
        widths = _scale(values, 1.0, 8.0)
        for row, w, v in zip(layers.lines.iter_rows(named=True), widths, values, strict=True):
            folium.PolyLine(
                [[row["lat_a"], row["lon_a"]], [row["lat_b"], row["lon_b"]]],
                weight=float(w),
                color=FLOW_COLOUR,
                opacity=0.7,
                tooltip=folium.Tooltip(escape_html(f"{layers.value_name}: {v:,.1f}" if np.isfinite(v) else "no data")),
            ).add_to(group)
        group.add_to(fmap)
    if layers.points is not None and layers.points.height:
        group = folium.FeatureGroup(name="POIs")
        pts = layers.points
        roles = _roles(pts)
        sizes = _scale(_values(pts), 4.0, 14.0) if VALUE in pts.columns else np.full(pts.height, 6.0)
        marked = []
        for row, size, role in zip(pts.iter_rows(named=True), sizes, roles, strict=True):
            popup = _script("GeographPopup", _POPUP_JS, html=_popup_html(row, {ROLE, LABEL}))
            if role != POI:
                marked.append((row, role, popup))
                continue
            folium.CircleMarker(
                [row[LAT], row[LON]], radius=float(size), color="#08306b", weight=1, fill=True,
                fill_color=_ROLES[POI][0], fill_opacity=0.8,
                tooltip=folium.Tooltip(escape_html(row.get(LABEL))),
            ).add_to(group).add_child(popup)
        for i, (row, role, popup) in enumerate(marked):  # markers sit above the paths: the query stays on top
            colour, _, symbol, text = _ROLES[role]
            icon = folium.DivIcon(html=f'<div class="geograph-star" style="color:{colour}">{symbol}</div>',
                                  icon_size=(26, 26), icon_anchor=(13, 13), class_name="geograph-marked")
            folium.Marker(
                [row[LAT], row[LON]], icon=icon, z_index_offset=1000,
                tooltip=folium.Tooltip(escape_html(f"{text}: {row.get(LABEL)}"), permanent=True,
                                       direction="right" if i % 2 == 0 else "left", offset=(14 if i % 2 == 0 else -14, 0)),
            ).add_to(group).add_child(popup)
        group.add_to(fmap)
    legend = _legend_html(layers, scale, bool(features))
    _script("GeographLegend", _LEGEND_JS, html=legend, css_class=LEGEND_CLASS).add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    path = Path(path)
    atomic_write_text(path, fmap.get_root().render())
    return path


# ---------------------------------------------------------------------------------------
# PNG
# ---------------------------------------------------------------------------------------
# label offsets (points) tried in order: above right, above left, below right, below left
_OFFSETS = ((5, 4, "left", "bottom"), (-5, 4, "right", "bottom"), (5, -4, "left", "top"), (-5, -4, "right", "top"))


def place_labels(ax: Any, items: Sequence[tuple[float, float, str]], fontsize: float = 7.0) -> list[Any]:
    """Annotate ``(x, y, text)`` items in priority order without overlaps.

    Greedy, in display space: each label tries the four corners of its point and takes the
    first one that stays inside the axes and overlaps no label placed before it; a label
    with no free corner is left out. Place labels after the figure's layout is final
    (``tight_layout``), since moving the axes moves the points.

    Args:
        ax: matplotlib axes, limits set.
        items: ``(x, y, text)`` in data coordinates, most important first.
        fontsize: Label font size (default 7).

    Returns:
        The placed annotations.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []
    boxes: list[Any] = []
    for x, y, text in items:
        for dx, dy, ha, va in _OFFSETS:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                              fontsize=fontsize, zorder=6,
                              bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
            box = ann.get_window_extent(renderer).padded(1.5)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in boxes):
                placed.append(ann)
                boxes.append(box)
                break
            ann.remove()
    return placed


def _draw_outlines(ax: Any, features: list[dict[str, Any]]) -> bool:
    from matplotlib.collections import PolyCollection

    countries = [r for f in features if f["kind"] == COUNTRY for r in f["rings"]]
    states = [r for f in features if f["kind"] != COUNTRY for r in f["rings"]]
    if countries:
        ax.add_collection(PolyCollection(countries, facecolors=LAND_COLOUR, edgecolors=COUNTRY_EDGE, linewidths=0.7, zorder=0))
    if states:
        ax.add_collection(PolyCollection(states, facecolors="none", edgecolors=STATE_EDGE, linewidths=0.5, zorder=0.5))
    return bool(features)


def _view(south: float, west: float, north: float, east: float) -> tuple[float, float, float, float]:
    """``bounds`` padded by 8% and widened so the shown area is no flatter or taller than 2:1 on screen."""
    pad_lat = max((north - south) * 0.08, 0.002)
    pad_lon = max((east - west) * 0.08, 0.002)
    south, west, north, east = south - pad_lat, west - pad_lon, north + pad_lat, east + pad_lon
    k = max(np.cos(np.radians((south + north) / 2)), 0.1)  # screen width of a degree of longitude
    w, h = (east - west) * k, north - south
    if h < w / 2:
        grow = (w / 2 - h) / 2
        south, north = max(south - grow, -89.0), min(north + grow, 89.0)
    elif w < h / 2:
        grow = (h / 2 - w) / 2 / k
        west, east = west - grow, east + grow
    return south, west, north, east


def write_png(layers: MapLayers, path: str | Path, label_top: int = 10) -> Path:
    """Write ``layers`` as a static PNG (:func:`png_figure`), atomically.

    Args:
        layers: What to show.
        path: Destination ``.png`` file.
        label_top: See :func:`png_figure` (default 10).
    """
    import matplotlib.pyplot as plt

    fig = png_figure(layers, label_top)
    path = Path(path)
    try:
        with atomic_write(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def png_figure(layers: MapLayers, label_top: int = 10) -> Any:
    """The static map of ``layers``: the shipped outlines, the data, a legend and a colour scale.

    Args:
        layers: What to show.
        label_top: Label at most this many POIs or cells (largest value first; the queried POI is
            always tried first); labels that would overlap are left out (default 10).

    Returns:
        The matplotlib figure (its layout is final; close it after saving).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    south, west, north, east = _view(*layers.bounds())
    k = max(np.cos(np.radians((south + north) / 2)), 0.1)
    fig, ax = plt.subplots(figsize=(9, float(np.clip(7 * (north - south) / ((east - west) * k) + 2.2, 5, 10))),
                           layout="constrained")
    ax.set_facecolor(SEA_COLOUR)
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    ax.set_aspect(1 / k)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.yaxis.set_major_locator(MaxNLocator(6))
    ax.ticklabel_format(useOffset=False)
    handles: list[Any] = []
    labels: list[tuple[float, float, str]] = []
    if _draw_outlines(ax, list(outlines_in(south, west, north, east))):
        handles.append(Patch(facecolor=LAND_COLOUR, edgecolor=COUNTRY_EDGE, label=OUTLINES_TEXT))
    if layers.cells is not None and layers.cells.height:
        cells = layers.cells
        values = _values(cells)
        scale = ColourScale.for_values(values, layers.value_name)
        colours = scale.hex(values)
        have = np.isfinite(values)
        polys = [[(lo, la) for la, lo in h3.cell_to_boundary(c)] for c in cells[H3_CELL].to_list()]
        ax.add_collection(PolyCollection([p for p, h in zip(polys, have, strict=True) if h],
                                         facecolors=[c for c, h in zip(colours, have, strict=True) if h],
                                         edgecolors="#555555", linewidths=0.4, alpha=0.7, zorder=1))
        if not have.all():
            ax.add_collection(PolyCollection([p for p, h in zip(polys, have, strict=True) if not h], facecolors=MISSING_COLOUR,
                                             edgecolors="#666666", hatch="////", linewidths=0.4, zorder=1))
            handles.append(Patch(facecolor=MISSING_COLOUR, edgecolor="#666666", hatch="////", label="cell with no data"))
        # cells are specks on a country-wide map: mark each centre too, sized by |value|, numbered by rank
        centres = np.asarray([h3.cell_to_latlng(c) for c in cells[H3_CELL].to_list()])
        size = _scale(np.abs(values), 20.0, 220.0)
        ax.scatter(centres[:, 1], centres[:, 0], s=size, c=colours, edgecolors="black", linewidths=0.4, alpha=0.85, zorder=2)
        fig.colorbar(scale.mappable(), ax=ax, shrink=0.7, pad=0.02, label=f"H3 cell {escape_mpl(scale.name)}")
        handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="black",
                              label=f"cell centre (size: |{escape_mpl(layers.value_name)}|; number: row of the table)"))
        labels += [(lo, la, str(i + 1)) for i, (la, lo) in enumerate(centres[:label_top])]
    if layers.lines is not None and layers.lines.height:
        values = _values(layers.lines)
        segs = [[(r["lon_a"], r["lat_a"]), (r["lon_b"], r["lat_b"])] for r in layers.lines.iter_rows(named=True)]
        ax.add_collection(LineCollection(segs, linewidths=_scale(values, 0.5, 5.0), colors=FLOW_COLOUR, alpha=0.6, zorder=2))
        handles.append(Line2D([], [], color=FLOW_COLOUR, lw=3,
                              label=f"co-visit flow (width: {escape_mpl(layers.value_name)}, {_range_text(values)})"))
    if layers.points is not None and layers.points.height:
        pts = layers.points
        roles = np.asarray(_roles(pts))
        values = _values(pts) if VALUE in pts.columns else np.full(pts.height, np.nan)
        sizes = _scale(values, 12.0, 120.0) if VALUE in pts.columns else np.full(pts.height, 30.0)
        plain = roles == POI
        if plain.any():
            ax.scatter(pts[LON].to_numpy()[plain], pts[LAT].to_numpy()[plain], s=sizes[plain], c=_ROLES[POI][0],
                       edgecolors="black", linewidths=0.4, zorder=3)
            sized = f" (size: {escape_mpl(layers.value_name)}, {_range_text(values[plain])})" if VALUE in pts.columns else ""
            handles.append(Line2D([], [], ls="", marker="o", mfc=_ROLES[POI][0], mec="black", label=f"POI{sized}"))
        names = [escape_mpl(x) for x in pts[LABEL].to_list()] if LABEL in pts.columns else [""] * pts.height
        lats, lons = pts[LAT].to_numpy(), pts[LON].to_numpy()
        special = []
        for role in (QUERY, "venue", "comparison"):
            mask = roles == role
            if mask.any():
                colour, marker, _, text = _ROLES[role]
                ax.scatter(lons[mask], lats[mask], s=340 if marker == "*" else 110, c=colour, marker=marker,
                           edgecolors="black", linewidths=0.9, zorder=5)
                handles.append(Line2D([], [], ls="", marker=marker, ms=13 if marker == "*" else 8, mfc=colour,
                                      mec="black", label=text))
                special += [(lons[i], lats[i], names[i]) for i in np.flatnonzero(mask)]
        order = np.flatnonzero(plain)[np.argsort(-np.nan_to_num(values[plain], nan=-np.inf), kind="stable")]
        labels = special + [(lons[i], lats[i], names[i]) for i in order[:label_top]] + labels
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(escape_mpl(layers.title))
    ax.grid(True, lw=0.3, alpha=0.5, zorder=0.2)
    if layers.notes:
        handles += [Patch(color="none", label=escape_mpl(n)) for n in layers.notes]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.canvas.draw()  # the layout is final: freeze it, then place labels where they will be drawn
    fig.set_layout_engine("none")
    place_labels(ax, labels)
    return fig


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
        pl.col(NAME).fill_null(pl.col(POI_ID)).alias(LABEL), pl.lit(POI).alias(ROLE), vals.alias(VALUE)
    )
    me = pl.DataFrame(
        {LAT: [query[LAT]], LON: [query[LON]], LABEL: [query.get(NAME) or query[POI_ID]], ROLE: [QUERY],
         POI_ID: [query[POI_ID]], VALUE: [None]},
        schema_overrides={VALUE: pl.Float64},
    )
    points = pl.concat([me, others], how="diagonal_relaxed")
    lines = result.select(
        pl.lit(query[LAT]).alias("lat_a"), pl.lit(query[LON]).alias("lon_a"),
        pl.col(LAT).alias("lat_b"), pl.col(LON).alias("lon_b"), vals.alias(VALUE),
    )
    vname = "visitors" if value == "visitors" else "visitors (observed, else predicted)"
    return MapLayers(points=points, lines=lines, title=f"co-visited with {query.get(NAME) or query[POI_ID]}",
                     value_name=vname)


def hotspot_layers(result: pl.DataFrame, title: str = "hotspots") -> MapLayers:
    """Cells coloured by visitors (volume) or by mean residual."""
    value = "mean_residual" if "mean_residual" in result.columns else "visitors"
    cells = result.with_columns(pl.col(value).cast(pl.Float64).fill_nan(None).alias(VALUE))
    return MapLayers(cells=cells, title=title, value_name=value.replace("_", " "))


def whatif_layers(result: Any) -> MapLayers:
    """The venue, the comparison venue, and predicted flows to the top neighbours."""
    v = result.venue
    nb = result.neighbours
    others = nb.with_columns(
        pl.col(NAME).fill_null(pl.col(POI_ID)).alias(LABEL), pl.lit(POI).alias(ROLE),
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
    return MapLayers(points=points, lines=lines, title=f"what if: {v['name']} ({v['naics_code']})",
                     value_name="predicted visitors")


def points_layers(result: pl.DataFrame, title: str, query: dict[str, Any] | None = None) -> MapLayers:
    """Any table with ``latitude, longitude`` as points (e.g. ``similar``), and the queried POI when given.

    Args:
        result: The table; a ``similarity`` column sizes the markers.
        title: Map title.
        query: The queried POI (``poi_id, latitude, longitude``, optional ``name``), marked as
            such; None (default) when the query was not a POI.
    """
    if LAT not in result.columns:
        raise ConfigError("this result has no coordinates to map")
    label = pl.col(NAME).fill_null(pl.col(POI_ID)) if NAME in result.columns else pl.col(result.columns[1]).cast(pl.String)
    points = result.with_columns(label.alias(LABEL), pl.lit(POI).alias(ROLE))
    value_name = VALUE
    if "similarity" in result.columns:
        points = points.with_columns(pl.col("similarity").cast(pl.Float64).alias(VALUE))
        value_name = "similarity"
    if query is not None:
        me = pl.DataFrame({LAT: [query[LAT]], LON: [query[LON]], LABEL: [query.get(NAME) or query[POI_ID]],
                           ROLE: [QUERY], POI_ID: [query[POI_ID]]})
        points = pl.concat([me, points], how="diagonal_relaxed")
    return MapLayers(points=points, title=title, value_name=value_name)
