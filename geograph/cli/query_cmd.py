"""``geograph query``: urban analytics on a world and on trained co-visitation models.

Queries: ``covisited``, ``naics-flow``, ``hotspots``, ``whatif``, ``similar`` (see
:mod:`geograph.analytics`). Every query takes the data options (``--data DIR``, or the
embedded world of ``--pois`` / ``--seed``), the model options (``--run-id`` or
``--model-uri``, ``--tracking-uri``) and the output options (``--format``, ``--out``,
``--map``, ``--png``).

A world folder (``--data``, or the folder a model was trained on) is validated before any
query runs, with or without a ``manifest.json``: a table that breaks its contract is an error
naming the file, row and field, never an answer. With ``--data`` the folder is checked before
the model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from geograph.cli.common import add_quiet_arg, step

QUERIES = ("covisited", "naics-flow", "hotspots", "whatif", "similar")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("data")
    g.add_argument("--data", type=Path, default=None, help="world folder (default: the model's training world "
                   "when it is the embedded one, else the embedded world of --pois / --seed)")
    g.add_argument("--pois", type=int, default=None, help="size of the embedded world (default 2000)")
    g.add_argument("--seed", type=int, default=None, help="seed of the embedded world (default 0)")
    g.add_argument("--cache", action="store_true", help="read the folder's tables into memory once")
    g = common.add_argument_group("model")
    g.add_argument("--run-id", default=None,
                   help="MLflow run id, a unique prefix, or latest (the last finished training run), of the run "
                   "that logged the model (artifact 'model')")
    g.add_argument("--model-uri", default=None, help="models:/NAME/VERSION, models:/NAME@ALIAS or runs:/ID/model")
    g.add_argument("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    g = common.add_argument_group("output")
    g.add_argument("--format", choices=("table", "csv", "json", "geojson"), default="table", help="output format (default table)")
    g.add_argument("--out", type=Path, default=None, help="write the result to this file (atomically) instead of stdout")
    g.add_argument("--map", type=Path, default=None, help="also write an HTML map (Leaflet inlined, opens offline) to this file")
    g.add_argument("--png", type=Path, default=None, help="also write a static PNG (map, or heatmap for naics-flow)")
    add_quiet_arg(common)
    return common


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "query",
        help="urban analytics: co-visited POIs, NAICS flows, hotspots, what-if venues, similar POIs",
        description="Ask questions of a world and of a trained co-visitation model. "
        "See docs/guides/analytics.md.",
    )
    sub = p.add_subparsers(dest="query", metavar="QUERY")
    sub.required = True
    common = _common()

    q = sub.add_parser("covisited", parents=[common], help="top co-visited POIs of a POI, or brands of a brand")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--poi", help="POI id")
    who.add_argument("--brand", help="brand name")
    q.add_argument("--top", type=int, default=10, help="rows (default 10)")
    q.add_argument("--state", default=None, help="only partners in this state")
    q.add_argument("--radius-km", type=float, default=None, help="only partners within this distance")
    q.add_argument("--rank-by", choices=("observed", "predicted"), default="observed", help="ranking (default observed)")
    q.add_argument("--candidates", type=int, default=50, help="unobserved nearby POIs scored with a model (default 50)")
    q.set_defaults(func=_covisited)

    q = sub.add_parser("naics-flow", parents=[common], help="co-visitation flow between NAICS categories with lift")
    q.add_argument("--level", type=int, default=2, help="NAICS digits 2..6 (default 2)")
    q.add_argument("--state", default=None, help="only pairs inside this state")
    q.add_argument("--min-visitors", type=int, default=0, help="drop category pairs below this (default 0)")
    q.add_argument("--top", type=int, default=None, help="rows (default all)")
    q.add_argument("--value", choices=("lift", "visitors", "expected"), default="lift", help="heatmap value (default lift)")
    q.set_defaults(func=_naics_flow)

    q = sub.add_parser("hotspots", parents=[common], help="H3 cells ranked by co-visitation volume or model residuals")
    q.add_argument("--resolution", type=int, default=7, help="H3 resolution 0..15 (default 7)")
    q.add_argument("--by", choices=("volume", "residual"), default="volume", help="ranking (default volume)")
    q.add_argument("--top", type=int, default=20, help="cells (default 20)")
    q.add_argument("--state", default=None, help="only pairs inside this state")
    q.add_argument("--min-pairs", type=int, default=1, help="ignore cells with fewer pairs (default 1)")
    q.set_defaults(func=_hotspots)

    q = sub.add_parser("whatif", parents=[common], help="predicted co-visits of a hypothetical new venue")
    q.add_argument("--lat", type=float, required=True, help="latitude (degrees)")
    q.add_argument("--lon", type=float, required=True, help="longitude (degrees)")
    q.add_argument("--naics", required=True, help="6-digit 2022 NAICS code")
    q.add_argument("--brand", default=None, help="brand name")
    q.add_argument("--name", default="new venue", help="label of the venue")
    q.add_argument("--state", default=None, help="state code (default: the nearest POI's)")
    q.add_argument("--feature", action="append", default=[], metavar="NAME=VALUE",
                   help="a numeric POI feature (repeatable); others: same-NAICS medians")
    q.add_argument("--top", type=int, default=10, help="neighbours listed (default 10)")
    q.add_argument("--candidates", type=int, default=200, help="nearest POIs scored (default 200)")
    q.add_argument("--radius-km", type=float, default=None, help="only candidates within this distance")
    q.set_defaults(func=_whatif)

    q = sub.add_parser("similar", parents=[common], help="POIs (or brands) nearest in the learned embedding space")
    who = q.add_mutually_exclusive_group(required=True)
    who.add_argument("--poi", help="POI id")
    who.add_argument("--brand", help="brand name")
    q.add_argument("--top", type=int, default=10, help="rows (default 10)")
    q.add_argument("--state", default=None, help="only POIs in this state")
    q.set_defaults(func=_similar)


# ---------------------------------------------------------------------------------------
# shared plumbing
# ---------------------------------------------------------------------------------------
def _console():
    from rich.console import Console

    return Console()


def _note(text: str) -> None:
    print(f"geograph: note: {text}", file=sys.stderr)


def _model(args: argparse.Namespace, required: bool = False):
    from geograph.errors import ConfigError

    if args.run_id is None and args.model_uri is None:
        if required:
            raise ConfigError(f"query {args.query!r} needs a trained model: pass --run-id or --model-uri")
        return None
    from geograph.analytics import ModelContext

    with step(f"loading model {args.model_uri or 'of run ' + args.run_id}", args.quiet):
        return ModelContext.from_mlflow(run_id=args.run_id, model_uri=args.model_uri, tracking_uri=args.tracking_uri)


def _inputs(args: argparse.Namespace, model_required: bool = False) -> tuple[Any, Any]:
    """``(model, source)``: with --data the folder is opened and validated first (a bad folder is
    reported before a model is loaded); otherwise the model decides the default world."""
    if args.data is not None:
        source = _source(args)
        return _model(args, required=model_required), source
    model = _model(args, required=model_required)
    return model, _source(args, model)


def _folder_source(folder: Path, cache: bool):
    """A folder's :class:`WorldSource`, validated now (manifest, then the table contracts)."""
    from geograph.analytics import WorldSource

    source = WorldSource.from_folder(folder, cache=cache)
    source.check()
    return source


