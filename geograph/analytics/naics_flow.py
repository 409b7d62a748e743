"""``naics_flow``: co-visitation flow between NAICS categories, with lift over a volume baseline.

Definition (co-visit rows are unordered pairs). Let ``c(p)`` be the NAICS code of POI ``p``
cut to ``level`` digits. Every row ``(a, b, v)`` adds ``v`` to the flow ``F[c(a), c(b)]``
*and* to ``F[c(b), c(a)]``, so ``F`` is symmetric and a pair inside one category adds
``2 v`` to its diagonal cell. With row sums ``R_i = sum_j F_ij``, column sums
``C_j = sum_i F_ij`` (equal to ``R_j``) and ``T = sum_ij F_ij`` (twice the visitors):

* ``expected_ij = R_i * C_j / T``: the flow if visitors of category ``i`` spread over
  categories in proportion to their total volume (independence of the two ends);
* ``lift_ij = F_ij / expected_ij``: above 1, categories ``i`` and ``j`` are co-visited more
  than their volumes predict; below 1, less.

Only pairs whose two POIs are both in ``state`` count when a state is given. The table
lists the category pairs with at least one co-visit row; pairs without any row have
``F_ij = 0`` (lift 0) and are left out, so the listed ``expected`` sum to less than ``T``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from geograph.constants import DST_POI, NAICS_CODE, POI_ID, SRC_POI, STATE, VISITORS
from geograph.data.naics import NAICSTaxonomy

from ._checks import check_level, check_state
from .world_source import WorldSource, reads_world

SRC_NAICS = "src_naics"
DST_NAICS = "dst_naics"
_MEMO = "naics_flow"
_STATE = "__state__"
FLOW_COLUMNS = (SRC_NAICS, "src_title", DST_NAICS, "dst_title", VISITORS, "expected", "lift", "pairs")


@reads_world
def naics_flow(
    source: WorldSource,
    level: int = 2,
    *,
    state: str | None = None,
    min_visitors: int = 0,
    top: int | None = None,
) -> pl.DataFrame:
    """Co-visitation flow between NAICS categories at ``level`` digits (see the module doc).

    Args:
        source: The data.
        level: NAICS digits, 2 (sector) to 6 (national industry). Default 2.
        state: Only pairs of POIs that are both in this state. Default: all the data.
        min_visitors: Drop category pairs with fewer visitors (after aggregation). Default 0.
        top: Keep the ``top`` category pairs by visitors (None: all). Default None.

    Returns:
        ``src_naics, src_title, dst_naics, dst_title, visitors, expected, lift, pairs`` for every
        ordered category pair with a co-visit row (both orders of an off-diagonal pair),
        sorted by visitors (largest first), then codes. ``pairs`` counts the co-visit rows.
    """
    level = check_level(level)
    state = check_state(state)
    cut = _by_code(source, state).select(
        pl.col("a").str.slice(0, level), pl.col("b").str.slice(0, level), VISITORS, "pairs"
    )
    both = pl.concat([cut, cut.select(pl.col("b").alias("a"), pl.col("a").alias("b"), VISITORS, "pairs")])
    flow = both.group_by("a", "b").agg(pl.col(VISITORS).sum(), pl.col("pairs").sum())
    # a same-category row was counted twice above (once per orientation): that is the 2 v of
    # the definition for the flow, but it is still one co-visit row
    flow = flow.with_columns(
        pl.when(pl.col("a") == pl.col("b")).then(pl.col("pairs") // 2).otherwise(pl.col("pairs")).alias("pairs")
    )
    total = float(flow[VISITORS].sum()) if flow.height else 0.0
    row_sum = flow.group_by("a").agg(pl.col(VISITORS).sum().alias("__r__"))
    col_sum = flow.group_by("b").agg(pl.col(VISITORS).sum().alias("__c__"))
    flow = flow.join(row_sum, on="a").join(col_sum, on="b")
    expected = (pl.col("__r__").cast(pl.Float64) * pl.col("__c__") / total) if total > 0 else pl.lit(0.0)
    flow = flow.with_columns(expected.alias("expected")).with_columns(
        pl.when(pl.col("expected") > 0).then(pl.col(VISITORS) / pl.col("expected")).otherwise(None).alias("lift")
    )
    tax = NAICSTaxonomy()
    titles = {c: _title(tax, c) for c in set(flow["a"].to_list()) | set(flow["b"].to_list())}
    out = (
        flow.filter(pl.col(VISITORS) >= min_visitors)
        .rename({"a": SRC_NAICS, "b": DST_NAICS})
        .with_columns(
            pl.col(SRC_NAICS).replace_strict(titles, return_dtype=pl.String).alias("src_title"),
            pl.col(DST_NAICS).replace_strict(titles, return_dtype=pl.String).alias("dst_title"),
        )
        .sort([VISITORS, SRC_NAICS, DST_NAICS], descending=[True, False, False])
        .select(FLOW_COLUMNS)
    )
    return out.head(top) if top is not None else out


def _by_code(source: WorldSource, state: str | None) -> pl.DataFrame:
    """Co-visit rows summed by the full NAICS codes of their two ends as stored: ``a, b, visitors,
    pairs`` (``pairs``: rows), only rows with both ends in ``state`` when given.

    Every level is a prefix of these codes, so a query cuts this table (at most codes x codes
    rows) instead of joining every co-visit row again. A source with its tables in memory
    (``cache=True`` or a World) computes it once per source, for all states at a time; a lazy
    source computes it per query with the state filter pushed into the scan.
    """
    if not source.indexed:
        return _code_rows(source, state, by_state=False).collect()
    tables = source.memo(_MEMO, lambda: _tables(source))
    if state in tables:
        return tables[state]
    return pl.DataFrame(schema={"a": pl.String, "b": pl.String, VISITORS: pl.Int64, "pairs": pl.Int64})


def _tables(source: WorldSource) -> dict[str | None, pl.DataFrame]:
    """``_by_code`` of all the data (key None) and of every state, from one pass over the rows."""
    rows = _code_rows(source, None, by_state=True).collect()
    sums = (pl.col(VISITORS).sum(), pl.col("pairs").sum())
    out: dict[str | None, pl.DataFrame] = {None: rows.group_by("a", "b").agg(*sums)}
    for (st,), part in rows.drop_nulls(_STATE).partition_by(_STATE, as_dict=True).items():
        out[st] = part.drop(_STATE)
    return out


def _code_rows(source: WorldSource, state: str | None, *, by_state: bool) -> pl.LazyFrame:
    """``a, b[, state], visitors, pairs``: co-visit rows grouped by the codes of both ends (and by
    the state of both ends where it is the same, null otherwise)."""
    pois = source.pois().select(POI_ID, NAICS_CODE, STATE)
    if state is not None:
        pois = pois.filter(pl.col(STATE) == state)
    rows = (
        source.covisits()
        .join(pois.select(pl.col(POI_ID).alias(SRC_POI), pl.col(NAICS_CODE).alias("a"), pl.col(STATE).alias("sa")), on=SRC_POI)
        .join(pois.select(pl.col(POI_ID).alias(DST_POI), pl.col(NAICS_CODE).alias("b"), pl.col(STATE).alias("sb")), on=DST_POI)
    )
    keys = ["a", "b"]
    if by_state:
        rows = rows.with_columns(pl.when(pl.col("sa") == pl.col("sb")).then(pl.col("sa")).alias(_STATE))
        keys.append(_STATE)
    return rows.group_by(keys).agg(pl.col(VISITORS).sum(), pl.len().cast(pl.Int64).alias("pairs"))


def _title(tax: NAICSTaxonomy, code: str) -> str:
    try:
        return tax.title(code)
    except (KeyError, ValueError):
        return "unknown"


def flow_matrix(flow: pl.DataFrame, value: str = "lift") -> tuple[list[str], list[list[float | None]]]:
    """Square matrix of ``value`` (``lift``, ``visitors`` or ``expected``) over the codes of ``flow``."""
    codes = sorted(set(flow[SRC_NAICS].to_list()) | set(flow[DST_NAICS].to_list()))
    pos = {c: i for i, c in enumerate(codes)}
    mat: list[list[float | None]] = [[None] * len(codes) for _ in codes]
    for a, b, v in flow.select(SRC_NAICS, DST_NAICS, value).iter_rows():
        mat[pos[a]][pos[b]] = v
    return codes, mat


MISSING_FACE = "#d9d9d9"
MISSING_EDGE = "#8c8c8c"


def flow_heatmap(flow: pl.DataFrame, path: str | Path, value: str = "lift", title: str | None = None) -> Path:
    """Write a heatmap PNG of ``value`` between categories (log colour scale for lift), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Patch

    from geograph.utils.atomic import atomic_write

    codes, mat = flow_matrix(flow, value)
    arr = np.array([[np.nan if v is None else v for v in row] for row in mat], dtype=float).reshape(len(codes), len(codes))
    n = max(len(codes), 1)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 2 + 0.45 * n), 16), min(max(5.0, 1.6 + 0.45 * n), 15)))
    finite = arr[np.isfinite(arr) & (arr > 0)]
    extend = "neither"
    if value == "lift" and finite.size:
        span = float(max(abs(np.log10(finite.min())), abs(np.log10(finite.max())), 0.1))
        norm: Normalize = LogNorm(10**-span, 10**span)
        cmap = "RdBu_r"
        if (arr[np.isfinite(arr)] <= 0).any():  # lift 0 is a value, below a log scale: the lowest colour
            arr = np.where(np.isfinite(arr), np.maximum(arr, 10**-span), np.nan)
            extend = "min"
    else:
        norm, cmap = Normalize(), "viridis"
    # a pair with no row has no value: drawn as missing (grey, hatched), not as a colour or white
    ax.set_facecolor(MISSING_FACE)
    ax.patch.set_hatch("////")
    ax.patch.set_edgecolor(MISSING_EDGE)
    im = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, norm=norm)
    if np.isnan(arr).any():
        ax.legend(handles=[Patch(facecolor=MISSING_FACE, edgecolor=MISSING_EDGE, hatch="////", label="no data")],
                  loc="upper left", bbox_to_anchor=(1.0, 1.07), fontsize=8, frameon=False, borderaxespad=0)
    ax.set_xticks(range(len(codes)), codes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(codes)), codes, fontsize=7)
    ax.set_xlabel("NAICS (partner)")
    ax.set_ylabel("NAICS")
    ax.set_title(title or f"co-visitation {value} between NAICS categories")
    fig.colorbar(im, ax=ax, shrink=0.8, label=value, extend=extend)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
