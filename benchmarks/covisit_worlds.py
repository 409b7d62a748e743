"""NAICS-aware GNN against gradient-boosted trees on two independent worlds and both protocols.

The worlds (5,000 POIs each, world seed 0): the **embedded** world
(:func:`geograph.data.synthetic.generate_world`) and the **latent**-community world
(:func:`geograph.data.latent_world.generate_latent_world`), whose hidden visitor communities
drive co-visits and are shown by no column, only by the co-visit graph. The protocols: random
edge hold-out (``edges``, the configs' own split) and held-out states (``states``, 40/5/3 of 48:
``split.val_frac=0.1042``, ``split.test_frac=0.0625``). The models: ``experiments/covisit_naics_sage.yaml``
(GNN) and ``experiments/covisit_gbt.yaml`` (GBT), each as it is, with ``data.n_pois``,
``data.generator`` and ``train.seed`` set, ``data.cache_dir`` None, ``train.progress`` false and
checkpoints under a temporary folder. Each world is generated once and shared by its runs.

The metric is ``test_observed_r2_log1p`` (R² of log1p visitors on the observed test co-visit
pairs, sampled zeros left out), mean ± std (sample std) over the seeds; "GNN - GBT" is the mean
of the per-seed differences. Every finished run is appended to the JSON file at once, so an
interrupted benchmark keeps what it measured and ``--resume`` skips it.

    .venv/bin/python benchmarks/covisit_worlds.py                          # full grid, seeds 0-2
    .venv/bin/python benchmarks/covisit_worlds.py --worlds latent --resume
    .venv/bin/python benchmarks/covisit_worlds.py --table-only             # print the table again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geograph import covisit as C  # noqa: E402
from geograph.covisit.config import CovisitConfig, load_config_file  # noqa: E402
from geograph.covisit.data import load_world_for  # noqa: E402

MODELS = {"GNN": ROOT / "experiments/covisit_naics_sage.yaml", "GBT": ROOT / "experiments/covisit_gbt.yaml"}
PROTOCOLS = {
    "edges": {},
    "states": {"protocol": "states", "val_frac": 0.1042, "test_frac": 0.0625},
}
WORLDS = ("embedded", "latent")
METRIC = "test_observed_r2_log1p"
DEFAULT_OUT = ROOT / "benchmarks/out/covisit_worlds.json"


def config_for(model: str, world: str, protocol: str, seed: int, n_pois: int, ckpt: str) -> CovisitConfig:
    """The model's YAML config with the benchmark's world, protocol, seed and quiet settings."""
    d = load_config_file(MODELS[model])
    d.setdefault("data", {}).update({"n_pois": n_pois, "generator": world, "cache_dir": None, "world_seed": 0})
    d.setdefault("split", {}).update(PROTOCOLS[protocol])
    d.setdefault("train", {}).update({"seed": seed, "progress": False, "checkpoint_dir": ckpt})
    return CovisitConfig.from_dict(d)


def run_one(cfg: CovisitConfig, world) -> dict:
    t0 = time.perf_counter()
    prep = C.prepare(cfg, world)
    fr = C.fit(prep)
    metrics = C.evaluate.evaluate(fr, prep)
    return {
        METRIC: float(metrics[METRIC]),
        "test_r2": float(metrics.get("test_r2", float("nan"))),
        "best_epoch": int(getattr(fr, "best_epoch", 0) or 0),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def load(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hardware() -> str:
    from hostinfo import cpu_model

    cpu = cpu_model()
    return (
        f"Hardware: {cpu}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} on CPU with torch.set_num_threads(1), Python {platform.python_version()}"
    )


def _fmt(v: list[float]) -> str:
    if not v:
        return "-"
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return f"{np.mean(v):.3f} ± {sd:.3f}"


def table(rows: list[dict]) -> str:
    """Markdown table: one line per world and protocol, the two models and their difference."""
    lines = [
        f"| world | protocol | GNN {METRIC} | GBT {METRIC} | GNN - GBT | seeds |",
        "|---|---|---:|---:|---:|---|",
    ]
    for world in WORLDS:
        for protocol in PROTOCOLS:
            sel = [r for r in rows if r["world"] == world and r["protocol"] == protocol]
            if not sel:
                continue
            by = {m: {r["seed"]: r[METRIC] for r in sel if r["model"] == m} for m in MODELS}
            both = sorted(set(by["GNN"]) & set(by["GBT"]))
            diff = [by["GNN"][s] - by["GBT"][s] for s in both]
            seeds = ",".join(str(s) for s in sorted(set(by["GNN"]) | set(by["GBT"])))
            lines.append(
                f"| {world} | {protocol} | {_fmt(list(by['GNN'].values()))} | {_fmt(list(by['GBT'].values()))} "
                f"| {_fmt(diff) if diff else '-'} | {seeds} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated: embedded, latent")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated: edges, states")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: GNN, GBT")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated train seeds (default 0,1,2)")
    ap.add_argument("--pois", type=int, default=5000, help="POIs per world (default 5000)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON lines of finished runs (default {DEFAULT_OUT})")
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out and skip them")
    ap.add_argument("--table-only", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.table_only:
        print(table(load(args.out)))
        print()
        print(hardware())
        return 0
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    models = [m.strip().upper() for m in args.models.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for name, got, known in (("world", worlds, WORLDS), ("protocol", protocols, PROTOCOLS), ("model", models, MODELS)):
        bad = [g for g in got if g not in known]
        if bad:
            ap.error(f"unknown {name}(s) {bad}; expected some of {list(known)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = load(args.out) if args.resume else []
    if not args.resume:
        args.out.write_text("")
    done = {(r["world"], r["protocol"], r["model"], r["seed"]) for r in rows}
    with tempfile.TemporaryDirectory(prefix="covisit_worlds_") as tmp:
        for world_name in worlds:
            world = None
            for protocol in protocols:
                for seed in seeds:
                    for model in models:
                        key = (world_name, protocol, model, seed)
                        if key in done:
                            continue
                        cfg = config_for(model, world_name, protocol, seed, args.pois, str(Path(tmp) / "ckpt"))
                        if world is None:
                            world = load_world_for(cfg)
                        row = {"world": world_name, "protocol": protocol, "model": model, "seed": seed}
                        row.update(run_one(cfg, world))
                        rows.append(row)
                        with args.out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    print()
    print(table(rows))
    print()
    print(hardware())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
