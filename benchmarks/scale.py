"""Scale-out benchmark: per-state (out-of-core) co-visitation training with 1 and 2 ranks.

The embedded world (``--pois`` POIs over the 48 contiguous states) is written once as Parquet
partitioned by state (``pois/state=CA/part-0.parquet``). For each rank count, ``torchrun``
(gloo on CPU) starts that many workers; each reads the per-state row counts from the Parquet
footers, takes its states (balanced by co-visit rows, largest first), scans only their
partitions, builds and trains on them one state group at a time (``data.loading=per_state``,
`geograph.covisit.sharded`). Reported: seconds per epoch (median of the epochs after the
first), peak RSS of each rank, speed-up and memory ratio against one rank, the POIs each rank
loaded, the largest state, and a projection of one epoch at the paper's scale (94.9M co-visit
records, 48 states) from the measured cost per training pair.

    python benchmarks/scale.py --pois 100000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

PAPER_RECORDS = 94_900_000
PAPER_STATES = 48
CONTIGUOUS_48 = sorted(
    "AL AZ AR CA CO CT DE FL GA ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    from geograph import covisit as C
    from geograph.covisit.config import CovisitConfig
    from geograph.distributed import init_from_env

    info = init_from_env(900)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    cfg = CovisitConfig.from_dict({
        "data": {"world_dir": args.world, "cache_dir": None, "loading": "per_state"},
        "train": {"epochs": args.epochs, "patience": 1000, "max_group_pois": args.max_group_pois,
                  "checkpoint_dir": f"{args.out}/ckpt-{info.world_size}"},
    })
    prep = C.prepare(cfg)
    t_prep = time.perf_counter() - t0
    rss_prep = _rss_mb()
    fr = C.fit_gnn(prep)
    sh = prep.shard
    res = {
        "rank": info.rank,
        "world_size": info.world_size,
        "prepare_s": t_prep,
        "epoch_s": [h["epoch_time_s"] for h in fr.history],
        "train_pairs": sh.train_pairs,
        "rank_train_pairs": len(prep.split.pairs["train"]),
        "states": sh.states,
        "groups": len(prep.groups),
        "rank_pois": sum(v["core_pois"] for v in sh.loaded.values()),
        "largest_state": max(sh.sizes, key=lambda s: sh.sizes[s]["pois"]),
        "largest_state_pois": max(v["pois"] for v in sh.sizes.values()),
        "largest_state_covisits": max(v["covisits"] for v in sh.sizes.values()),
        "peak_state_graph_pois": sh.peak_state_pois,
        "pois": int(sh.summary["pois"]),
        "covisit_rows": sum(v["covisits"] for v in sh.sizes.values()),
        "rss_start_mb": rss0,
        "rss_after_prepare_mb": rss_prep,
        "peak_rss_mb": _rss_mb(),
    }
    Path(args.out, f"scale-{info.world_size}-rank{info.rank}.json").write_text(json.dumps(res))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pois", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-group-pois", type=int, default=20_000)
    p.add_argument("--out", default="benchmarks/out/scale")
    p.add_argument("--world", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    from geograph.data import write_world
    from geograph.data.synthetic import generate_world

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.world = str(out / f"world-{args.pois}")
    t0 = time.perf_counter()
    write_world(generate_world(n_pois=args.pois, seed=0, n_images=0, states=CONTIGUOUS_48), args.world,
                partition_by="state", overwrite=True)
    t_world = time.perf_counter() - t0
    rows = []
    for n in args.ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--nnodes", "1",
               "--master-addr", "127.0.0.1", "--master-port", str(_port()), __file__, "--worker",
               "--pois", str(args.pois), "--epochs", str(args.epochs), "--out", args.out, "--world", args.world,
               "--max-group-pois", str(args.max_group_pois)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        wall = time.perf_counter() - t0
        ranks = [json.loads(Path(args.out, f"scale-{n}-rank{r}.json").read_text()) for r in range(n)]
        steady = [statistics.median(r["epoch_s"][1:] or r["epoch_s"]) for r in ranks]
        rows.append({"ranks": n, "epoch_s": max(steady), "peak_rss_mb": [round(r["peak_rss_mb"]) for r in ranks],
                     "rss_start_mb": [round(r["rss_start_mb"]) for r in ranks],
                     "rank_pois": [r["rank_pois"] for r in ranks],
                     "rank_train_pairs": [r["rank_train_pairs"] for r in ranks],
                     "peak_state_graph_pois": [r["peak_state_graph_pois"] for r in ranks],
                     "prepare_s": [round(r["prepare_s"], 1) for r in ranks], "wall_s": wall, "ranks_detail": ranks})
    base = rows[0]
    i0 = base["ranks_detail"][0]
    load = os.getloadavg()[0]
    print(f"\nworld: {i0['pois']:,} POIs in {PAPER_STATES} states, {i0['covisit_rows']:,} co-visit rows, "
          f"{i0['train_pairs']:,} training pairs; largest state {i0['largest_state']} with {i0['largest_state_pois']:,} "
          f"POIs ({i0['largest_state_covisits']:,} co-visit rows); groups of at most {args.max_group_pois:,} POIs; "
          f"world written in {t_world:.0f} s; load average {load:.1f} on {os.cpu_count()} cores\n")
    print("| ranks | s / epoch | speed-up | prepare s | peak RSS per rank (MB) | memory ratio | POIs loaded per rank "
          "| largest state graph per rank (POIs) | training pairs per rank |")
    print("|---:|---:|---:|---|---|---:|---|---|---|")
    for r in rows:
        print(f"| {r['ranks']} | {r['epoch_s']:.1f} | {base['epoch_s'] / r['epoch_s']:.2f}x | {r['prepare_s']} | "
              f"{r['peak_rss_mb']} | {max(r['peak_rss_mb']) / max(base['peak_rss_mb']):.2f} | {r['rank_pois']} | "
              f"{r['peak_state_graph_pois']} | {r['rank_train_pairs']} |")
    per_pair = base["epoch_s"] / i0["train_pairs"]
    proj_1 = per_pair * PAPER_RECORDS * i0["train_pairs"] / i0["covisit_rows"]
    share = i0["largest_state_covisits"] / i0["covisit_rows"]
    print(f"\nprojection to the paper's scale ({PAPER_RECORDS:,} records, {PAPER_STATES} states): "
          f"{per_pair * 1e6:.1f} us per training pair per epoch on one CPU rank, "
          f"{i0['train_pairs'] / i0['covisit_rows']:.2f} training pairs per co-visit row (zeros and hold-outs "
          f"included) -> {proj_1 / 3600:.1f} h per epoch on one rank. The largest state holds {share:.1%} of the "
          f"rows here, so with 48 ranks an epoch is bounded by that state: about {proj_1 * share / 3600:.1f} h, and "
          f"a rank's graph by {share * PAPER_RECORDS / 1e6:.1f}M rows of one state, not the country. Assumes cost linear "
          f"in pairs (measured per state group), the default model, the same pairs per row and the same state-size "
          f"distribution as this world.")
    Path(args.out, "scale.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
