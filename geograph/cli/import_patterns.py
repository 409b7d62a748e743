"""``geograph import patterns FILE... --out DIR``: SafeGraph / Advan Patterns files as a world folder.

stdout carries the result only: the folder written. The summary (files, rows read, kept,
rejected by kind, POIs, co-visit rows, periods, seconds, rows/s) goes to stderr unless
``--quiet``, and is saved as ``DIR/import_summary.json``; rejected rows are in
``DIR/rejected.csv``. See :mod:`geograph.data.patterns_import` for the rules.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geograph.cli.common import add_overwrite_args, add_quiet_arg, stderr_console, step

NAICS_VINTAGES = ("auto", "2012", "2017", "2022")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "patterns",
        help="SafeGraph / Advan Monthly or Weekly Patterns files (CSV, CSV.gz) -> world folder",
        description="Read Patterns files one at a time and write a geograph world folder (pois, "
        "brand-level covisits with a period column, manifest.json, rejected.csv, import_summary.json). "
        "The period of a row is its month (2023-01) or, for weekly rows, its ISO week (2023-W05), "
        "from date_range_start. A placekey seen in several periods keeps its latest attributes. "
        "See docs/guides/data.md, 'Import vendor patterns'.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="Patterns files (.csv or .csv.gz)")
    p.add_argument("--out", type=Path, required=True, help="output world folder")
    p.add_argument(
        "--period",
        action="append",
        default=None,
        metavar="PERIOD",
        help="import only this month (2023-01) or ISO week (2023-W05); repeatable or comma-separated "
        "(default: every period, each kept apart in the co-visits' period column)",
    )
    p.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="skip (default): drop a bad row (or only its bad map) and list it in DIR/rejected.csv; "
        "fail: stop at the first one, naming file, line and field, and write nothing",
    )
    p.add_argument(
        "--column-map",
        type=Path,
        default=None,
        metavar="MAP.yaml",
        help="YAML map 'vendor column: patterns column' for files with other column names",
    )
    p.add_argument(
        "--naics-vintage",
        choices=NAICS_VINTAGES,
        default="auto",
        help="NAICS edition of naics_code (default auto: 2022 codes stay, others go through the 2017, "
        "then the 2012 concordance)",
    )
    p.add_argument(
        "--window",
        choices=("same_period", "same_day"),
        default="same_period",
        help="which co-visit map to read: same_period (default: related_same_month_brand, or "
        "related_same_week_brand in weekly files) or same_day (related_same_day_brand)",
    )
    p.add_argument(
        "--brand-targets",
        type=int,
        default=10,
        metavar="K",
        help="split each brand-level co-visit row over the K POIs of that brand nearest to the source POI "
        "in its state (default 10)",
    )
    p.add_argument(
        "--partition-by",
        choices=["state"],
        default=None,
        help="write pois and covisits as hive folders by state (pois/state=CA/part-0.parquet), the layout "
        "that lets each torchrun rank load only its own states",
    )
    add_overwrite_args(p, "world")
    add_quiet_arg(p)
    p.set_defaults(func=_import_patterns)


def _periods(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def _import_patterns(args: argparse.Namespace) -> int:
    from geograph.data.patterns_import import import_patterns

    quiet = args.quiet

    def progress(i: int, n: int, path: Path) -> None:
        if not quiet:
            print(f"geograph: [{i + 1}/{n}] reading {path}", file=sys.stderr, flush=True)

    with step(f"importing {len(args.files)} Patterns file(s) into {args.out}", quiet):
        summary = import_patterns(
            args.files,
            args.out,
            periods=_periods(args.period),
            on_error=args.on_error,
            column_map=args.column_map,
            naics_vintage=args.naics_vintage,
            window=args.window,
            brand_targets=args.brand_targets,
            overwrite=args.overwrite,
            replace=args.replace,
            progress=progress,
            partition_by=args.partition_by,
        )
    if not quiet:
        _print_summary(summary)
    print(summary.out)
    return 0


def _print_summary(summary) -> None:
    from rich.table import Table

    table = Table(title=f"import {summary.out}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    rejected = ", ".join(f"{k} {v}" for k, v in summary.rejected_by_kind.items()) or "none"
    rows = [
        ("files", f"{summary.files}"),
        ("rows read", f"{summary.rows_read:,}"),
        ("rows kept", f"{summary.rows_kept:,}"),
        ("rows rejected", f"{summary.rows_rejected:,}"),
        ("maps dropped (POI kept)", f"{summary.maps_dropped:,}"),
        ("rejected.csv by kind", rejected),
        ("rows of other periods", f"{summary.rows_other_periods:,}"),
        ("POIs", f"{summary.pois:,}"),
        ("co-visit rows", f"{summary.covisit_rows:,}"),
        ("periods", ", ".join(summary.periods)),
        ("placekeys changed between periods", f"{summary.placekey_conflicts:,}"),
        ("seconds", f"{summary.seconds:.2f}"),
        ("rows/s", f"{summary.rows_per_s:,.0f}"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    stderr_console().print(table)
