"""``geograph graph``: build the heterogeneous graph of a world and print its schema."""

from __future__ import annotations

import argparse

from geograph.cli.common import console


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("graph", help="build the graph of a world (cached) and print node / edge counts")
    p.add_argument("--data", default=None, help="world folder (default: the embedded world)")
    p.add_argument("--pois", type=int, default=2000, help="embedded world size (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="embedded world seed (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="graph option, e.g. --set cell_resolution=8 --set granularity=brand (or graph.cell_resolution=8)")
    p.add_argument("--cache-dir", default=".geograph_cache", help="graph cache folder ('' disables)")
    p.set_defaults(func=_graph)


def _graph(args) -> int:
    import time

    from rich.table import Table

    from geograph.config import apply_overrides
    from geograph.graph import GraphConfig, cached_build

    sets = apply_overrides({}, args.overrides)
    if isinstance(sets.get("graph"), dict):  # --set graph.near_k=4 as well as --set near_k=4
        sets = {**{k: v for k, v in sets.items() if k != "graph"}, **sets["graph"]}
    gcfg = GraphConfig.from_dict(sets)
    if args.data:
        from geograph.data import load_world

        world = load_world(args.data)
    else:
        from geograph.data.synthetic import generate_world

        world = generate_world(n_pois=args.pois, seed=args.seed)
    t0 = time.perf_counter()
    g = cached_build(world, gcfg, args.cache_dir or None)
    dt = time.perf_counter() - t0
    t = Table(title=f"graph of {args.data or f'embedded world ({args.pois} POIs, seed {args.seed})'}: {dt:.2f} s, cache {g.stats.get('cache', 'off')}")
    t.add_column("type")
    t.add_column("count", justify="right")
    for k, v in g.summary().items():
        t.add_row(k, f"{v:,}")
    console().print(t)
    return 0
