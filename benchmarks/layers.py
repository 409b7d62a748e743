"""Layer-level timings behind the co-visit model's speed, each against its reference in one run.

* dropout: ``geograph.nn.dropout`` against ``torch.nn.functional.dropout`` (forward, and forward +
  backward) on an ``(N, 64)`` float32 tensor, p = 0.1;
* ReLU + dropout: ``geograph.nn.dropout.relu_keep`` (one pass each way; the model folds the
  dropout scale into the weights next to it) against ``F.dropout(F.relu(x))``, forward + backward;
* heterogeneous layer: ``geograph.nn.HeteroSAGE`` against PyG's ``HeteroConv`` of one
  ``WeightedSAGEConv`` per relation, holding the same weights (the relations of the co-visit
  model: co-visits both ways, near, POI-in-cell both ways, cell adjacency; random edges with the
  model's degrees), forward + backward, both aggregating over the same CSR adjacencies;
* adjacency product: ``A @ x`` forward + backward with ``Adjacency.matmul`` (transpose built once
  and kept, as the layers of one step share it) against ``torch.sparse.mm`` (whose backward
  transposes the CSR matrix on every call), two products per adjacency as in a 2-layer model.

Best of ``--repeat`` calls after a warm-up; one torch thread by default (``--threads``). Prints a
hardware line and a Markdown table of milliseconds and ratios (reference / geograph).

    .venv/bin/python benchmarks/layers.py --pois 20000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

OUT = Path(__file__).resolve().parent / "out"


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1e3 * best


def graph(n_poi: int, seed: int = 0):
    """Random edges with the co-visit model's degrees (2 co-visits, 9 near neighbours per POI,
    one cell per 5 POIs, 6 neighbours per cell), weights on the co-visits."""
    g = torch.Generator().manual_seed(seed)
    n_cell = max(n_poi // 5, 1)
    n = {"poi": n_poi, "cell": n_cell}
    spec = {
        ("poi", "covisits", "poi"): 2 * n_poi,
        ("poi", "rev_covisits", "poi"): 2 * n_poi,
        ("poi", "near", "poi"): 9 * n_poi,
        ("poi", "in", "cell"): n_poi,
        ("cell", "rev_in", "poi"): n_poi,
        ("cell", "adjacent", "cell"): 6 * n_cell,
    }
    edges = {
        et: torch.stack([torch.randint(0, n[et[0]], (e,), generator=g), torch.randint(0, n[et[2]], (e,), generator=g)])
        for et, e in spec.items()
    }
    w = torch.rand(2 * n_poi, generator=g) + 0.5
    weights = {("poi", "covisits", "poi"): w, ("poi", "rev_covisits", "poi"): w}
    return n, edges, weights


def measure(n_poi: int, d: int, repeat: int) -> list[tuple[str, int, float, float]]:
    """The rows of one size: (operation, POIs, reference ms, geograph ms)."""
    from torch_geometric.nn import HeteroConv

    from geograph.nn.dropout import dropout, relu_keep
    from geograph.nn.hetero_sage import HeteroSAGE
    from geograph.nn.weighted_sage_conv import Adjacency, WeightedSAGEConv

    rows = []
    torch.manual_seed(0)
    x = torch.randn(n_poi, d, requires_grad=True)
    g = torch.randn(n_poi, d)

    def ref_drop():
        return torch.nn.functional.dropout(x, 0.1, True)

    def geo_drop():
        return dropout(x, 0.1, True)

    rows.append(("dropout forward", n_poi, best_ms(ref_drop, repeat), best_ms(geo_drop, repeat)))
    rows.append((
        "dropout forward + backward",
        n_poi,
        best_ms(lambda: ref_drop().backward(g), repeat),
        best_ms(lambda: geo_drop().backward(g), repeat),
    ))

    def ref_relu_drop():
        return torch.nn.functional.dropout(torch.relu(x), 0.1, True)

    def geo_relu_drop():
        return relu_keep(x, 0.1)  # the model folds the dropout scale into the weights around it

    rows.append((
        "ReLU + dropout forward + backward",
        n_poi,
        best_ms(lambda: ref_relu_drop().backward(g), repeat),
        best_ms(lambda: geo_relu_drop().backward(g), repeat),
    ))

    n, edges, weights = graph(n_poi)
    ets = list(edges)
    ref = HeteroConv({et: WeightedSAGEConv(d, d) for et in ets}, aggr="sum")
    layer = HeteroSAGE(ets, {"poi": d, "cell": d}, d)
    layer.load_state_dict(ref.state_dict())
    xs = {t: torch.randn(n[t], d, requires_grad=True) for t in n}
    adj = {et: Adjacency(e, weights.get(et), n[et[0]], n[et[2]]) for et, e in edges.items()}
    csr = {et: a.csr for et, a in adj.items()}
    for a in adj.values():
        a.transposed()  # built once per step in the model; timed below on its own

    def run_ref():
        out = ref(xs, csr)
        sum(v.sum() for v in out.values()).backward()

    def run_geo():
        out = layer(xs, adj)
        sum(v.sum() for v in out.values()).backward()

    rows.append(("hetero layer forward + backward", n_poi, best_ms(run_ref, repeat), best_ms(run_geo, repeat)))

    near = edges[("poi", "near", "poi")]

    def spmm_ref():
        m = Adjacency(near, None, n_poi, n_poi).csr
        for _ in range(2):
            torch.sparse.mm(m, x).backward(g)

    def spmm_geo():
        m = Adjacency(near, None, n_poi, n_poi)
        for _ in range(2):
            m.matmul(x).backward(g)

    rows.append((
        "near adjacency: build + 2 x (A @ x forward + backward)",
        n_poi,
        best_ms(spmm_ref, repeat),
        best_ms(spmm_geo, repeat),
    ))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pois", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT / "layers.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hostinfo import cpu_model

    hw = (
        f"hardware: {cpu_model()}, {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); Python {platform.python_version()}"
    )
    print(hw)
    rows = [row for n_poi in args.pois for row in measure(n_poi, args.hidden, args.repeat)]
    print()
    print("| operation | POIs | reference ms | geograph ms | reference / geograph |")
    print("|---|---:|---:|---:|---:|")
    for name, n_poi, r, gms in rows:
        print(f"| {name} | {n_poi:,} | {r:.2f} | {gms:.2f} | {r / gms:.2f}x |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps({"hardware": hw, "rows": rows}, indent=1))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
