"""A process that writes geograph files in a loop until it is SIGKILLed (run as a script).

    python tests/reliability/fault_worker.py world   FOLDER LAYOUT     # write_world, versions A/B
    python tests/reliability/fault_worker.py cli     FOLDER ARGS...    # `geograph world --overwrite`, A/B
    python tests/reliability/fault_worker.py report  FOLDER            # rendering.write_table, A/B
    python tests/reliability/fault_worker.py saved   FOLDER KINDS N SEED  # save_checked, forked children

``world`` / ``cli`` / ``report``: the versions A and B are in ``FOLDER/ref_A`` and
``FOLDER/ref_B`` (the references the test compares with; ``report`` writes its own), ``live``
starts as A; the worker prints ``ready`` and rewrites ``FOLDER/live`` with B, A, B, ... until
the test kills it.

``saved``: importing torch costs seconds, so this worker pays it once and *forks* N children;
each child rewrites ``FOLDER/<kind>/live.pt`` with ``save_checked`` (KINDS, comma-separated: ``cache``: two real graph
states, as :func:`geograph.graph.cache.cached_build` writes them; ``checkpoint``: two real
training checkpoints, as ``fit_gnn`` writes them) until the worker SIGKILLs it after a seeded
random delay. The children never touch polars (its thread pool does not survive a fork). The
worker checks the file after every kill and prints one JSON line of counts per kind. The test's
fast variant calls :func:`saved_counts` in its own process (torch is imported there already),
the slow one runs this script.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path


def world(folder: Path, layout: str) -> None:
    """Rewrite ``live`` with the worlds of ``ref_B`` and ``ref_A`` (written by the test) in turn."""
    from geograph.data import load_world, write_world

    part = None if layout == "flat" else "state"
    versions = [load_world(folder / "ref_B"), load_world(folder / "ref_A")]
    print("ready", flush=True)
    while True:
        for w in versions:
            write_world(w, folder / "live", partition_by=part, overwrite=True)


def cli(folder: Path, *args: str) -> None:
    """Rewrite ``live`` with ``geograph world --overwrite`` of seeds 12 and 11 in turn."""
    from geograph.cli.main import main

    print("ready", flush=True)
    with open(os.devnull, "w") as sink:
        sys.stdout = sink  # the summary tables
        while True:
            for seed in ("12", "11"):
                main(["world", "--out", str(folder / "live"), "--seed", seed, *args])


def report(folder: Path) -> None:
    import polars as pl

    from geograph.experiments.rendering import write_table

    def table(shift: float) -> pl.DataFrame:
        n = 2000
        return pl.DataFrame(
            {
                "config": [f"cfg{i}" for i in range(n)],
                "n_runs": [3] * n,
                "seeds": ["0,1,2"] * n,
                "test_r2_mean": [0.5 + shift + i * 1e-4 for i in range(n)],
                "test_r2_std": [0.01] * n,
                "best": [i == n - 1 for i in range(n)],
            }
        )

    versions = {"A": table(0.0), "B": table(0.1)}
    for name, t in versions.items():
        if not (folder / f"ref_{name}").exists():
            write_table(t, folder / f"ref_{name}", "test_r2", experiment="faults")
    if not (folder / "live").exists():
        write_table(versions["A"], folder / "live", "test_r2", experiment="faults")
    print("ready", flush=True)
    while True:
        for name in ("B", "A"):
            write_table(versions[name], folder / "live", "test_r2", experiment="faults")


def _cache_states(folder: Path) -> list[dict]:
    from geograph.graph.builder import build_graph
    from geograph.graph.config import GraphConfig
    from geograph.testing import tiny_world

    cfg = GraphConfig()
    return [build_graph(tiny_world(seed=s, n_pois=300, n_images=40), cfg).to_state() for s in (21, 22)]


def _checkpoint_states(folder: Path) -> list[dict]:
    from geograph import covisit as C
    from geograph.covisit.config import CovisitConfig
    from geograph.graph.cache import load_checked
    from geograph.testing import tiny_world

    ckpt = folder / "train_ckpt"
    cfg = CovisitConfig.from_dict(
        {
            "data": {"cache_dir": None},
            "model": {"hidden": 32, "head_hidden": [32]},
            "train": {"epochs": 2, "checkpoint_dir": str(ckpt), "patience": 100, "device": "cpu"},
        }
    )
    states: list[dict] = []
    prep = C.prepare(cfg, tiny_world(seed=3, n_pois=200, n_images=0))
    C.fit(prep, on_epoch=lambda epoch, m: states.append(load_checked(ckpt / "last.pt")), checkpoint=ckpt / "last.pt")
    return states


def _same(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    return a == b


def saved(folder: Path, kinds: str, n: int, seed: int) -> None:
    import torch

    torch.set_num_threads(1)
    for counts in saved_counts(folder, kinds, n, seed):
        print(json.dumps(counts), flush=True)


def saved_counts(folder: Path, kinds: str, n: int, seed: int) -> list[dict]:
    """For each kind: build its two states, fork and SIGKILL ``n`` writers, count what is left."""
    out = []
    for kind in kinds.split(","):
        sub = folder / kind
        sub.mkdir(exist_ok=True)
        states = _cache_states(sub) if kind == "cache" else _checkpoint_states(sub)
        out.append(_kill_children(sub, kind, states, n, seed))
    return out


def _kill_children(folder: Path, kind: str, states: list[dict], n: int, seed: int) -> dict:
    from geograph.errors import CheckpointError
    from geograph.graph.cache import load_checked, save_checked

    live = folder / "live.pt"
    save_checked(states[0], live)  # the old version
    t0 = time.perf_counter()
    for s in states:
        save_checked(s, folder / "probe.pt")
    t_save = (time.perf_counter() - t0) / len(states)
    rng = random.Random(seed)
    counts = {
        "kind": kind,
        "faults": 0,
        "absent": 0,
        "old_or_new": 0,
        "readable_wrong": 0,
        "corrupt_detected": 0,
        "temp_files_left": 0,
        "save_s": round(t_save, 4),
        "file_bytes": live.stat().st_size,
    }
    for _ in range(n):
        pid = os.fork()
        if pid == 0:  # child: rewrite the file until killed
            try:
                while True:
                    for s in states[::-1]:
                        save_checked(s, live)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0, 3 * t_save))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["faults"] += 1
        if not live.exists():
            counts["absent"] += 1
        else:
            try:
                got = load_checked(live)
            except CheckpointError:
                counts["corrupt_detected"] += 1
            else:
                if any(_same(got, s) for s in states):
                    counts["old_or_new"] += 1
                else:
                    counts["readable_wrong"] += 1
        leftovers = [p for p in folder.iterdir() if p.name.startswith(".live.pt.")]
        counts["temp_files_left"] += len(leftovers)
        for p in leftovers:
            p.unlink()
    return counts


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "world":
        world(folder, sys.argv[3])
    elif mode == "cli":
        cli(folder, *sys.argv[3:])
    elif mode == "report":
        report(folder)
    elif mode == "saved":
        saved(folder, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode}")
