"""Soak test of the analytics queries: a seeded mix of calls from concurrent clients, every
answer compared with the answer of the same call run single-threaded.

The calls are those behind ``geograph query covisited | naics-flow | hotspots | similar |
whatif`` (the functions of :mod:`geograph.analytics` the CLI calls, with the same
arguments), valid and invalid: an invalid call must raise the same error type with the same
message. The data world of ``--pois`` POIs is generated once into
``benchmarks/out/world_<N>_s<seed>/`` (git-ignored, shared with ``queries.py``) and read as
``geograph query --data DIR --cache`` reads it: one :class:`~geograph.analytics.WorldSource`
whose tables are read into memory on first use. Model queries (``similar``, ``whatif``,
``covisited`` with a model, ``hotspots --by residual``) use a fast GNN trained once on the
embedded world of ``--model-pois`` POIs (``queries.ensure_model``: logged to
``benchmarks/out/mlflow.db``, reused) and query that world, as ``geograph query`` does for a
model without ``--data``; ``--run-id`` / ``--tracking-uri`` take an existing model instead.

Phases, each starting from cold objects (a new source and model, so their lazily filled
caches are filled under load):

1. ``reference``: every call in order, one thread;
2. ``threads``: ``--clients`` threads sharing one source and one model (the server case);
   client ``c`` issues calls ``c, c + clients, ...``;
3. ``processes`` (``--processes``): ``--clients`` processes, each with its own source and
   model (each process loads the world: memory grows with the clients).

Reported: mismatches against the reference, p50 / p99 latency per kind of call and overall
(the client's wall time of a call), throughput, peak RSS (``ru_maxrss``) and the hardware. A
mismatch names its call and what differs (the errors, or the schema / shape, or each differing
column with its first differing rows, reference value beside the other); both frames are
written to ``mismatches/`` beside ``soak.json``.

    .venv/bin/python benchmarks/soak.py                                 # 1M POIs, 10,000 calls, 8 clients
    .venv/bin/python benchmarks/soak.py --pois 20000 --calls 1000 --processes

Prints a table (Markdown with ``--markdown``) and writes ``soak.json`` into ``--out``
(default ``benchmarks/out/soak/``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

# Kinds of call and their share of the mix. Lookups dominate, as they would for a service;
# the national aggregates (a pass over every co-visit row: seconds at 1M POIs) are rare.
# ``valid=False`` kinds must raise. ``model=True`` kinds need a model.
MIX: dict[str, tuple[float, bool, bool]] = {  # kind: (weight, valid, model)
    "covisited --poi": (0.38, True, False),
    "covisited --poi --radius-km": (0.05, True, False),
    "covisited --brand": (0.12, True, False),
    "covisited --brand --state": (0.03, True, False),
    "naics-flow --state": (0.015, True, False),
    "naics-flow": (0.001, True, False),
    "hotspots --state": (0.015, True, False),
    "hotspots": (0.001, True, False),
    "covisited --poi (model)": (0.03, True, True),
    "covisited --brand (model)": (0.01, True, True),
    "hotspots --by residual": (0.004, True, True),
    "similar --poi": (0.10, True, True),
    "similar --brand": (0.03, True, True),
    "whatif": (0.05, True, True),
    "error: unknown brand": (0.02, False, False),
    "error: unknown POI id": (0.01, False, False),
    "error: unknown state": (0.01, False, False),
    "error: bad resolution / level": (0.01, False, False),
    "error: similar, unknown POI id": (0.01, False, True),
    "error: whatif, bad NAICS / latitude": (0.01, False, True),
}
HOTSPOT_RESOLUTIONS = (7, 8)  # each resolution's H3 cells of all POIs are computed once per source
POI_POOL = 5_000  # distinct POI ids drawn for lookups (calls repeat them, as clients would)
BRAND_POOL = 2_000  # the most common brands


@dataclass
class Call:
    """One query: ``fn(target, *args, **kwargs)`` on the data source or the model."""

    kind: str
    fn: str
    target: str  # "data", "model" (the ModelContext) or "model_data" (the model's world)
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# world, model, context
# ---------------------------------------------------------------------------------------
def ensure_world(n: int, seed: int, root: Path) -> tuple[Path, float | None]:
    """The world folder of ``n`` POIs under ``root`` (generated once) and the seconds it took."""
    if root == OUT:
        from queries import ensure_world as shared

        return shared(n, seed)
    from geograph.data.synthetic import generate_world
    from geograph.data.world_io import write_world

    folder = root / f"world_{n}_s{seed}"
    if (folder / "pois.parquet").is_file() and (folder / "covisits.parquet").is_file():
        return folder, None
    t0 = time.perf_counter()
    write_world(generate_world(n, seed=seed, n_images=0, progress=n >= 100_000), folder, overwrite=True)
    return folder, time.perf_counter() - t0


@dataclass
class Context:
    """What the clients share: the data source, and the model with its own world (or None)."""

    data: Any
    model: Any = None
    model_data: Any = None


def make_context(spec: dict) -> Context:
    """Fresh (cold) source and model from ``spec`` (picklable, so processes build their own)."""
    from geograph.analytics import ModelContext, WorldSource

    data = WorldSource.from_folder(spec["folder"], cache=spec["cache"])
    data.check()  # as geograph query does with --data
    if spec.get("run_id") is None:
        return Context(data)
    model = ModelContext.from_mlflow(run_id=spec["run_id"], tracking_uri=spec["tracking_uri"])
    return Context(data, model, WorldSource.from_world(model_world(model)))


def model_world(model) -> Any:
    """The embedded world the model was trained on (what geograph query uses without --data)."""
    from geograph.data.synthetic import generate_world

    d = model.predictor.cfg.data
    if d.world_dir or d.generator != "embedded":
        raise SystemExit("the soak needs a model trained on the embedded world (data.generator: embedded)")
    return generate_world(n_pois=d.n_pois, seed=d.world_seed, n_images=0, progress=False)


# ---------------------------------------------------------------------------------------
# the calls
# ---------------------------------------------------------------------------------------
def _misspell(word: str, rng: np.random.Generator) -> str:
    """``word`` with one character dropped and another doubled (a close, unknown value)."""
    i = int(rng.integers(0, len(word)))
    w = word[:i] + word[i + 1 :]
    j = int(rng.integers(0, len(w)))
    return w[:j] + w[j] + w[j:] + "x"


def make_calls(ctx: Context, n: int, seed: int) -> list[Call]:
    """``n`` calls drawn from :data:`MIX` (model kinds only with a model), seeded."""
    import polars as pl

    rng = np.random.default_rng(seed)
    kinds = [k for k, (_, _, needs_model) in MIX.items() if ctx.model is not None or not needs_model]
    w = np.array([MIX[k][0] for k in kinds])
    drawn = rng.choice(len(kinds), size=n, p=w / w.sum())
    pois = ctx.data.pois().select("poi_id", "state").collect()
    ids = pois["poi_id"].gather(rng.choice(pois.height, min(POI_POOL, pois.height), replace=False)).to_list()
    brands = (
        ctx.data.pois()
        .group_by("brand")
        .len()
        .drop_nulls()
        .sort(["len", "brand"], descending=[True, False])
        .head(BRAND_POOL)
        .collect()["brand"]
        .to_list()
    )
    brand_states = (
        ctx.data.pois()
        .filter(pl.col("brand").is_in(brands))
        .group_by("brand", "state")
        .len()
        .sort("brand", "state")
        .collect()
    )
    by_brand = brand_states.partition_by("brand", as_dict=True)
    states = sorted(pois["state"].unique().to_list())
    if ctx.model is not None:
        m = ctx.model
        mbrands = sorted({b for b in m.graph.index["brands"]})
        m_ids = m.ids
    out: list[Call] = []
    for k in drawn.tolist():
        kind = kinds[k]
        poi = ids[int(rng.integers(len(ids)))]
        brand = brands[int(rng.integers(len(brands)))]
        state = states[int(rng.integers(len(states)))]
        if kind == "covisited --poi":
            c = Call(kind, "covisited", "data", (poi,))
        elif kind == "covisited --poi --radius-km":
            c = Call(kind, "covisited", "data", (poi,), {"radius_km": float(rng.choice([2.0, 5.0, 20.0]))})
        elif kind == "covisited --brand":
            c = Call(kind, "covisited", "data", (), {"brand": brand, "top": int(rng.choice([5, 10, 20]))})
        elif kind == "covisited --brand --state":
            sts = by_brand[(brand,)]["state"].to_list()
            c = Call(
                kind, "covisited", "data", (), {"brand": brand, "state": sts[int(rng.integers(len(sts)))]}
            )
        elif kind == "naics-flow --state":
            c = Call(kind, "naics_flow", "data", (int(rng.integers(2, 7)),), {"state": state, "top": 50})
        elif kind == "naics-flow":
            c = Call(kind, "naics_flow", "data", (int(rng.integers(2, 4)),))
        elif kind == "hotspots --state":
            c = Call(kind, "hotspots", "data", (int(rng.choice(HOTSPOT_RESOLUTIONS)),), {"state": state})
        elif kind == "hotspots":
            c = Call(kind, "hotspots", "data", (int(rng.choice(HOTSPOT_RESOLUTIONS)),))
        elif kind == "error: unknown brand":
            c = Call(kind, "covisited", "data", (), {"brand": _misspell(brand, rng)})
        elif kind == "error: unknown POI id":
            c = Call(kind, "covisited", "data", ("poi_x" + poi[5:],))
        elif kind == "error: unknown state":
            c = Call(
                kind,
                "covisited",
                "data",
                (poi,),
                {"state": str(rng.choice(["ZZ", "Calif", state.lower() + "x"]))},
            )
        elif kind == "error: bad resolution / level":
            c = (
                Call(kind, "hotspots", "data", (int(rng.choice([16, -1])),))
                if rng.random() < 0.5
                else Call(kind, "naics_flow", "data", (int(rng.choice([1, 7])),))
            )
        else:
            c = _model_call(kind, rng, m_ids, mbrands, ctx)
        out.append(c)
    return out


def _model_call(kind: str, rng: np.random.Generator, ids: list[str], brands: list[str], ctx: Context) -> Call:
    m = ctx.model
    i = int(rng.integers(len(ids)))
    if kind == "covisited --poi (model)":
        return Call(kind, "covisited", "model_data", (ids[i],), {"model": True})
    if kind == "covisited --brand (model)":
        return Call(
            kind,
            "covisited",
            "model_data",
            (),
            {"brand": brands[int(rng.integers(len(brands)))], "model": True},
        )
    if kind == "hotspots --by residual":
        return Call(
            kind,
            "hotspots",
            "model_data",
            (int(rng.choice(HOTSPOT_RESOLUTIONS)),),
            {"by": "residual", "model": True},
        )
    if kind == "similar --poi":
        return Call(kind, "similar", "model", (ids[i],), {"source": True})
    if kind == "similar --brand":
        return Call(kind, "similar", "model", (), {"brand": brands[int(rng.integers(len(brands)))]})
    if kind == "error: similar, unknown POI id":
        return Call(kind, "similar", "model", (ids[i][:-1] + "x",), {"source": True})
    lat, lon = (float(x) for x in m.pos[i] + rng.normal(0, 0.002, 2))  # ~200 m from a POI
    venue = {"latitude": round(lat, 6), "longitude": round(lon, 6), "naics_code": f"{int(m.naics[i]):06d}"}
    if kind == "whatif":
        if rng.random() < 0.3:
            venue["brand"] = brands[int(rng.integers(len(brands)))]
        return Call(kind, "whatif", "model", (venue,), {"source": True, "top": 10})
    if rng.random() < 0.5:
        venue["naics_code"] = "999999"
    else:
        venue["latitude"] = 91.5
    return Call(kind, "whatif", "model", (venue,), {"source": True})


def execute(ctx: Context, call: Call) -> Any:
    """Run ``call`` on ``ctx`` as geograph query would; return a comparable outcome.

    Returns:
        ``("ok", DataFrame)``, ``("ok", (DataFrame, json of the rest))`` for whatif, or
        ``("error", type name, message)``.
    """
    import geograph.analytics as ga

    fn: Callable = getattr(ga, call.fn)
    kwargs = dict(call.kwargs)
    if kwargs.get("model") is True:
        kwargs["model"] = ctx.model
    if kwargs.get("source") is True:
        kwargs["source"] = ctx.model_data
    first = getattr(ctx, call.target)
    args = call.args
    if call.fn == "whatif":
        args = (ga.Venue(**args[0]),)
    try:
        res = fn(first, *args, **kwargs)
    except Exception as exc:  # an outcome like any other: compared, type and message
        return ("error", type(exc).__name__, str(exc))
    if isinstance(res, ga.WhatIfResult):
        rest = res.to_dict()
        rest.pop("neighbours")
        return ("ok", (res.neighbours, json.dumps(rest, sort_keys=True, default=str)))
    return ("ok", res)


def same(a: tuple, b: tuple) -> bool:
    """Exact equality of two outcomes (frames: schema and every value)."""
    if a[0] != b[0]:
        return False
    if a[0] == "error":
        return a == b
    x, y = a[1], b[1]
    if isinstance(x, tuple):
        return same(("ok", x[0]), ("ok", y[0])) and x[1] == y[1]
    return x.schema == y.schema and x.equals(y, null_equal=True)


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------
def run_serial(spec: dict, calls: list[Call]) -> dict:
    t0 = time.perf_counter()
    ctx = make_context(spec)
    load_s = time.perf_counter() - t0
    outcomes, lat = [], []
    t0 = time.perf_counter()
    for call in calls:
        s = time.perf_counter()
        outcomes.append(execute(ctx, call))
        lat.append((time.perf_counter() - s) * 1000)
    return {"outcomes": outcomes, "lat": lat, "wall_s": time.perf_counter() - t0, "load_s": load_s}


def run_threads(spec: dict, calls: list[Call], clients: int) -> dict:
    t0 = time.perf_counter()
    ctx = make_context(spec)
    load_s = time.perf_counter() - t0
    outcomes: list[Any] = [None] * len(calls)
    lat = [0.0] * len(calls)
    gate = threading.Barrier(clients)

    def client(c: int) -> None:
        gate.wait()
        for i in range(c, len(calls), clients):
            s = time.perf_counter()
            outcomes[i] = execute(ctx, calls[i])
            lat[i] = (time.perf_counter() - s) * 1000

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, c) for c in range(clients)]:
            f.result()
    return {"outcomes": outcomes, "lat": lat, "wall_s": time.perf_counter() - t0, "load_s": load_s}


def _process_client(spec: dict, calls: list[Call], c: int, clients: int) -> dict:
    ctx = make_context(spec)
    mine = list(range(c, len(calls), clients))
    out, lat = [], []
    start = time.time()
    for i in mine:
        s = time.perf_counter()
        out.append(execute(ctx, calls[i]))
        lat.append((time.perf_counter() - s) * 1000)
    return {
        "index": mine,
        "outcomes": out,
        "lat": lat,
        "start": start,
        "end": time.time(),
        "maxrss_mb": maxrss_mb(),
    }


def run_processes(spec: dict, calls: list[Call], clients: int) -> dict:
    import multiprocessing as mp

    outcomes: list[Any] = [None] * len(calls)
    lat = [0.0] * len(calls)
    with ProcessPoolExecutor(clients, mp_context=mp.get_context("spawn")) as pool:
        parts = [
            f.result()
            for f in [pool.submit(_process_client, spec, calls, c, clients) for c in range(clients)]
        ]
    for p in parts:
        for i, o, t in zip(p["index"], p["outcomes"], p["lat"], strict=True):
            outcomes[i], lat[i] = o, t
    wall = max(p["end"] for p in parts) - min(p["start"] for p in parts)
    return {
        "outcomes": outcomes,
        "lat": lat,
        "wall_s": wall,
        "maxrss_mb_per_process": [round(p["maxrss_mb"]) for p in parts],
    }


def compare(ref: list, got: list, calls: list[Call]) -> list[dict]:
    """One entry per call whose outcome differs from the reference: the call, and what differs."""
    bad = []
    for i, (a, b) in enumerate(zip(ref, got, strict=True)):
        if not same(a, b):
            bad.append(
                {
                    "call": i,
                    "kind": calls[i].kind,
                    "fn": calls[i].fn,
                    "args": repr((calls[i].args, calls[i].kwargs))[:300],
                    **difference(a, b),
                }
            )
    return bad


def _frames(o: tuple) -> tuple[Any, str | None]:
    """The answered frame of an outcome, and the rest of a whatif answer (JSON) or None."""
    return (o[1][0], o[1][1]) if isinstance(o[1], tuple) else (o[1], None)


def difference(a: tuple, b: tuple, rows: int = 5) -> dict[str, Any]:
    """What differs between the reference outcome ``a`` and ``b``, so that a mismatch explains
    itself: the two errors (or an error and a frame's shape); for two frames, the schema or
    shape when they differ, else each differing column with its number of differing rows and
    the first ``rows`` of them as ``[row, reference value, value]``."""
    if a[0] != b[0] or a[0] == "error":
        brief = [o[1:] if o[0] == "error" else ("frame", list(_frames(o)[0].shape)) for o in (a, b)]
        return {"reference": repr(brief[0])[:300], "got": repr(brief[1])[:300]}
    (x, rx), (y, ry) = _frames(a), _frames(b)
    out: dict[str, Any] = {}
    if rx != ry:
        out["rest"] = [rx, ry]
    if x.schema != y.schema:
        out["schema"] = [str(dict(x.schema)), str(dict(y.schema))]
    if x.shape != y.shape:
        out["shape"] = [list(x.shape), list(y.shape)]
    if x.height == y.height:
        cols: dict[str, Any] = {}
        for c in (c for c in x.columns if c in y.columns):
            try:
                differs = ~x[c].eq_missing(y[c])
            except Exception:  # columns of two dtypes polars does not compare
                differs = np.asarray([u != v for u, v in zip(x[c].to_list(), y[c].to_list(), strict=True)])
            where = np.flatnonzero(np.asarray(differs))
            if len(where):
                cols[c] = {
                    "rows_differing": int(len(where)),
                    "first": [[int(i), x[c][int(i)], y[c][int(i)]] for i in where[:rows]],
                }
        out["columns"] = cols
    return out


def save_mismatches(bad: list[dict], ref: list, got: list, phase: str, folder: Path) -> list[str]:
    """Both answers of each mismatch answered with frames, as Parquet files under ``folder``
    (``call<i>_<phase>_reference.parquet`` / ``..._got.parquet``); returns their names."""
    import polars as pl

    names = []
    for m in bad:
        i = m["call"]
        if ref[i][0] != "ok" or got[i][0] != "ok":
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for label, o in (("reference", ref[i]), ("got", got[i])):
            frame: pl.DataFrame = _frames(o)[0]
            target = folder / f"call{i}_{phase}_{label}.parquet"
            tmp = target.with_name(f".{target.name}.tmp")
            frame.write_parquet(tmp)
            os.replace(tmp, target)
            names.append(target.name)
    return names


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 2) if xs else float("nan")


def hardware() -> dict:
    import polars as pl
    import torch
    from hostinfo import cpu_model

    cpu = cpu_model()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "polars": pl.__version__,
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pois", type=int, default=1_000_000, help="POIs of the data world (default 1M)")
    ap.add_argument("--calls", type=int, default=10_000, help="calls in the mix (default 10,000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the world and of the mix (default 0)")
    ap.add_argument(
        "--out", type=Path, default=OUT / "soak", help="folder of soak.json (default benchmarks/out/soak)"
    )
    ap.add_argument(
        "--world-root", type=Path, default=OUT, help="where worlds are generated (default benchmarks/out)"
    )
    ap.add_argument(
        "--no-cache", action="store_true", help="lazy Parquet scans on every query (CLI without --cache)"
    )
    ap.add_argument("--processes", action="store_true", help="also run the clients as processes")
    ap.add_argument("--no-model", action="store_true", help="leave out the model queries")
    ap.add_argument("--model-pois", type=int, default=5_000, help="POIs of the model's world (default 5,000)")
    ap.add_argument("--model-epochs", type=int, default=3)
    ap.add_argument("--run-id", default=None, help="use this model (trained on an embedded world) instead")
    ap.add_argument("--tracking-uri", default=None, help="MLflow store of --run-id")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    if args.calls <= 0 or args.clients <= 0 or args.pois <= 0:
        ap.error(f"--calls, --clients and --pois must be > 0, got {args.calls}, {args.clients}, {args.pois}")
    args.out.mkdir(parents=True, exist_ok=True)
    folder, gen_s = ensure_world(args.pois, args.seed, args.world_root)
    spec: dict[str, Any] = {
        "folder": str(folder),
        "cache": not args.no_cache,
        "run_id": None,
        "tracking_uri": None,
    }
    model_info: dict[str, Any] = {}
    if args.run_id is not None:
        spec.update(run_id=args.run_id, tracking_uri=args.tracking_uri)
    elif not args.no_model:
        from queries import ensure_model

        run_id, uri, train_s = ensure_model(args.model_pois, args.seed, args.model_epochs)
        spec.update(run_id=run_id, tracking_uri=uri)
        model_info["train_s"] = train_s
    model_info["run_id"] = spec["run_id"]

    probe = make_context(spec)
    calls = make_calls(probe, args.calls, args.seed)
    world = {
        "folder": folder.name,
        "pois": args.pois,
        "generated_s": gen_s,
        "covisit_rows": int(probe.data.covisits().collect().height),
    }
    if probe.model is not None:
        model_info["pois"] = len(probe.model.ids)
    del probe
    gc.collect()

    phases: dict[str, dict] = {}
    print(f"reference: {args.calls:,} calls, one thread", file=sys.stderr)
    ref = run_serial(spec, calls)
    expected = [MIX[c.kind][1] for c in calls]
    unexpected = [
        i for i, (o, ok) in enumerate(zip(ref["outcomes"], expected, strict=True)) if (o[0] == "ok") != ok
    ]
    phases["reference"] = {**ref, "clients": 1, "maxrss_mb": round(maxrss_mb())}
    gc.collect()
    print(f"threads: {args.clients} clients", file=sys.stderr)
    phases["threads"] = run_threads(spec, calls, args.clients)
    phases["threads"]["maxrss_mb"] = round(maxrss_mb())
    phases["threads"]["clients"] = args.clients
    if args.processes:
        print(f"processes: {args.clients} clients", file=sys.stderr)
        phases["processes"] = run_processes(spec, calls, args.clients)
        phases["processes"]["clients"] = args.clients

    kinds = sorted({c.kind for c in calls}, key=list(MIX).index)
    summary: dict[str, dict] = {}
    for name, ph in phases.items():
        bad = [] if name == "reference" else compare(ref["outcomes"], ph["outcomes"], calls)
        saved = save_mismatches(bad[:20], ref["outcomes"], ph["outcomes"], name, args.out / "mismatches")
        per_kind = {}
        for k in [*kinds, "all"]:
            xs = [t for t, c in zip(ph["lat"], calls, strict=True) if k in ("all", c.kind)]
            per_kind[k] = {"calls": len(xs), "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)}
        summary[name] = {
            "clients": ph["clients"],
            "calls": len(calls),
            "mismatches": len(bad),
            "mismatch_examples": bad[:20],
            "mismatch_frames": saved,
            "wall_s": round(ph["wall_s"], 2),
            "throughput_calls_per_s": round(len(calls) / ph["wall_s"], 2),
            "load_s": round(ph["load_s"], 2) if "load_s" in ph else None,
            "peak_rss_mb": ph.get("maxrss_mb"),
            "peak_rss_mb_per_process": ph.get("maxrss_mb_per_process"),
            "latency": per_kind,
        }
    report = {
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "world_root")
        },
        "hardware": hardware(),
        "world": world,
        "model": model_info,
        "mix": {k: sum(c.kind == k for c in calls) for k in kinds},
        "reference_unexpected": [
            {"call": i, "kind": calls[i].kind, "outcome": repr(ref["outcomes"][i][:3])[:300]}
            for i in unexpected[:20]
        ],
        "reference_unexpected_count": len(unexpected),
        "phases": summary,
    }
    from geograph.utils.atomic import atomic_write_text

    target = args.out / "soak.json"
    atomic_write_text(target, json.dumps(report, indent=2, default=str) + "\n")
    _print(report, args.markdown)
    print(f"wrote {target}", file=sys.stderr)
    failed = len(unexpected) + sum(s["mismatches"] for s in summary.values())
    return 1 if failed else 0


def _print(report: dict, markdown: bool) -> None:
    phases = report["phases"]
    head = ["call", "calls", "1 thread p50 ms"]
    conc = [p for p in phases if p != "reference"]
    for p in conc:
        head += [f"{p} p50 ms", f"{p} p99 ms"]
    rows = []
    for k, n in [*report["mix"].items(), ("all", sum(report["mix"].values()))]:
        cells = [k, f"{n:,}", f"{phases['reference']['latency'][k]['p50_ms']:,.1f}"]
        for p in conc:
            lat = phases[p]["latency"][k]
            cells += [f"{lat['p50_ms']:,.1f}", f"{lat['p99_ms']:,.1f}"]
        rows.append(cells)
    hw = report["hardware"]
    lines = [
        f"world {report['world']['pois']:,} POIs ({report['world']['covisit_rows']:,} co-visit rows); "
        + (
            f"model on {report['model']['pois']:,} POIs"
            if report["model"].get("pois")
            else "no model queries"
        ),
        f"{hw['cpu']}, {hw['cores']} cores; python {hw['python']}, torch {hw['torch']}, polars {hw['polars']}",
        f"reference outcomes not as intended (valid call failed / invalid call answered): {report['reference_unexpected_count']}",
    ]
    for p, s in phases.items():
        rss = (
            s["peak_rss_mb"]
            if s["peak_rss_mb"] is not None
            else f"{max(s['peak_rss_mb_per_process']):,} per process (max)"
        )
        lines.append(
            f"{p}: {s['clients']} client(s), {s['mismatches']} mismatches, {s['wall_s']:,.1f} s, "
            f"{s['throughput_calls_per_s']:,.1f} calls/s, peak RSS {rss} MB"
        )
    for p, s in phases.items():
        for m in s["mismatch_examples"]:
            what = {k: v for k, v in m.items() if k not in ("call", "kind", "fn", "args")}
            lines.append(f"{p} mismatch: call {m['call']} ({m['kind']}: {m['args']}): {json.dumps(what, default=str)}")
        if s["mismatch_frames"]:
            lines.append(f"{p}: both answers of each mismatch in mismatches/ beside soak.json")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
        print()
        for ln in lines:
            print(f"- {ln}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"soak: {sum(report['mix'].values()):,} mixed query calls")
    for h in head:
        table.add_column(h, justify="left" if h == "call" else "right", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    console = Console()
    console.print(table)
    for ln in lines:
        console.print(ln, highlight=False, markup=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
