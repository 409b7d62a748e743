"""Polars expressions shared by the queries."""

from __future__ import annotations

import polars as pl

from geograph.constants import EARTH_RADIUS_KM


def haversine_expr(lat1: pl.Expr | float, lon1: pl.Expr | float, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance in km between two points given in degrees (a polars expression)."""
    lat1 = pl.lit(lat1) if not isinstance(lat1, pl.Expr) else lat1
    lon1 = pl.lit(lon1) if not isinstance(lon1, pl.Expr) else lon1
    p1, p2 = lat1.radians(), lat2.radians()
    dphi = p2 - p1
    dlmb = (lon2 - lon1).radians()
    a = (dphi / 2).sin() ** 2 + p1.cos() * p2.cos() * (dlmb / 2).sin() ** 2
    return 2 * EARTH_RADIUS_KM * a.clip(0.0, 1.0).sqrt().arcsin()
