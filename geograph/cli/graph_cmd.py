"""``geograph graph``: build the heterogeneous graph of a world and print its schema.

The schema is two tables: node types (count, width of ``x``, other tensors) and edge types
as ``(src, relation, dst)`` (count, width of ``edge_attr``, other tensors such as
``edge_weight``). ``--format`` prints them as a table (a plain ASCII box when the output is
not a terminal), Markdown, CSV or JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from geograph.cli.common import add_quiet_arg, step

FORMATS = ("table", "markdown", "csv", "json")
NODE_HEADER = ("node type", "count", "x", "other tensors")
EDGE_HEADER = ("src", "relation", "dst", "count", "edge_attr", "other tensors")
CSV_HEADER = ("kind", "node_type", "src", "relation", "dst", "count", "feature", "width", "attrs")
NONE = "-"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "graph", help="build the graph of a world (cached) and print its node / edge types, counts and widths"
    )
    p.add_argument("--data", default=None, help="world folder (default: the embedded world)")
    p.add_argument("--pois", type=int, default=2000, help="embedded world size (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="embedded world seed (default 0)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="graph option, e.g. --set cell_resolution=8 --set granularity=brand (or graph.cell_resolution=8)",
    )
    p.add_argument("--cache-dir", default=".geograph_cache", help="graph cache folder ('' disables)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (default; ASCII box in a pipe), markdown, csv (one row per type) or json",
    )
    add_quiet_arg(p)
    p.set_defaults(func=_graph)


def _graph(args) -> int:
    import time

    from geograph.config import apply_overrides
    from geograph.graph import GraphConfig, cached_build

    sets = apply_overrides({}, args.overrides)
    if isinstance(sets.get("graph"), dict):  # --set graph.near_k=4 as well as --set near_k=4
        sets = {**{k: v for k, v in sets.items() if k != "graph"}, **sets["graph"]}
    gcfg = GraphConfig.from_dict(sets)
    if args.data:
        from geograph.data import load_world

        with step(f"loading {args.data}", args.quiet):
            world = load_world(args.data)
    else:
        from geograph.data.synthetic import generate_world

        with step(f"generating the embedded world ({args.pois} POIs)", args.quiet):
            world = generate_world(n_pois=args.pois, seed=args.seed)
    t0 = time.perf_counter()
    with step("building the graph", args.quiet):
        g = cached_build(world, gcfg, args.cache_dir or None)
    dt = time.perf_counter() - t0
    schema = g.schema()
    source = args.data or f"embedded world ({args.pois} POIs, seed {args.seed})"
    caption = f"graph of {source}: built in {dt:.2f} s, cache {g.stats.get('cache', 'off')}"
    if args.format == "json":
        sys.stdout.write(json.dumps({"source": source, **schema}, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(schema_csv(schema))
    elif args.format == "markdown":
        sys.stdout.write(schema_markdown(schema))
    else:
        print_schema(schema)
    sys.stdout.flush()
    if not args.quiet:
        print(caption, file=sys.stderr)  # a note: stdout holds the schema only
    return 0


def _cell(value: Any) -> str:
    return NONE if value is None else str(value)


def node_rows(schema: dict[str, list[dict]]) -> list[tuple[str, ...]]:
    """The node table of :meth:`~geograph.graph.GeoGraph.schema` as strings (see :data:`NODE_HEADER`)."""
    return [
        (n["type"], f"{n['count']:,}", _cell(n["x_width"]), ", ".join(n["attrs"]) or NONE)
        for n in schema["nodes"]
    ]


def edge_rows(schema: dict[str, list[dict]]) -> list[tuple[str, ...]]:
    """The edge table of :meth:`~geograph.graph.GeoGraph.schema` as strings (see :data:`EDGE_HEADER`)."""
    return [
        (
            e["src"],
            e["relation"],
            e["dst"],
            f"{e['count']:,}",
            _cell(e["edge_attr_width"]),
            ", ".join(e["attrs"]) or NONE,
        )
        for e in schema["edges"]
    ]


def print_schema(schema: dict[str, list[dict]], console: Any = None) -> None:
    """Print the node and edge tables with rich; names are plain text (``[poi]`` is never read
    as markup) and every column but the last never wraps, so the tables read at 80 columns."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console(highlight=False)
    style = box.HEAVY_HEAD if console.is_terminal else box.ASCII
    right = {"count", "x", "edge_attr"}
    for title, header, rows in (
        ("node types", NODE_HEADER, node_rows(schema)),
        ("edge types (src, relation, dst)", EDGE_HEADER, edge_rows(schema)),
    ):
        table = Table(title=Text(title), box=style, title_justify="left")
        for i, h in enumerate(header):
            last = i == len(header) - 1
            table.add_column(
                Text(h), justify="right" if h in right else "left", no_wrap=not last, overflow="fold"
            )
        for row in rows:
            table.add_row(*(Text(v) for v in row))
        console.print(table)


def _md(header: tuple[str, ...], rows: list[tuple[str, ...]], right: set[str]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if h in right else "---" for h in header) + "|",
    ]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines


def schema_markdown(schema: dict[str, list[dict]]) -> str:
    """The node and edge tables as Markdown."""
    right = {"count", "x", "edge_attr"}
    lines = ["Node types:", "", *_md(NODE_HEADER, node_rows(schema), right), ""]
    lines += ["Edge types:", "", *_md(EDGE_HEADER, edge_rows(schema), right)]
    return "\n".join(lines) + "\n"


def schema_csv(schema: dict[str, list[dict]]) -> str:
    """One CSV row per node type and per edge type (see :data:`CSV_HEADER`); ``attrs`` are
    separated by ``;``, counts are plain integers."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for n in schema["nodes"]:
        w.writerow(["node", n["type"], "", "", "", n["count"], "x", _csv(n["x_width"]), ";".join(n["attrs"])])
    for e in schema["edges"]:
        w.writerow(
            [
                "edge",
                "",
                e["src"],
                e["relation"],
                e["dst"],
                e["count"],
                "edge_attr",
                _csv(e["edge_attr_width"]),
                ";".join(e["attrs"]),
            ]
        )
    return buf.getvalue()


def _csv(value: int | None) -> str:
    return "" if value is None else str(value)
