"""Benchmark graph construction: geograph's ``build_graph`` next to pandas + networkx.

For each size (default 10K, 100K, 1M POIs) the embedded world is generated once with
``covisits_per_poi=20`` (the generator counts a pair for both its POIs, so this is
``n_pois * 10`` co-visit rows: 10 co-visit edges per POI) and no images (``image -similar->
image`` is an exact O(images^2) top-k, a separate cost; see the note in docs/guides/graph.md),
and cached as Parquet under ``benchmarks/out/worlds/``. Then, each in its own subprocess so that
its peak resident memory (``ru_maxrss``) is its own:

* **geograph**: ``load_world`` + ``build_graph`` with ``GraphConfig()`` defaults (H3 resolution 7
  cells, ``cell_k=1``, ``near_k=8`` within 25 km, reverse edges, pair features).
* **pandas + networkx**: the straightforward construction of the same graph: the tables as
  pandas frames, one ``networkx.MultiDiGraph`` with POI and cell nodes (attributes), ``in``
  edges (``h3.latlng_to_cell`` per row), cell adjacency (``h3.grid_disk``), ``near`` edges from
  a scikit-learn ``BallTree`` (haversine) symmetrised, and co-visit edges (duplicates summed,
  self-loops dropped) with ``visitors``, ``distance_km``, ``same_brand`` and the NAICS prefix
  depth computed vectorised in pandas. No reverse edges (networkx walks in-edges for free).

A run that passes ``--max-seconds`` or whose resident memory passes ``--max-gb`` is stopped and
reported as capped. Prints a Markdown table and writes ``benchmarks/out/graph_build.json``.

    .venv/bin/python benchmarks/graph_build.py                    # 10K, 100K, 1M
    .venv/bin/python benchmarks/graph_build.py --sizes 10000 --profile

Profile of ``build_graph`` at 1M POIs / 10M co-visit rows (cProfile, 2 cores), shares of the
build before H3 was vectorised: cKDTree kNN ~22 %, polars id joins ~17 %, ``pair_features``
~17 %, near symmetrisation ~9 %, the per-POI ``h3.latlng_to_cell`` loop ~9 %, the per-cell
``grid_disk`` loop ~4 %. Both loops are now array calls on ``uint64`` cells (``h3ronpy``;
docs/guides/benchmarks.md, "H3 at array speed"). Before this benchmark,
``pair_features`` (35 %), ``torch.unique`` in ``symmetrize`` and ``np.unique`` on co-visit keys
were the top items; they were rewritten with identical output (see docs/guides/graph.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
WORLDS = OUT / "worlds"

_GEN = r"""
import sys
from geograph.data.synthetic import generate_world
from geograph.data.world_io import write_world
n, seed, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
world = generate_world(n, seed=seed, n_images=0, covisits_per_poi=20, progress=False)
write_world(world, folder, overwrite=True)
"""

_GEOGRAPH = r"""
import cProfile, io, json, pstats, resource, sys, time
folder, profile = sys.argv[1], sys.argv[2] == "1"
from geograph.data import load_world
from geograph.graph import GraphConfig, build_graph
import h3, numpy, scipy.spatial, torch, torch_geometric  # imports are not timed
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
world = load_world(folder)
loaded_mb = rss()
prof = cProfile.Profile() if profile else None
t0 = time.perf_counter()
if prof: prof.enable()
graph = build_graph(world, GraphConfig())
if prof: prof.disable()
t1 = time.perf_counter()
row = {"build_s": round(t1 - t0, 2), "peak_rss_mb": round(rss()), "rss_after_load_mb": round(loaded_mb),
       "nodes": sum(int(graph.data[nt].num_nodes) for nt in graph.data.node_types),
       "edges": sum(int(graph.data[et].edge_index.size(1)) for et in graph.data.edge_types),
       "edges_forward": sum(int(graph.data[et].edge_index.size(1)) for et in graph.data.edge_types
                            if not et[1].startswith("rev_")),
       "summary": graph.summary()}