def _source(args: argparse.Namespace, model: Any = None):
    """The world: --data, else the model's embedded training world, else the embedded world."""
    from geograph.analytics import WorldSource
    from geograph.errors import ConfigError

    if args.data is not None:
        if args.pois is not None or args.seed is not None:
            raise ConfigError("--pois / --seed describe the embedded world; drop them when you pass --data")
        return _folder_source(args.data, args.cache)
    if args.pois is not None and args.pois <= 0:
        raise ConfigError(f"--pois must be > 0, got {args.pois}")
    n_pois, seed = args.pois, args.seed
    if model is not None and n_pois is None and seed is None:
        data = model.predictor.cfg.data
        if data.world_dir:
            return _folder_source(Path(data.world_dir), args.cache)
        if data.generator != "embedded":  # the model's own generated world (data.generator)
            from geograph.covisit.data import load_world_for

            return WorldSource.from_world(load_world_for(model.predictor.cfg))
        n_pois, seed = data.n_pois, data.world_seed
    from geograph.data.synthetic import generate_world

    world = generate_world(n_pois=n_pois or 2000, seed=seed or 0, n_images=0, progress=False)
    if model is not None and model.predictor.fingerprint and world.fingerprint() != model.predictor.fingerprint:
        _note("the data are not the model's training world; POIs the model does not know get no prediction "
              "(pass --data with its world folder)")
    return WorldSource.from_world(world)


def _emit(args: argparse.Namespace, df, title: str, json_payload: Any = None, geo_extra: list | None = None) -> None:
    from geograph.analytics import formats

    fmt = args.format
    shown = df.drop([c for c in ("latitude", "longitude") if c in df.columns])  # tables: no coordinates
    if fmt == "table":
        text = None if args.out is None else formats.table_text(shown, title)
    elif fmt == "csv":
        text = df.write_csv()
    elif fmt == "json":
        text = formats.to_json(json_payload if json_payload is not None else df)
    else:
        text = formats.to_geojson(df, geo_extra)
    if args.out is not None:
        formats.write_text(args.out, text)
        print(f"wrote {args.out} ({df.height} rows, {fmt})")
    elif text is None:
        formats.render_table(shown, title, _console())
    else:
        sys.stdout.write(text)


def _maps(args: argparse.Namespace, layers_fn) -> None:
    if args.map is None and args.png is None:
        return
    from geograph.analytics import maps

    layers = layers_fn()
    if args.map is not None:
        maps.write_html(layers, args.map)
        print(f"wrote {args.map} (HTML map)")
    if args.png is not None:
        maps.write_png(layers, args.png)
        print(f"wrote {args.png} (PNG map)")


