"""What thread-count-independent training costs: geograph's reproducibility settings vs torch's defaults.

Trains the default co-visitation GNN on the embedded world, each run in its own process, in two
variants, each at every thread count given:

* ``geograph``: as shipped (``MKL_CBWR=AUTO,STRICT``, :class:`geograph.nn.LayerNorm`,
  deterministic algorithms inside ``fit_loop``; see ``geograph.utils.determinism``);
* ``torch defaults``: ``MKL_CBWR`` empty (MKL's own mode), ``torch.nn.LayerNorm`` and no
  deterministic-algorithms switch (patched in the child process before training).

Reports the median training time per epoch (``train_time_s`` / epochs), the ratio of the two
variants at each thread count (same run), and the parameter checksum of each run: the geograph
rows share one checksum across thread counts and repeats; the torch-default rows need not.

    .venv/bin/python benchmarks/determinism.py --n-pois 5000 --epochs 3 --threads 1,2 --repeats 2

Prints a hardware line and a Markdown table; writes ``benchmarks/out/determinism.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import contextlib, json, sys
import torch
variant, threads, n_pois, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if variant == "torch":
    import geograph.nn.covisit_model as cm
    import geograph.nn.naics_encoder as ne
    import geograph.train.loop as loop
    cm.LayerNorm = ne.LayerNorm = torch.nn.LayerNorm
    loop.deterministic_algorithms = contextlib.nullcontext
from geograph.covisit.config import CovisitConfig
from geograph.covisit.run import run
from geograph.train import param_checksum
cfg = CovisitConfig.from_dict({"data": {"n_pois": n_pois}, "train": {"epochs": epochs, "patience": epochs + 1,
                               "threads": threads, "seed": 0, "progress": False}})
out = run(cfg)
print(json.dumps({"train_time_s": out["fit"].train_time_s, "epochs": len(out["fit"].history),
                  "params": param_checksum(out["fit"].model),
                  "test_observed_r2_log1p": out["metrics"]["test_observed_r2_log1p"]}))
"""

VARIANTS = {"geograph": "AUTO,STRICT", "torch": ""}


def hardware() -> str:
    import torch
    from hostinfo import cpu_model

    cpu = cpu_model()
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, Python {platform.python_version()}"


def one(variant: str, threads: int, n_pois: int, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["MKL_CBWR"] = VARIANTS[variant]
    res = subprocess.run([sys.executable, "-c", CHILD, variant, str(threads), str(n_pois), str(epochs)],
                         capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{variant} at {threads} threads failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["s_per_epoch"] = out["train_time_s"] / max(out["epochs"], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-pois", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/out/determinism.json"))
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    rows: list[dict] = []
    for r in range(args.repeats):
        for t in threads:
            for variant in (VARIANTS if r % 2 == 0 else reversed(VARIANTS)):  # alternate the order
                rows.append({"variant": variant, "threads": t, "repeat": r, **one(variant, t, args.n_pois, args.epochs)})
                print(f"  {variant:8s} threads {t} repeat {r}: {rows[-1]['s_per_epoch']:.2f} s/epoch "
                      f"params {rows[-1]['params']}", file=sys.stderr)
    print(hardware())
    print(f"\n{args.n_pois} POIs, {args.epochs} epochs, {args.repeats} repeats, median s/epoch\n")
    print("| threads | torch defaults s/epoch | geograph s/epoch | ratio | torch-default checksums | geograph checksums |")
    print("|---:|---:|---:|---:|---|---|")
    for t in threads:
        med = {v: statistics.median(x["s_per_epoch"] for x in rows if x["variant"] == v and x["threads"] == t)
               for v in VARIANTS}
        sums = {v: sorted({x["params"] for x in rows if x["variant"] == v and x["threads"] == t}) for v in VARIANTS}
        print(f"| {t} | {med['torch']:.2f} | {med['geograph']:.2f} | {med['geograph'] / med['torch']:.2f} | "
              f"{', '.join(sums['torch'])} | {', '.join(sums['geograph'])} |")
    geo = {x["params"] for x in rows if x["variant"] == "geograph"}
    print(f"\ngeograph checksums over every thread count and repeat: {len(geo)} distinct")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"hardware": hardware(), "args": vars(args) | {"out": str(args.out)}, "runs": rows}, indent=1))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
