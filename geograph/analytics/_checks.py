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
# A source keeps a Vocabulary of its POI ids and brands, which gives the same shortlist from
# arrays built once (benchmarks/queries.py: "unknown id (suggestions)").
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


class Vocabulary:
    """The distinct values of a column (POI ids, brands), sorted, with the arrays that give
    :func:`_shortlist`'s pre-score of all of them at once.

    ``_shortlist`` scores a value against every candidate with some 40 polars string
    expressions (about 1 s for 1M POI ids). The same score from arrays: the characters at the
    first and last ``_POSITIONS`` places of every lower-cased candidate as small integer codes
    (one column per place), and for every character bigram the rows that contain it. A query
    then compares 20 integer columns and marks the rows of at most 20 bigrams. Memory: about
    60 bytes per candidate of 10 characters beside the values themselves.

    Args:
        candidates: The values (nulls dropped, duplicates kept once).
    """

    def __init__(self, candidates: pl.Series) -> None:
        words = candidates.drop_nulls().cast(pl.String).unique().sort()
        self.words = words
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.int64] | None = None

    def __len__(self) -> int:
        return self.words.len()

    def __repr__(self) -> str:
        return f"Vocabulary({self.words.len()} values)"

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._index is None:  # callers hold the owning source's lock (or own the object)
            lower = self.words.str.to_lowercase()
            n = lower.len()
            width = max(int(lower.str.len_chars().max() or 0), 1)
            # one code point per cell, 0 past the end of a value (polars slices characters too)
            chars = np.array(lower.to_list(), dtype=f"<U{width}").view(np.uint32).reshape(n, width)
            # code points -> 1..K in code point order (0 stays "no character"), so a bigram is one
            # small integer; a lookup table, as np.unique sorts all the cells (several times slower)
            table = np.zeros(int(chars.max()) + 1, dtype=np.int64)
            table[chars.ravel()] = 1
            table[0] = 0
            alphabet = np.flatnonzero(table).astype(np.uint32)
            dense = (np.cumsum(table) * table)[chars]
            length = (dense > 0).sum(axis=1)
            rows = np.arange(n)
            places = [dense[:, i] if i < width else np.zeros(n, np.int64) for i in range(_POSITIONS)]
            places += [np.where(length > i, dense[rows, np.maximum(length - 1 - i, 0)], 0) for i in range(_POSITIONS)]
            codes = np.stack(places).astype(np.uint8 if alphabet.size < 255 else np.uint32)  # (place, row)
            k = alphabet.size + 1
            grams = dense[:, :-1] * k + dense[:, 1:]
            ok = dense[:, 1:] > 0
            gram, row = grams[ok], np.broadcast_to(rows[:, None], grams.shape)[ok]
            # rows are in order within a bigram after a stable sort (a radix sort for 16-bit keys)
            order = np.argsort(gram.astype(np.uint16 if k * k <= 65536 else np.int64), kind="stable")
            gram, row = gram[order], row[order]
            first = np.ones(gram.size, dtype=bool)  # a value holding a bigram twice counts once
            first[1:] = (gram[1:] != gram[:-1]) | (row[1:] != row[:-1])
            gram, row = gram[first], row[first].astype(np.uint32)
            self._index = (alphabet, codes, gram, row, np.int64(k))
        return self._index

    def shortlist(self, value: str) -> pl.Series:
        """The ``_SHORTLIST`` best-scored values for ``value``, exactly as ``_shortlist``."""
        alphabet, codes, gram, row, k = self._arrays()
        n = self.words.len()
        low = value.lower()

        def code(ch: str) -> int:  # 1..K, or 0 for a character no value has
            i = int(np.searchsorted(alphabet, ord(ch)))
            return i + 1 if i < alphabet.size and alphabet[i] == ord(ch) else 0

        score = np.zeros(n, dtype=np.int16)
        m = min(len(low), _POSITIONS)
        for i in range(m):
            for place, ch in ((i, low[i]), (_POSITIONS + i, low[-(i + 1)])):
                c = code(ch)
                if c:
                    score += codes[place] == c
        hits = []
        for g in sorted({low[i : i + 2] for i in range(len(low) - 1)})[: 2 * _POSITIONS]:
            a, b = code(g[0]), code(g[1])
            if a and b:
                lo, hi = np.searchsorted(gram, [a * k + b, a * k + b + 1])
                if hi - lo < n:  # a bigram of every value adds the same to all: left out
                    hits.append(row[lo:hi])
        if hits:
            score += np.bincount(np.concatenate(hits), minlength=n).astype(np.int16)
        # best score first, ties in text order (the values are sorted): the order of _shortlist
        if n > _SHORTLIST:
            cut = np.partition(score, n - _SHORTLIST)[n - _SHORTLIST]
            above = np.flatnonzero(score > cut)
            pick = np.concatenate([above, np.flatnonzero(score == cut)[: _SHORTLIST - above.size]])
        else:
            pick = np.arange(n)
        pick = pick[np.lexsort((pick, -score[pick].astype(np.int32)))]
        return self.words.gather(pick)


def close_matches(value: str, candidates: pl.Series | Vocabulary, n: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to ``n`` entries of ``candidates`` that look like ``value`` (difflib ratio >= 0.6,
    then case-insensitively)."""
    if isinstance(candidates, Vocabulary):
        cands = candidates.words
        if cands.len() > _DIRECT_MATCH_LIMIT and value:
            cands = candidates.shortlist(value)
    else:
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


def unknown_value_error(what: str, value: str, candidates: pl.Series | Vocabulary, field: str) -> DataValidationError:
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
