"""``geograph demo``: the main job on the embedded world, end to end.

Generates the embedded world (printing its summary), trains the NAICS-aware GNN and the
baselines (GNN without NAICS, MLP without message passing, gradient-boosted trees, gravity),
logs every run to MLflow, and prints one comparison table read back from MLflow. The paper's
512-wide architecture costs about 40x more per epoch on a CPU; add it with
``--configs ... experiments/covisit_paper.yaml`` or run ``experiments/covisit_suite_paper.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import time

from geograph.cli.common import add_quiet_arg, console, step

DEMO_CONFIGS = (
    "experiments/covisit_naics_sage.yaml",
    "experiments/covisit_no_naics.yaml",
    "experiments/covisit_mlp.yaml",
    "experiments/covisit_gbt.yaml",
    "experiments/covisit_gravity.yaml",
)
DEMO_EXPERIMENT = "demo"
HEADLINE = "test_observed_r2_log1p"
# (column, MLflow metric, format); the first column is the model name
DEMO_COLUMNS = (
    ("model", "", ""),
    ("obs. R²", HEADLINE, "{:.3f}"),
    ("obs. MAE", "test_observed_mae_log1p", "{:.3f}"),
    ("obs. Spearman", "test_observed_spearman", "{:.3f}"),
    ("CPC", "test_observed_cpc", "{:.3f}"),
    ("NDCG@10", "test_ndcg10", "{:.3f}"),
    ("MRR", "test_mrr", "{:.3f}"),
    ("train s", "train_time_s", "{:.1f}"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="build the embedded world, train the model and baselines, compare in MLflow")
    p.add_argument("--pois", type=int, default=5000, help="embedded world size (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="model / split seed (default 0)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs of every GNN config")
    p.add_argument("--configs", nargs="+", default=list(DEMO_CONFIGS), help="configs to run")
    p.add_argument("--experiment", default=DEMO_EXPERIMENT, help=f"MLflow experiment (default {DEMO_EXPERIMENT})")
    p.add_argument("--tracking-uri", default=None)
    add_quiet_arg(p)
    p.set_defaults(func=_demo)


def comparison_table(experiment: str, run_ids: list[str], tracking_uri: str | None = None):
    """Rows of (name, metrics) for ``run_ids``, read back from MLflow."""
    import mlflow

    from geograph.tracking import configure

    configure(tracking_uri)
    rows = []
    for rid in run_ids:
        run = mlflow.get_run(rid)
        rows.append((run.data.tags.get("geograph.config_name", run.info.run_name), run.data.metrics, rid))
    return rows


def _demo(args) -> int:
    from rich.table import Table

    from geograph.config import read_config
    from geograph.covisit.config import CovisitConfig
    from geograph.covisit.run import run_from_config
    from geograph.data.synthetic import generate_world, print_world_summary
    from geograph.tracking.store import unique_prefixes

    con = console()
    t0 = time.perf_counter()
    with step(f"generating the embedded world ({args.pois} POIs)", args.quiet):
        world = generate_world(n_pois=args.pois, seed=0, progress=False if args.quiet else None)
    import torch

    # the demo graphs are small: one thread per process beats thread hand-offs on 2 cores
    torch.set_num_threads(1)
    print_world_summary(world, console=con)
    run_ids = []
    # one line per model on stderr (each training shows its own epochs there); the result,
    # the table below, alone goes to stdout
    for i, path in enumerate(args.configs, 1):
        sets = [f"train.seed={args.seed}", f"data.n_pois={args.pois}", f"tracking.experiment={args.experiment}"]
        if args.epochs is not None:
            sets.append(f"train.epochs={args.epochs}")
        if args.quiet:
            sets.append("train.progress=false")
        d = read_config(path, sets, CovisitConfig)
        if not args.quiet:  # a line, not a spinner: the training shows its own live bar
            print(f"geograph: model {i}/{len(args.configs)}: training {d.get('name', path)}", file=sys.stderr,
                  flush=True)
        out = run_from_config(d, tracking_uri=args.tracking_uri, world=_covisit_world(world))
        run_ids.append(out["run_id"])
    rows = comparison_table(args.experiment, run_ids, args.tracking_uri)
    short = unique_prefixes(run_ids, args.tracking_uri)
    t = Table(title=f"co-visitation on the embedded world ({args.pois} POIs, seed {args.seed}), read back from MLflow")
    for col, _key, _fmt in DEMO_COLUMNS:
        t.add_column(col, justify="left" if col == "model" else "right")
    t.add_column("run", justify="left", no_wrap=True)
    best = max(rows, key=lambda r: r[1].get(HEADLINE, float("-inf")))
    for name, m, rid in rows:
        cells = [name + (" *" if name == best[0] else "")]
        cells += [fmt.format(m.get(key, float("nan"))) for _, key, fmt in DEMO_COLUMNS[1:]]
        t.add_row(*cells, short[rid])
    con.print(t)
    con.print(f"* best R² on observed test pairs (co-visit rows only, sampled zero pairs left out; log1p scale). "
              f"CPC: common part of commuters on observed pairs. NDCG@10 / MRR rank each held-out source against "
              f"every POI of its state. Total {time.perf_counter() - t0:.0f} s. "
              f"Run: a unique prefix of the run id (--run-id and --resume take it). "
              f"Browse the runs: geograph ui  |  compare: geograph compare --experiment {args.experiment}")
    return 0


def _covisit_world(world):
    """The demo's co-visitation runs share one world (images are not needed for them)."""
    from geograph.data.world_io import World

    return World(pois=world.pois, covisits=world.covisits, images=None, regions=world.regions, meta=world.meta)