if prof:
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    row["profile"] = buf.getvalue()
print("RESULT " + json.dumps(row))
"""

_NETWORKX = r"""
import json, resource, sys, time
folder = sys.argv[1]
res, cell_k, near_k, radius_km = 7, 1, 8, 25.0  # GraphConfig() defaults
import h3, networkx as nx, numpy as np, pandas as pd
from sklearn.neighbors import BallTree
from geograph.data import load_world
R = 6371.0088
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
world = load_world(folder)
pois = world.pois.to_pandas()
cov = world.covisits.select("src_poi_id", "dst_poi_id", "visitors").to_pandas()
del world
loaded_mb = rss()
t0 = time.perf_counter()

def hav(la1, lo1, la2, lo2):
    la1, lo1, la2, lo2 = map(np.radians, (la1, lo1, la2, lo2))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * R * np.arcsin(np.sqrt(h))

G = nx.MultiDiGraph()
pois["cell"] = [h3.latlng_to_cell(a, b, res) for a, b in zip(pois["latitude"], pois["longitude"])]
G.add_nodes_from((("poi", r["poi_id"]), r) for r in pois.to_dict("records"))
counts = pois["cell"].value_counts()
G.add_nodes_from((("cell", c), {"n_pois": int(k), "pos": h3.cell_to_latlng(c)}) for c, k in counts.items())
G.add_edges_from((("poi", p), ("cell", c), "in") for p, c in zip(pois["poi_id"], pois["cell"]))
cells = set(counts.index)
G.add_edges_from((("cell", c), ("cell", nb), "adjacent") for c in cells for nb in h3.grid_disk(c, cell_k)
                 if nb != c and nb in cells)
# near: k nearest within the radius (BallTree, haversine), symmetrised
xy = np.radians(pois[["latitude", "longitude"]].to_numpy())
dist, idx = BallTree(xy, metric="haversine").query(xy, k=min(near_k + 1, len(pois)))
src = np.repeat(np.arange(len(pois)), idx.shape[1])
near = pd.DataFrame({"s": src, "d": idx.ravel(), "km": dist.ravel() * R})
near = near[(near.s != near.d) & (near.km <= radius_km)]
near = pd.concat([near, near.rename(columns={"s": "d", "d": "s"})]).drop_duplicates(["s", "d"])
ids = pois["poi_id"].to_numpy()
G.add_edges_from((("poi", a), ("poi", b), "near", {"distance_km": k})
                 for a, b, k in zip(ids[near.s.to_numpy()], ids[near.d.to_numpy()], near.km.to_numpy()))
