"""Scale-out benchmark: co-visitation training with 1 and 2 ranks (torchrun, gloo on CPU).

For each rank count, ``torchrun`` starts that many workers; each generates the same embedded
world (``--pois``, 48 contiguous states plus DC), prepares the graph, and trains ``--epochs``
epochs of the default NAICS-aware model with its state groups sharded over the ranks
(`geograph.distributed`). Reported: seconds per epoch (median of the epochs after the first),
peak RSS of each rank, speed-up and memory ratio against one rank, and a projection of one
epoch at the paper's scale (94.9M co-visit records, 48 states) from the measured cost per
training pair.

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


def worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    from geograph.data.synthetic import generate_world
    from geograph.distributed import init_from_env
    from geograph.tasks import covisit as C
    from geograph.tasks.config import CovisitConfig

    info = init_from_env(600)
    t0 = time.perf_counter()
    world = generate_world(n_pois=args.pois, seed=0, n_images=0)
    cfg = CovisitConfig.from_dict({
        "data": {"cache_dir": None},
        "train": {"epochs": args.epochs, "patience": 1000, "checkpoint_dir": f"{args.out}/ckpt-{info.world_size}"},
    })
    prep = C.prepare(cfg, world)
    t_prep = time.perf_counter() - t0
    mine = C.rank_groups(prep)
    fr = C.fit_gnn(prep)
    epoch_times = [h["epoch_time_s"] for h in fr.history]
    pois_per_state = torch.bincount(prep.graph.data["poi"].state)
    res = {
        "rank": info.rank,
        "world_size": info.world_size,
        "prepare_s": t_prep,
        "epoch_s": epoch_times,
        "train_pairs": len(prep.split.pairs["train"]),
        "rank_train_pairs": int(sum(prep.groups[i].pairs["train"].numel() for i in mine)),
        "groups": len(mine),
        "largest_state_pois": int(pois_per_state.max()),
        "pois": prep.graph.num_pois,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
    p.add_argument("--out", default="benchmarks/out/scale")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--nnodes", "1",
               "--master-addr", "127.0.0.1", "--master-port", str(_port()), __file__, "--worker",
               "--pois", str(args.pois), "--epochs", str(args.epochs), "--out", args.out]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        wall = time.perf_counter() - t0
        ranks = [json.loads(Path(args.out, f"scale-{n}-rank{r}.json").read_text()) for r in range(n)]
        steady = [statistics.median(r["epoch_s"][1:] or r["epoch_s"]) for r in ranks]
        rows.append({"ranks": n, "epoch_s": max(steady), "peak_rss_mb": [round(r["peak_rss_mb"]) for r in ranks],
                     "rank_train_pairs": [r["rank_train_pairs"] for r in ranks], "wall_s": wall, "info": ranks[0]})
    base = rows[0]
    load = os.getloadavg()[0]
    print(f"\nworld: {base['info']['pois']:,} POIs, {base['info']['train_pairs']:,} training pairs, "
          f"largest state {base['info']['largest_state_pois']:,} POIs; load average {load:.1f} on {os.cpu_count()} cores\n")
    print("| ranks | s / epoch | speed-up | peak RSS per rank (MB) | memory ratio | training pairs per rank |")
    print("|---:|---:|---:|---|---:|---|")
    for r in rows:
        print(f"| {r['ranks']} | {r['epoch_s']:.1f} | {base['epoch_s'] / r['epoch_s']:.2f}x | {r['peak_rss_mb']} | "
              f"{max(r['peak_rss_mb']) / max(base['peak_rss_mb']):.2f} | {r['rank_train_pairs']} |")
    per_pair = base["epoch_s"] / base["info"]["train_pairs"]
    proj_1 = per_pair * PAPER_RECORDS
    print(f"\nprojection to the paper's scale ({PAPER_RECORDS:,} records, {PAPER_STATES} states), from "
          f"{per_pair * 1e6:.1f} us per training pair per epoch on one CPU rank: {proj_1 / 3600:.1f} h per epoch on one rank; "
          f"with R ranks about {proj_1 / 3600:.1f} / (R x measured efficiency) h. Assumes cost linear in pairs (as measured "
          f"per state group), the default 64-wide model, and every rank holding the prepared graph in memory.")
    Path(args.out, "scale.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
