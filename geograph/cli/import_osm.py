"""``geograph import osm FILE.osm.pbf --out DIR``: OpenStreetMap POIs as a geograph data folder."""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from geograph.cli.common import add_overwrite_args, add_quiet_arg, step

UNMAPPED_SHOWN = 10  # most frequent unmapped tags printed


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "osm",
        help="POIs of an OpenStreetMap extract (.osm.pbf), tags mapped to NAICS 2022",
        description="Read the amenity / shop / tourism / leisure elements of an OpenStreetMap "
        ".osm.pbf extract with pyrosm, map their tags to 2022 NAICS codes with the table shipped "
        "in geograph/data/osm_naics.csv (unmapped tags are counted and dropped), and write a "
        "geograph data folder: pois.parquet, meta.json and manifest.json, and no co-visit table "
        "(OpenStreetMap has no visit data: `geograph world --pois-from DIR` generates synthetic "
        "co-visits over these POIs). See docs/guides/data.md.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="an OpenStreetMap extract (.osm.pbf)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--naics-table",
        type=Path,
        default=None,
        help="your own tag -> NAICS CSV (tag_key,tag_value,naics_code,title; default: the shipped table)",
    )
    add_overwrite_args(p, "data")
    add_quiet_arg(p)
    p.set_defaults(func=_import_osm)


def _import_osm(args: argparse.Namespace) -> int:
    from rich.table import Table

    from geograph.cli.common import console
    from geograph.cli.world_cmd import _check_out
    from geograph.data.osm import osm_world_meta, read_osm_pois, write_pois_folder

    out: Path = args.out
    _check_out(out, args.overwrite, args.replace)  # before reading the extract
    with step(f"reading {args.file}", args.quiet):
        pois, report = read_osm_pois(args.file, args.naics_table)
    t0 = time.perf_counter()
    with step(f"writing {out}", args.quiet):
        write_pois_folder(pois, out, osm_world_meta(args.file, report), overwrite=args.overwrite,
                          replace=args.replace)
    t_write = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)

    con = console()
    table = Table(title=f"OpenStreetMap import {args.file.name} -> {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("elements tagged amenity/shop/tourism/leisure", f"{report.rows_read:,}")
    table.add_row("POIs kept (tag mapped to NAICS 2022)", f"{report.kept:,}")
    table.add_row("dropped: tag not in the NAICS table", f"{report.unmapped_rows:,}")
    if report.no_position:
        table.add_row("dropped: no geometry", f"{report.no_position:,}")
    table.add_row("POIs at a way / relation centroid", f"{report.from_ways:,}")
    table.add_row("POIs with a brand tag", f"{report.branded:,}")
    table.add_row("POIs without a name tag", f"{report.unnamed:,}")
    table.add_row("NAICS codes", f"{pois['naics_code'].n_unique():,}")
    table.add_row("regions", ", ".join(f"{k} ({v:,})" for k, v in list(report.regions.items())[:5])
                  + (" ..." if len(report.regions) > 5 else ""))
    table.add_row("co-visits", "none (OpenStreetMap has no visit data)")
    con.print(table)
    if report.unmapped:
        shown = list(report.unmapped.items())[:UNMAPPED_SHOWN]
        more = len(report.unmapped) - len(shown)
        con.print(
            "unmapped tags: " + ", ".join(f"{k} ({v:,})" for k, v in shown)
            + (f" and {more} more (all in meta.json)" if more > 0 else ""),
            markup=False,
        )
    con.print(
        f"read {report.rows_read:,} elements in {report.seconds:.1f} s "
        f"({report.rows_read / max(report.seconds, 1e-9):,.0f} rows/s), written in {t_write:.1f} s, "
        f"peak memory {peak_mb:,.0f} MB",
        markup=False,
    )
    if not args.quiet:
        print(
            f"geograph: OpenStreetMap has no co-visits: {out} holds POIs only; generate synthetic "
            f"co-visits over them with `geograph world --pois-from {out} --out DIR`",
            file=sys.stderr,
        )
    return 0