# co-visits: self-loops dropped, duplicates summed, pair features joined from the POI table
cov = cov[cov.src_poi_id != cov.dst_poi_id].groupby(["src_poi_id", "dst_poi_id"], as_index=False)["visitors"].sum()
attrs = pois.set_index("poi_id")[["latitude", "longitude", "brand", "naics_code"]]
cov = cov.join(attrs, on="src_poi_id").join(attrs, on="dst_poi_id", rsuffix="_d")
cov["distance_km"] = hav(cov.latitude, cov.longitude, cov.latitude_d, cov.longitude_d)
cov["same_brand"] = (cov.brand == cov.brand_d) & cov.brand.notna()
a, b = cov.naics_code.astype("int64"), cov.naics_code_d.astype("int64")
depth, still = np.zeros(len(cov), dtype=np.int64), np.ones(len(cov), dtype=bool)
for lv in (2, 3, 4, 5, 6):
    still &= ((a // 10 ** (6 - lv)) == (b // 10 ** (6 - lv))).to_numpy()
    depth[still] = lv
cov["naics_depth"] = depth
G.add_edges_from(
    (("poi", s), ("poi", d), "covisits", {"visitors": v, "distance_km": k, "same_brand": sb, "naics_depth": nd})
    for s, d, v, k, sb, nd in zip(cov.src_poi_id, cov.dst_poi_id, cov.visitors, cov.distance_km, cov.same_brand,
                                  cov.naics_depth)
)
t1 = time.perf_counter()
print("RESULT " + json.dumps({"build_s": round(t1 - t0, 2), "peak_rss_mb": round(rss()),
                              "rss_after_load_mb": round(loaded_mb), "nodes": G.number_of_nodes(),
                              "edges": G.number_of_edges()}))
"""


def run_child(code: str, args: list[str], max_s: float, max_gb: float) -> dict:
    """Run ``code`` in a fresh interpreter; stop it past ``max_s`` seconds or ``max_gb`` RSS."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    ps = psutil.Process(proc.pid)
    peak = 0.0
    capped = None
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss / 2**30)
        except psutil.NoSuchProcess:
            break
        elapsed = time.perf_counter() - t0
        if peak > max_gb or elapsed > max_s:
            capped = f"stopped: RSS {peak:.1f} GB after {elapsed:.0f} s (budget {max_gb:g} GB, {max_s:g} s)"
            proc.kill()
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    if capped:
        return {"capped": capped}
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed (exit {proc.returncode}):\n{err[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def ensure_world(n: int, seed: int, regen: bool) -> Path:
    folder = WORLDS / f"pois{n}_seed{seed}_cv20"
    if regen or not (folder / "covisits.parquet").exists():
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _GEN, str(n), str(seed), str(folder)], check=True, cwd=ROOT)
        print(f"generated world {n:,} POIs in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return folder


def _fmt_s(r: dict) -> str:
    return r["capped"] if "capped" in r else f"{r['build_s']:.2f}"


def _fmt_mb(r: dict, key: str) -> str:
    return "-" if "capped" in r else f"{r[key]:,}"


def markdown(rows: list[dict]) -> str:
    head = (
        "| POIs | co-visit rows | geograph build (s) | geograph µs/POI | geograph peak RSS (MB) | "
        "RSS after load (MB) | networkx build (s) | networkx peak RSS (MB) | time ratio nx/geograph | "
        "edges geograph (+ reverse) / networkx |"
    )
    sep = "|" + "|".join("---:" for _ in range(10)) + "|"
    body = []
    for r in rows:
        g, x = r["geograph"], r["networkx"]
        ratio = "-" if "capped" in x else f"{x['build_s'] / g['build_s']:.1f}x"
        if "capped" in x:
            ratio = (
                f"> {r['nx_max_s'] / g['build_s']:.1f}x (capped)" if "s (budget" in x["capped"] else "capped"
            )
        edges = f"{g['edges_forward']:,} (+{g['edges'] - g['edges_forward']:,}) / " + (
            "-" if "capped" in x else f"{x['edges']:,}"
        )
        body.append(
            f"| {r['pois']:,} | {r['covisit_rows']:,} | {_fmt_s(g)} | {1e6 * g['build_s'] / r['pois']:.1f} | "
            f"{_fmt_mb(g, 'peak_rss_mb')} | {_fmt_mb(g, 'rss_after_load_mb')} | {_fmt_s(x)} | "
            f"{_fmt_mb(x, 'peak_rss_mb')} | {ratio} | {edges} |"
        )
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated POI counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regen", action="store_true", help="regenerate the cached worlds")
    parser.add_argument("--profile", action="store_true", help="print geograph's cProfile for each size")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="networkx time budget per size")
    parser.add_argument("--max-gb", type=float, default=8.0, help="RSS budget per run (GB)")
    parser.add_argument("--skip-networkx", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    sys.path.insert(0, str(ROOT))
    import polars as pl

    from geograph.utils.atomic import atomic_write_text

    rows = []
    for n in sizes:
        folder = ensure_world(n, args.seed, args.regen)
        n_cov = pl.scan_parquet(folder / "covisits.parquet").select(pl.len()).collect().item()
        g = run_child(_GEOGRAPH, [str(folder), "1" if args.profile else "0"], 600.0, args.max_gb)
        print(f"{n:,} POIs: geograph {_fmt_s(g)} s", file=sys.stderr)
        if args.profile and "profile" in g:
            print(g.pop("profile"), file=sys.stderr)
        if args.skip_networkx:
            x = {"capped": "not run"}
        else:
            x = run_child(_NETWORKX, [str(folder)], args.max_seconds, args.max_gb)
        print(f"{n:,} POIs: networkx {_fmt_s(x)}", file=sys.stderr)
        rows.append(
            {"pois": n, "covisit_rows": n_cov, "geograph": g, "networkx": x, "nx_max_s": args.max_seconds}
        )
    from importlib.metadata import version

    from hostinfo import hardware_line

    hw = hardware_line(f"torch {version('torch')}, polars {version('polars')}", "one process per build")
    table = markdown(rows)
    print(hw + "\n")
    print(table)
    meta = {
        "machine": {
            "hardware": hw,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "seed": args.seed,
        "rows": rows,
        "markdown": table,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / "graph_build.json", json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