# ---------------------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------------------
def _covisited(args: argparse.Namespace) -> int:
    from geograph.analytics import covisited, maps

    model, source = _inputs(args)
    df = covisited(source, args.poi, args.brand, top=args.top, state=args.state, radius_km=args.radius_km,
                   model=model, rank_by=args.rank_by, candidates=args.candidates)
    what = f"POI {args.poi}" if args.poi else f"brand {args.brand}"
    _emit(args, df, f"co-visited with {what}")
    if args.poi is not None:
        _maps(args, lambda: maps.covisited_layers(df, source.poi(args.poi)))
    elif args.map or args.png:
        maps.covisited_layers(df, {})  # raises: brand results have no coordinates
    return 0


def _naics_flow(args: argparse.Namespace) -> int:
    from geograph.analytics import flow_heatmap, naics_flow

    _, source = _inputs(args)
    df = naics_flow(source, args.level, state=args.state, min_visitors=args.min_visitors, top=args.top)
    where = args.state or "all states"
    _emit(args, df, f"NAICS {args.level}-digit co-visitation flow ({where})")
    if args.map is not None:
        from geograph.errors import ConfigError

        raise ConfigError("naics-flow has no map; use --png FILE for a heatmap")
    if args.png is not None:
        flow_heatmap(df, args.png, value=args.value, title=f"NAICS {args.level}-digit co-visitation {args.value} ({where})")
        print(f"wrote {args.png} (heatmap of {args.value})")
    return 0


def _hotspots(args: argparse.Namespace) -> int:
    from geograph.analytics import hotspots, maps

    model, source = _inputs(args, model_required=args.by == "residual")
    df = hotspots(source, args.resolution, by=args.by, top=args.top, state=args.state, model=model,
                  min_pairs=args.min_pairs)
    title = f"hotspots by {args.by} (H3 resolution {args.resolution})"
    _emit(args, df, title)
    _maps(args, lambda: maps.hotspot_layers(df, title))
    return 0


def _parse_features(items: list[str]) -> dict[str, float]:
    from geograph.errors import ConfigError

    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(raw)
        except ValueError:
            raise ConfigError(f"--feature must look like NAME=NUMBER, got {item!r}") from None
    return out


def _whatif(args: argparse.Namespace) -> int:
    from geograph.analytics import Venue, formats, maps, whatif

    venue = Venue(args.lat, args.lon, args.naics, brand=args.brand, name=args.name, state=args.state,
                  features=_parse_features(args.feature))
    from geograph.analytics._checks import check_lat_lon, check_naics

    check_lat_lon(venue.latitude, venue.longitude)  # before loading a model
    check_naics(venue.naics_code)
    model, source = _inputs(args, model_required=True)
    res = whatif(model, venue, source=source, top=args.top, candidates=args.candidates, radius_km=args.radius_km)
    v, c = res.venue, res.comparison
    extra = [formats.point_feature(v["latitude"], v["longitude"], {"role": "venue", **{k: v[k] for k in ("name", "naics_code", "brand", "state")},
                                   "total_predicted": res.total_predicted})]
    if c is not None:
        extra.append(formats.point_feature(c["latitude"], c["longitude"], {"role": "comparison", **c}))
    if args.format == "table" and args.out is None:
        console = _console()
        from rich.text import Text

        console.print(Text(f"what if: {v['name']} — NAICS {v['naics_code']} ({v['naics_title']}), "
                           f"brand {v['brand'] or '—'}, at ({v['latitude']}, {v['longitude']}) in {v['state']}, "
                           f"cell {v['h3_cell']}{' (new cell)' if v['new_cell'] else ''}, {v['near_edges']} near edges"))
        feats = ", ".join(f"{k}={d['value']:,.4g} ({d['source']})" for k, d in v["features"].items())
        console.print(Text(f"features: {feats or 'none'}"))
        console.print(Text(f"total predicted co-visitors with the {res.candidates} nearest POIs of {v['state']}: "
                           f"{res.total_predicted:,.1f}"))
        if c is not None:
            console.print(Text(
                f"comparison: {c['poi_id']} {c['name'] or ''} (NAICS {c['naics_code']}, {c['distance_km']:.2f} km away): "
                f"predicted {c['total_predicted']:,.1f} on the same candidates (new venue: "
                f"{c['venue_total_same_candidates']:,.1f}); observed co-visitors in the data {c['observed_total']:,.0f}"))
        for n in res.notes:
            console.print(Text(f"note: {n}", style="yellow"))
        formats.render_table(res.neighbours.drop("latitude", "longitude"), "top predicted co-visited neighbours", console)
    else:
        _emit(args, res.neighbours, "top predicted co-visited neighbours", json_payload=res.to_dict(), geo_extra=extra)
    _maps(args, lambda: maps.whatif_layers(res))
    return 0


def _similar(args: argparse.Namespace) -> int:
    from geograph.analytics import maps, similar

    model, source = _inputs(args, model_required=True)
    df = similar(model, args.poi, args.brand, top=args.top, state=args.state, source=source)
    title = f"most similar to {'POI ' + args.poi if args.poi else 'brand ' + args.brand} (cosine of embeddings)"
    _emit(args, df, title)
    _maps(args, lambda: maps.points_layers(df, title, query=source.poi(args.poi) if args.poi else None))
    return 0
