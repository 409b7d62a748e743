"""Scale-out benchmark: per-state (out-of-core) co-visitation training with 1 and 2 ranks.

The embedded world (``--pois`` POIs over the 48 contiguous states) is written once as Parquet
partitioned by state (``pois/state=CA/part-0.parquet``). For each rank count, ``torchrun``
(gloo on CPU) starts that many workers; each reads the per-state row counts from the Parquet
footers, takes its states (balanced by co-visit rows, largest first), scans only their
partitions, builds and trains on them one state group at a time (``data.loading=per_state``,
`geograph.covisit.sharded`). Reported: seconds per epoch (median of the epochs after the
first), peak RSS of each rank, speed-up and memory ratio against one rank, the POIs each rank
loaded, the largest state, and a projection of one epoch at the paper's scale (94.9M co-visit
records, 48 states) from the measured cost per training pair. "Data share" is a rank's peak RSS
minus its RSS after the imports (Python, torch, polars, geograph), i.e. what the data and the
training add.

``--states-sweep 4 8 16 32 48`` instead simulates a country of N states processed one after
another out-of-core on one rank: each state is generated on its own with ``--pois-per-state``
POIs (so every state has the same size and the largest state is the same in every N), the
first N of the 48 contiguous states (alphabetical) are written partitioned by state, and one
rank (its own process, so its peak RSS is its own) trains on them with ``data.loading=per_state``
and one state per group (``--max-group-pois`` defaults to ``--pois-per-state`` here). Reported per
N: co-visit rows, training pairs, seconds per epoch (and per state), peak RSS, RSS after imports,
data share, the largest state, and the data share against the smallest N's.

``--data DIR`` takes a world folder partitioned by state (``geograph import patterns --partition-by
state``, ``geograph world --partition-by state``) instead of generating one; ``--pois`` then does not apply.

``--rank-negatives`` sets ``split.rank_negatives``; the default (-1) ranks each held-out source
against every POI of its state, so a state's candidates grow with the square of its POIs (they
are scored once, by the final evaluation, one state group at a time): pass a count (20, 100) to
bound that for large states.

``--recompute`` trains with ``model.recompute: true`` (layer activations recomputed in the backward
pass instead of kept). ``--configs 1x1 1x2 2x1`` runs ranks x torch threads per rank instead of ``--ranks`` (one thread
each), and prints the throughput of N ranks x T threads against one rank with N x T threads on
the same cores.

``--split-states-above N`` trains the states above N POIs with every rank (``train.split_states_above``)
in the multi-rank runs, or only in the ``--configs`` entries ending in ``s`` (``2x1s``), and prints each
rank's part of those states (own POIs, halo, pair destinations). ``--malloc-mmap-threshold BYTES``
starts every rank with glibc's ``MALLOC_MMAP_THRESHOLD_`` (freed tensors above that size go back to
the system instead of staying in the heap, which the RSS would count); ``--preload LIB`` starts every
rank with ``LD_PRELOAD=LIB``, another malloc (tcmalloc, jemalloc, mimalloc) in place of glibc's. Besides the peak RSS, each
rank samples its current RSS every 50 ms: the highest per phase (preparing, training steps,
validation) is printed.

    python benchmarks/scale.py --pois 100000 --epochs 2 --rank-negatives 20
    python benchmarks/scale.py --pois 100000 --epochs 2 --rank-negatives 20 --configs 1x1 1x2 2x1
    python benchmarks/scale.py --pois 1000000 --epochs 2 --rank-negatives 20 --configs 1x1 2x1s --split-states-above 50000
    python benchmarks/scale.py --states-sweep 4 8 16 32 48 --pois-per-state 2000 --epochs 2
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
    """Peak RSS of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float | None:
    """Current RSS (MB), from /proc (None where there is none)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class _PhasePeaks:
    """Highest current RSS (sampled every 50 ms by a thread) per phase: ``prepare``, ``train``
    (the training steps) and ``validate`` (scoring the val pairs after each epoch)."""

    def __init__(self) -> None:
        import threading

        self.phase, self.peaks = "prepare", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = _rss_now_mb()
            if now is not None:
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), now)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v) for k, v in self.peaks.items()}


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import geograph.covisit.train as covisit_train
    from geograph import covisit as C
    from geograph.covisit.config import CovisitConfig
    from geograph.distributed import init_from_env

    info = init_from_env(900)
    rss0 = _rss_mb()
    peaks = _PhasePeaks()
    predict = covisit_train.predict_gnn

    def scored(*a, **k):  # validation: its own phase
        peaks.phase = "validate"
        try:
            return predict(*a, **k)
        finally:
            peaks.phase = "train"

    covisit_train.predict_gnn = scored
    t0 = time.perf_counter()
    cfg = CovisitConfig.from_dict({
        "data": {"world_dir": args.world, "cache_dir": None, "loading": "per_state"},
        "split": {} if args.rank_negatives is None else {"rank_negatives": args.rank_negatives},
        "model": {"recompute": args.recompute},
        "train": {"epochs": args.epochs, "patience": 1000, "max_group_pois": args.max_group_pois,
                  "split_states_above": args.split_states_above or 0,
                  "checkpoint_dir": f"{args.out}/ckpt-{args.tag or info.world_size}"},
    })
    prep = C.prepare(cfg)
    t_prep = time.perf_counter() - t0
    rss_prep = _rss_mb()
    rss_prep_now = _rss_now_mb()
    peaks.phase = "train"
    epoch_s: list[float] = []  # train + validation + checkpoint of each epoch (the loop's epoch_time_s)
    C.fit_gnn(prep, on_epoch=lambda _epoch, m: epoch_s.append(m["epoch_time_s"]))
    sh = prep.shard
    res = {
        "rank": info.rank,
        "world_size": info.world_size,
        "prepare_s": t_prep,
        "epoch_s": epoch_s,
        "train_pairs": sh.train_pairs,
        "rank_train_pairs": len(prep.split.pairs["train"]),
        "states": sh.states,
        "groups": len(prep.groups),
        "rank_pois": sum(v["core_pois"] for v in sh.loaded.values()),
        "largest_state": max(sh.sizes, key=lambda s: sh.sizes[s]["pois"]),
        "largest_state_pois": max(v["pois"] for v in sh.sizes.values()),
        "largest_state_covisits": max(v["covisits"] for v in sh.sizes.values()),
        "peak_state_graph_pois": sh.peak_state_pois,
        "shared_states": sh.shared,
        "part_pois": sh.part_pois,
        "pois": int(sh.summary["pois"]),
        "covisit_rows": sum(v["covisits"] for v in sh.sizes.values()),
        "rank_negatives": cfg.split.rank_negatives,
        # candidates stay with their state groups (none in prep.rank): counted in the summary
        "rank_pairs": {k: int(sh.summary[f"rank_candidates_{k}"]) for k in ("val", "test")},
        "rss_start_mb": rss0,
        "rss_after_prepare_mb": rss_prep,
        "rss_now_after_prepare_mb": rss_prep_now,
        "phase_peak_mb": peaks.stop(),
        "peak_rss_mb": _rss_mb(),
    }
    Path(args.out, f"scale-{args.tag or info.world_size}-rank{info.rank}.json").write_text(json.dumps(res))


def _hardware(threads: str = "1 torch thread per rank (OMP_NUM_THREADS=1)") -> str:
    """One line: CPU model, logical CPUs, torch version, threads per rank (torch is not imported)."""
    from importlib.metadata import version

    from hostinfo import hardware_line

    return hardware_line(f"torch {version('torch')}", threads)


def _launch(args, n: int, world: str, tag: str, max_group_pois: int, threads: int = 1,
            split_states_above: int = 0) -> tuple[list[dict], float]:
    """Train ``n`` ranks of ``threads`` torch threads each under torchrun on ``world``; each rank's
    result dict and the wall time."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(_port()), __file__, "--worker",
           "--epochs", str(args.epochs), "--out", args.out, "--world", world,
           "--max-group-pois", str(max_group_pois), "--tag", tag, "--threads", str(threads)]
    if args.recompute:
        cmd += ["--recompute"]
    if split_states_above:
        cmd += ["--split-states-above", str(split_states_above)]
    if args.rank_negatives is not None:
        cmd += ["--rank-negatives", str(args.rank_negatives)]
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if args.malloc_mmap_threshold:  # glibc: allocations above this size are mmap'd and returned on free
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    if args.preload:  # another malloc (tcmalloc, jemalloc, mimalloc) for the ranks only
        env["LD_PRELOAD"] = args.preload
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    return [json.loads(Path(args.out, f"scale-{tag}-rank{r}.json").read_text()) for r in range(n)], wall


