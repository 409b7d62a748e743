"""A short description of any world: sizes, POIs per state, NAICS sectors, co-visit zeros.

Used by ``geograph world`` and ``geograph demo``; works on generated and loaded worlds alike
(only the contract columns are read).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from geograph.constants import BRAND_COL, NAICS_CODE, STATE, VISITORS
from geograph.data.world_io import World

TOP_STATES = 10


def summarize_world(world: World, top_states: int = TOP_STATES) -> dict[str, Any]:
    """Counts that describe ``world`` (plain Python values, JSON-serialisable).

    Returns:
        ``pois``, ``states``, ``pois_per_state`` (top ``top_states`` as ``[state, count]``),
        ``brands``, ``branded_share``, ``naics_codes``, ``naics_sectors``
        (``[sector, title, count]``, largest first), ``covisits``, ``covisits_nonzero``,
        ``covisits_zero``, ``visitors_total``, ``visitors_max``, ``images``, ``regions``.
    """
    from geograph.data.naics import NAICSTaxonomy

    pois = world.pois
    out: dict[str, Any] = {"pois": pois.height}
    if STATE in pois.columns:
        per_state = pois.group_by(STATE).len().sort(["len", STATE], descending=[True, False])
        out["states"] = per_state.height
        out["pois_per_state"] = [[s, int(c)] for s, c in per_state.head(top_states).iter_rows()]
    if BRAND_COL in pois.columns:
        out["brands"] = int(pois[BRAND_COL].drop_nulls().n_unique())
        out["branded_share"] = round(1.0 - pois[BRAND_COL].null_count() / max(pois.height, 1), 4)
    if NAICS_CODE in pois.columns:
        tax = NAICSTaxonomy()
        codes = pois[NAICS_CODE].cast(pl.Utf8)
        out["naics_codes"] = int(codes.n_unique())
        two = codes.str.slice(0, 2)
        sector = (
            pl.when(two.is_in(["31", "32", "33"]))
            .then(pl.lit("31-33"))
            .when(two.is_in(["44", "45"]))
            .then(pl.lit("44-45"))
            .when(two.is_in(["48", "49"]))
            .then(pl.lit("48-49"))
            .otherwise(two)
        )
        sectors = (
            pl.DataFrame({"two": two})
            .select(sector.alias("sector"))
            .group_by("sector")
            .len()
            .sort(["len", "sector"], descending=[True, False])
        )
        out["naics_sectors"] = [
            [s, tax.title(s[:2]) if s[:2] in tax else "unknown", int(c)] for s, c in sectors.iter_rows()
        ]
    cov = world.covisits
    out["covisits"] = cov.height
    if VISITORS in cov.columns:
        v = cov[VISITORS]
        zero = int((v == 0).sum())
        out["covisits_nonzero"] = cov.height - zero
        out["covisits_zero"] = zero
        out["visitors_total"] = int(v.sum()) if cov.height else 0
        out["visitors_max"] = int(v.max()) if cov.height else 0
    out["images"] = world.images.height if world.images is not None else 0
    out["regions"] = world.regions.height if world.regions is not None else 0
    return out


def print_world_summary(world: World, console: Any = None, title: str = "world") -> dict[str, Any]:
    """Print :func:`summarize_world` as rich tables; returns the summary dict.

    Args:
        world: The world to describe.
        console: A ``rich.console.Console`` (default: a new one on stdout).
        title: Heading of the first table.
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = summarize_world(world)

    sizes = Table(title=title, show_header=True, header_style="bold")
    sizes.add_column("table")
    sizes.add_column("rows", justify="right")
    sizes.add_column("detail")
    sizes.add_row(
        "pois",
        f"{s['pois']:,}",
        f"{s.get('states', 0)} states, {s.get('brands', 0):,} brands, "
        f"{s.get('branded_share', 0.0):.0%} branded, {s.get('naics_codes', 0)} NAICS codes",
    )
    if "covisits_zero" in s:
        share = s["covisits_zero"] / s["covisits"] if s["covisits"] else 0.0
        detail = (
            f"{s['covisits_nonzero']:,} nonzero, {s['covisits_zero']:,} zero ({share:.0%}); "
            f"visitors total {s['visitors_total']:,}, max {s['visitors_max']:,}"
        )
    else:
        detail = ""
    sizes.add_row("covisits", f"{s['covisits']:,}", detail)
    sizes.add_row("images", f"{s['images']:,}", "")
    sizes.add_row("regions", f"{s['regions']:,}", "H3 cells")
    console.print(sizes)

    if s.get("pois_per_state"):
        st = Table(title=f"POIs per state (top {len(s['pois_per_state'])})", header_style="bold")
        st.add_column("state")
        st.add_column("POIs", justify="right")
        st.add_column("share", justify="right")
        for state, count in s["pois_per_state"]:
            st.add_row(state, f"{count:,}", f"{count / max(s['pois'], 1):.1%}")
        console.print(st)

    if s.get("naics_sectors"):
        sec = Table(title="NAICS sectors", header_style="bold")
        sec.add_column("sector")
        sec.add_column("title")
        sec.add_column("POIs", justify="right")
        for code, name, count in s["naics_sectors"]:
            sec.add_row(code, name, f"{count:,}")
        console.print(sec)
    return s
