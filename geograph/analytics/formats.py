"""Query results as a terminal table, CSV, JSON or GeoJSON (files written atomically)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import h3
import polars as pl

from geograph.constants import H3_CELL, LAT, LON
from geograph.errors import ConfigError
from geograph.utils.atomic import atomic_write_text

FORMATS = ("table", "csv", "json", "geojson")


def _clean(value: Any) -> Any:
    """JSON-safe value: NaN / inf -> None, nested containers cleaned."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(payload: Any) -> str:
    """Pretty JSON of a DataFrame (a list of row objects) or of plain containers."""
    if isinstance(payload, pl.DataFrame):
        payload = payload.to_dicts()
    return json.dumps(_clean(payload), indent=2, default=str) + "\n"


def to_geojson(df: pl.DataFrame, extra_features: list[dict] | None = None) -> str:
    """A FeatureCollection: points for rows with ``latitude, longitude``, hexagons for ``h3_cell`` rows.

    Every other column becomes a property. Coordinates follow RFC 7946 (longitude first).

    Raises:
        ConfigError: the table has neither coordinates nor H3 cells (e.g. brand results).
    """
    feats = list(extra_features or [])
    if H3_CELL in df.columns:
        for row in df.iter_rows(named=True):
            ring = [[lo, la] for la, lo in h3.cell_to_boundary(row[H3_CELL])]
            ring.append(ring[0])
            props = {k: v for k, v in row.items() if k not in (LAT, LON)}
            feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props})
    elif LAT in df.columns and LON in df.columns:
        for row in df.iter_rows(named=True):
            props = {k: v for k, v in row.items() if k not in (LAT, LON)}
            geom = {"type": "Point", "coordinates": [row[LON], row[LAT]]}
            feats.append({"type": "Feature", "geometry": geom, "properties": props})
    else:
        raise ConfigError(
            f"GeoJSON needs latitude/longitude or h3_cell columns; this result has {df.columns} "
            "(use --format json or csv)"
        )
    return json.dumps(_clean({"type": "FeatureCollection", "features": feats}), default=str) + "\n"


def point_feature(lat: float, lon: float, properties: dict) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, "properties": properties}


def render_table(df: pl.DataFrame, title: str | None = None, console: Any = None, floats: int = 3) -> None:
    """Print ``df`` as a rich table; every cell is plain text (no rich markup from data)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title=Text(title) if title else None, header_style="bold")
    for name, dtype in df.schema.items():
        table.add_column(Text(name), justify="right" if dtype.is_numeric() else "left")
    for row in df.iter_rows():
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append(Text("—", style="dim"))
            elif isinstance(v, float):
                cells.append(Text(f"{v:,.{floats}f}"))
            elif isinstance(v, int):
                cells.append(Text(f"{v:,}"))
            else:
                cells.append(Text(str(v)))
        table.add_row(*cells)
    console.print(table)


def table_text(df: pl.DataFrame, title: str | None = None, width: int = 160) -> str:
    """The rich table of ``df`` as plain text (for ``--format table --out FILE``)."""
    from rich.console import Console

    buf = io.StringIO()
    render_table(df, title, Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (the folder is created)."""
    path = Path(path)
    atomic_write_text(path, text)
    return path
