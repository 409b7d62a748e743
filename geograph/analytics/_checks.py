"""Argument checks shared by the analytics queries: every bad value raises a geograph error
that names it, says what was expected and, for unknown ids and brands, suggests close matches."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

import numpy as np
import polars as pl

from geograph.constants import BRAND_COL, LAT, LON, NAICS_CODE, POI_ID, STATE
from geograph.data.naics import NAICSTaxonomy
from geograph.data.regions import expected_region, normalize_region
from geograph.errors import ConfigError, DataValidationError

MAX_SUGGESTIONS = 3
# difflib compares candidates in pure Python (tens of µs each): past this many, candidates
# are first scored in polars (characters equal at the same position counted from the start
# and from the end, plus shared character bigrams) and difflib sees the best _SHORTLIST.
# About 1 s for 1M POI ids on the error path (benchmarks/queries.py).
_DIRECT_MATCH_LIMIT = 2_000
_SHORTLIST = 200
_POSITIONS = 10


def _shortlist(value: str, cands: pl.Series) -> pl.Series:
    low = value.lower()
    lower = cands.str.to_lowercase()
    k = min(len(low), _POSITIONS)
    terms = [(lower.str.slice(i, 1) == low[i]).cast(pl.Int32) for i in range(k)]
    terms += [(lower.str.slice(-(i + 1), 1) == low[-(i + 1)]).cast(pl.Int32) for i in range(k)]
    grams = sorted({low[i : i + 2] for i in range(len(low) - 1)})[: 2 * _POSITIONS]
    terms += [lower.str.contains(g, literal=True).cast(pl.Int32) for g in grams]
    score = pl.select(pl.sum_horizontal(terms)).to_series()
    # ties broken by the text: the candidates come from ``unique()``, whose order varies between
    # runs, and the suggestions did too when ties straddled the cut
    short = pl.DataFrame({"c": cands, "s": score}).sort(["s", "c"], descending=[True, False]).head(_SHORTLIST)
    return short["c"]


def close_matches(value: str, candidates: pl.Series, n: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to ``n`` entries of ``candidates`` that look like ``value`` (difflib ratio >= 0.6,
    then case-insensitively)."""
    cands = candidates.drop_nulls().cast(pl.String)
    if cands.len() > _DIRECT_MATCH_LIMIT and value:
        cands = _shortlist(value, cands)
    words = list(dict.fromkeys(cands.to_list()))
    found = _best(value, words, n)
    if not found:  # case-insensitive second try ("bluebird coffee" -> "Bluebird Coffee")
        lower_map = {w.lower(): w for w in words}
        found = [lower_map[w] for w in _best(value.lower(), list(lower_map), n)]
    return found


def _best(value: str, words: list[str], n: int, cutoff: float = 0.6) -> list[str]:
    """Like ``difflib.get_close_matches`` (ratio >= ``cutoff``, best first), but ties of the
    ratio go to the longest shared prefix + suffix, then to the text (difflib keeps the
    lexically largest: 'poi_00042' would suggest 'poi_000429' before 'poi_000042')."""
    sm = difflib.SequenceMatcher()
    sm.set_seq2(value)
    scored = []
    for w in words:
        sm.set_seq1(w)
        if sm.real_quick_ratio() >= cutoff and sm.quick_ratio() >= cutoff:
            r = sm.ratio()
            if r >= cutoff:
                pre = len(os.path.commonprefix([value, w]))
                suf = len(os.path.commonprefix([value[::-1], w[::-1]]))
                scored.append((-round(r, 9), -(pre + suf), w))
    return [w for *_, w in sorted(scored)[:n]]


def unknown_value_error(what: str, value: str, candidates: pl.Series, field: str) -> DataValidationError:
    """``unknown POI id 'p1x'; did you mean 'p01', 'p11'?`` (or a plain message without matches)."""
    found = close_matches(value, candidates)
    hint = f"; did you mean {', '.join(repr(f) for f in found)}?" if found else "; no similar value found"
    return DataValidationError(f"unknown {what} {value!r}{hint}", field=field)


def check_naics(code: str | int) -> str:
    """The normalised 6-digit 2022 NAICS code, or a DataValidationError with the closest prefix."""
    try:
        return NAICSTaxonomy().validate(code)
    except ValueError as exc:
        raise DataValidationError(f"invalid NAICS code: {exc}", field=NAICS_CODE) from None


def check_level(level: int) -> int:
    """A NAICS hierarchy level (number of digits, 2..6)."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 2 <= int(level) <= 6:
        raise ConfigError(f"NAICS level must be 2..6 digits, got {level!r}")
    return int(level)


def check_lat_lon(lat: float, lon: float) -> tuple[float, float]:
    """Finite WGS84 degrees: latitude in [-90, 90], longitude in [-180, 180]."""
    try:
        la, lo = float(lat), float(lon)
    except (TypeError, ValueError):
        raise DataValidationError(f"coordinates must be numbers, got ({lat!r}, {lon!r})") from None
    if not np.isfinite(la) or not -90.0 <= la <= 90.0:
        raise DataValidationError(f"latitude must be in [-90, 90] degrees, got {lat}", field=LAT)
    if not np.isfinite(lo) or not -180.0 <= lo <= 180.0:
        raise DataValidationError(f"longitude must be in [-180, 180] degrees, got {lon}", field=LON)
    return la, lo


def check_state(state: str | None) -> str | None:
    """The canonical region key of ``state`` (``"ca"`` -> ``"CA"``, ``"on"`` -> ``"CA-ON"``,
    ``"fi-18"`` -> ``"FI-18"``; see :mod:`geograph.data.regions`), or None."""
    if state is None:
        return None
    try:
        return normalize_region(str(state))
    except ValueError:
        raise DataValidationError(
            f"unknown state code {state!r}; {expected_region(str(state))}", field=STATE
        ) from None


def check_resolution(resolution: int) -> int:
    """An H3 resolution 0..15."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 0 <= resolution <= 15:
        raise ConfigError(f"h3 resolution must be 0..15, got {resolution!r}")
    return int(resolution)


def check_positive(name: str, value: float | None, *, integer: bool = False) -> None:
    """``value`` is None or > 0 (an int when ``integer``)."""
    if value is None:
        return
    if integer and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if not np.isfinite(float(value)) or value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def poi_or_brand(poi: str | None, brand: str | None) -> None:
    """Exactly one of ``poi`` and ``brand``."""
    if (poi is None) == (brand is None):
        raise ConfigError(f"give exactly one of a POI id ({POI_ID}) or a {BRAND_COL}, got poi={poi!r}, brand={brand!r}")