def _steady(epoch_s: list[float]) -> float:
    """Seconds per epoch: median of the epochs after the first (the first one alone if there is one)."""
    return statistics.median(epoch_s[1:] or epoch_s)


def _state_world(state: str, pois: int, seed: int):
    """A world of one state with exactly ``pois`` POIs, POI ids prefixed by the state."""
    import polars as pl

    from geograph.data.synthetic import generate_world

    w = generate_world(n_pois=pois, seed=seed, n_images=0, states=[state], progress=False)
    ids = {c: pl.lit(f"{state}_") + pl.col(c) for c in ("poi_id", "src_poi_id", "dst_poi_id")}
    w.pois = w.pois.with_columns(ids["poi_id"].alias("poi_id"))
    w.covisits = w.covisits.with_columns(ids["src_poi_id"].alias("src_poi_id"), ids["dst_poi_id"].alias("dst_poi_id"))
    return w


def states_sweep(args) -> None:
    """Memory and time against the number of states, one rank, states of equal size."""
    import polars as pl

    from geograph.data import World, write_world

    counts = sorted(set(args.states_sweep))
    if counts[0] < 1 or counts[-1] > PAPER_STATES:
        raise SystemExit(f"--states-sweep takes counts from 1 to {PAPER_STATES}, got {counts}")
    k = args.pois_per_state
    group = args.max_group_pois or k
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = [_state_world(st, k, i) for i, st in enumerate(CONTIGUOUS_48[: counts[-1]])]
    t_gen = time.perf_counter() - t0
    rows = []
    for n in counts:
        sub = parts[:n]
        regions = [w.regions for w in sub if w.regions is not None]
        world = World(
            pois=pl.concat([w.pois for w in sub]),
            covisits=pl.concat([w.covisits for w in sub]),
            regions=pl.concat(regions).unique("h3_cell", keep="first", maintain_order=True) if regions else None,
            meta={"generator": "benchmarks/scale.py --states-sweep", "pois_per_state": k,
                  "states": CONTIGUOUS_48[:n], "seeds": list(range(n))},
        )
        folder = str(out / f"sweep-{k}" / f"world-{n}")
        write_world(world, folder, partition_by="state", overwrite=True)
        del world
        (r,), wall = _launch(args, 1, folder, f"sweep-{k}-{n}", group)
        rows.append({"states": n, "pois": r["pois"], "covisit_rows": r["covisit_rows"],
                     "train_pairs": r["train_pairs"], "epoch_s": _steady(r["epoch_s"]),
                     "prepare_s": r["prepare_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "rss_start_mb": r["rss_start_mb"], "rss_after_prepare_mb": r["rss_after_prepare_mb"],
                     "data_mb": r["peak_rss_mb"] - r["rss_start_mb"], "groups": r["groups"],
                     "largest_state_pois": r["largest_state_pois"],
                     "largest_state_covisits": r["largest_state_covisits"],
                     "peak_state_graph_pois": r["peak_state_graph_pois"],
                     "rank_pairs": sum(r["rank_pairs"].values()), "wall_s": wall, "detail": r})
    b = rows[0]
    print(f"\nstates sweep: {k:,} POIs per state (each state generated alone, seed = its index), the first N of "
          f"the {PAPER_STATES} contiguous states, one rank, one state per group (groups of at most {group:,} "
          f"POIs), split.rank_negatives={b['detail']['rank_negatives']}, {args.epochs} epochs; states generated in "
          f"{t_gen:.0f} s")
    print(_hardware() + "\n")
    print("| states | POIs | co-visit rows | training pairs | val + test ranking pairs | s / epoch | s / epoch / state | prepare s "
          "| peak RSS (MB) | RSS after imports (MB) | RSS after prepare (MB) | peak - after prepare (MB) "
          "| data share (MB) "
          f"| data share / N={b['states']} | largest state (POIs / co-visit rows) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['states']} | {r['pois']:,} | {r['covisit_rows']:,} | {r['train_pairs']:,} | {r['rank_pairs']:,} "
              f"| {r['epoch_s']:.1f} "
              f"| {r['epoch_s'] / r['states']:.2f} | {r['prepare_s']:.1f} | {r['peak_rss_mb']:,.0f} "
              f"| {r['rss_start_mb']:,.0f} | {r['rss_after_prepare_mb']:,.0f} "
              f"| {r['peak_rss_mb'] - r['rss_after_prepare_mb']:,.0f} | {r['data_mb']:,.0f} "
              f"| {r['data_mb'] / b['data_mb']:.2f} | {r['largest_state_pois']:,} / {r['largest_state_covisits']:,} |")
    last = rows[-1]
    if len(rows) < 2:
        Path(out, f"sweep-{k}.json").write_text(json.dumps(rows, indent=1))
        return
    grow = (last["epoch_s"] / b["epoch_s"]) / (last["states"] / b["states"])
    extra = last["states"] - b["states"]
    above = [r["peak_rss_mb"] - r["rss_after_prepare_mb"] for r in rows]
    print(f"\n{last['states'] / b['states']:.0f}x the states: {last['epoch_s'] / b['epoch_s']:.1f}x the time per epoch "
          f"({grow:.2f} of linear); {last['data_mb'] / b['data_mb']:.2f}x the data share, "
          f"{(last['data_mb'] - b['data_mb']) / extra:.1f} MB per extra state, of which "
          f"{(last['rss_after_prepare_mb'] - b['rss_after_prepare_mb']) / extra:.1f} MB already held after preparing "
          f"(the country's val / test pair index, this rank's training pairs); peak above the after-prepare RSS "
          f"{min(above):,.0f}-{max(above):,.0f} MB (training one state)")
    Path(out, f"sweep-{k}.json").write_text(json.dumps(rows, indent=1))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pois", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank (worker)")
    p.add_argument("--recompute", action="store_true",
                   help="model.recompute: keep only the layers' inputs, recompute activations in backward")
    p.add_argument("--configs", nargs="+", default=None, metavar="RANKSxTHREADS",
                   help="runs as ranks x torch threads per rank, e.g. 1x1 1x2 2x1 (default: --ranks, 1 thread)")
    p.add_argument("--max-group-pois", type=int, default=None,
                   help="POIs per state group (default 20000; with --states-sweep, --pois-per-state)")
    p.add_argument("--states-sweep", type=int, nargs="+", default=None, metavar="N",
                   help="one rank on worlds of N equal-sized states each (e.g. 4 8 16 32 48)")
    p.add_argument("--pois-per-state", type=int, default=2000,
                   help="POIs per state with --states-sweep (default 2000: about 6 min for 4 8 16 32 48 on 2 cores)")
    p.add_argument("--rank-negatives", type=int, default=None,
                   help="split.rank_negatives (default: the config's, -1 = every POI of the source's state)")
    p.add_argument("--split-states-above", type=int, default=None, metavar="POIS",
                   help="train.split_states_above of the multi-rank runs (every one, or only the --configs "
                        "entries ending in 's', e.g. 2x1s)")
    p.add_argument("--malloc-mmap-threshold", type=int, default=None, metavar="BYTES",
                   help="run every rank with glibc's MALLOC_MMAP_THRESHOLD_=BYTES (a fixed threshold: freed "
                        "tensors above it go back to the system instead of staying in the heap)")
    p.add_argument("--preload", default=None, metavar="LIB",
                   help="run every rank with LD_PRELOAD=LIB (a path or a library name), e.g. another malloc; "
                        "'tcmalloc' finds gperftools' tcmalloc as geograph train --malloc tcmalloc does")
    p.add_argument("--out", default="benchmarks/out/scale")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="a world folder partitioned by state (geograph import patterns --partition-by state, "
                        "geograph world --partition-by state) instead of the generated world of --pois")
    p.add_argument("--world", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tag", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if args.states_sweep:
        states_sweep(args)
        return
    if args.max_group_pois is None:
        args.max_group_pois = 20_000
    if args.preload == "tcmalloc":  # the library's name as the dynamic loader finds it
        from geograph.utils.memory import TCMALLOC_HINT, find_tcmalloc

        args.preload = find_tcmalloc()
        if args.preload is None:
            raise SystemExit(f"--preload tcmalloc: the library was not found; {TCMALLOC_HINT}")
    if args.preload and "/" in args.preload and not Path(args.preload).is_file():
        raise SystemExit(f"--preload: no such file {args.preload}")
    from geograph.data import write_world
    from geograph.data.state_scan import is_state_partitioned
    from geograph.data.synthetic import generate_world

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.data:
        if not is_state_partitioned(args.data):
            raise SystemExit(f"--data {args.data}: not a world partitioned by state (pois/state=XX/, covisits/state=XX/); "
                             "write one with geograph import patterns --partition-by state or geograph world --partition-by state")
        args.world = str(Path(args.data).resolve())
    else:
        args.world = str(out / f"world-{args.pois}")
        write_world(generate_world(n_pois=args.pois, seed=0, n_images=0, states=CONTIGUOUS_48), args.world,
                    partition_by="state", overwrite=True)
    t_world = time.perf_counter() - t0
    tokens = [c.lower() for c in args.configs] if args.configs else [f"{n}x1" for n in args.ranks]
    marked = any(c.endswith("s") for c in tokens)
    configs = []
    for c in tokens:
        n, threads = (int(v) for v in c.rstrip("s").split("x"))
        split = (c.endswith("s") or not marked) and n > 1 and bool(args.split_states_above)
        configs.append((n, threads, split))
    rows = []
    for n, threads, split in configs:
        tag = (str(n) if threads == 1 else f"{n}x{threads}") + ("s" if split else "")
        ranks, wall = _launch(args, n, args.world, tag, args.max_group_pois, threads,
                              args.split_states_above if split else 0)
        steady = [_steady(r["epoch_s"]) for r in ranks]
        rows.append({"ranks": n, "threads": threads, "split": split, "epoch_s": max(steady), "peak_rss_mb": [round(r["peak_rss_mb"]) for r in ranks],
                     "rss_start_mb": [round(r["rss_start_mb"]) for r in ranks],
                     "data_mb": [round(r["peak_rss_mb"] - r["rss_start_mb"]) for r in ranks],
                     "rank_pois": [r["rank_pois"] for r in ranks],
                     "rank_train_pairs": [r["rank_train_pairs"] for r in ranks],
                     "peak_state_graph_pois": [r["peak_state_graph_pois"] for r in ranks],
                     "prepare_s": [round(r["prepare_s"], 1) for r in ranks],
                     "prep_peak_mb": [round(r["rss_after_prepare_mb"]) for r in ranks],
                     "prep_now_mb": [round(r["rss_now_after_prepare_mb"] or 0) for r in ranks],
                     "wall_s": wall, "ranks_detail": ranks})
    base = rows[0]
    i0 = base["ranks_detail"][0]
    n_states = len({st for x in base["ranks_detail"] for st in x["states"]})
    print(f"\nworld: {Path(args.world).name}, {i0['pois']:,} POIs in {n_states} states, {i0['covisit_rows']:,} co-visit rows, "
          f"{i0['train_pairs']:,} training pairs; largest state {i0['largest_state']} with {i0['largest_state_pois']:,} "
          f"POIs ({i0['largest_state_covisits']:,} co-visit rows); groups of at most {args.max_group_pois:,} POIs; "
          f"model.recompute {'on' if args.recompute else 'off'}; "
          f"MALLOC_MMAP_THRESHOLD_ {args.malloc_mmap_threshold or 'unset (glibc default)'}; "
          f"malloc {Path(args.preload).name if args.preload else 'glibc'}; "
          + (f"world written in {t_world:.0f} s" if not args.data else "world given (--data)"))
    print(_hardware("OMP_NUM_THREADS = torch threads per rank, as the table says") + "\n")
    print("| ranks x threads | s / epoch | speed-up | prepare s | peak RSS while preparing (MB) "
          "| RSS after preparing (MB) | peak RSS per rank (MB) | memory ratio "
          "| RSS after imports per rank (MB) | data share per rank (MB) | data share ratio | POIs loaded per rank "
          "| largest state graph per rank (POIs) | training pairs per rank |")
    print("|---:|---:|---:|---|---|---|---|---:|---|---|---:|---|---|---|")
    for r in rows:
        label = f"{r['ranks']} x {r['threads']}" + (" split" if r["split"] else "")
        print(f"| {label} | {r['epoch_s']:.1f} | {base['epoch_s'] / r['epoch_s']:.2f}x | {r['prepare_s']} | "
              f"{r['prep_peak_mb']} | {r['prep_now_mb']} | "
              f"{r['peak_rss_mb']} | {max(r['peak_rss_mb']) / max(base['peak_rss_mb']):.2f} | {r['rss_start_mb']} | "
              f"{r['data_mb']} | {max(r['data_mb']) / max(base['data_mb']):.2f} | {r['rank_pois']} | "
              f"{r['peak_state_graph_pois']} | {r['rank_train_pairs']} |")
    print("\nhighest sampled RSS per phase (MB; prepare / training steps / validation), per rank: " + "; ".join(
        f"{r['ranks']} x {r['threads']}{' split' if r['split'] else ''}: " + " | ".join(
            " / ".join(str(x["phase_peak_mb"].get(k, "-")) for k in ("prepare", "train", "validate"))
            for x in r["ranks_detail"]) for r in rows))
    for r in rows:
        if r["split"]:
            parts = "; ".join(
                f"{st} ({d['ranks_detail'][0]['part_pois'][st]['state']:,} POIs): " + " / ".join(
                    f"{x['part_pois'][st]['own']:,} own + {x['part_pois'][st]['halo']:,} halo + "
                    f"{x['part_pois'][st].get('head', 0):,} pair destinations" for x in d["ranks_detail"])
                for d in [r] for st in r["ranks_detail"][0]["shared_states"])
            print(f"\n{r['ranks']} x {r['threads']} split: states above {args.split_states_above:,} POIs trained by every "
                  f"rank, POIs per rank: {parts}")
    by = {(r["ranks"], r["threads"]): r for r in rows if not r["split"]}
    for (n, t), r in by.items():
        ref = by.get((1, n * t))
        if n > 1 and ref is not None:
            print(f"\n{n} ranks x {t} thread(s) against 1 rank x {n * t} threads (same cores): "
                  f"{ref['epoch_s'] / r['epoch_s']:.2f}x the throughput")
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
