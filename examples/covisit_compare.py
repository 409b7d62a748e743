"""Train the NAICS-aware GNN and two baselines on a small generated world, then compare them.

    python examples/covisit_compare.py --out runs/covisit_example

Each model is one tracked run (``geograph.covisit.run_from_config``, what ``geograph train
covisit`` calls); the comparison is read back from MLflow (``geograph.experiments``, what
``geograph compare`` prints). The MLflow store is ``--tracking-uri``, else
``MLFLOW_TRACKING_URI``, else a SQLite file in the output folder.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from geograph.covisit import run_from_config
from geograph.data.synthetic import generate_world
from geograph.experiments import compare_runs, print_table

EXPERIMENT = "covisit_example"
METRIC = "test_observed_r2_log1p"
MODELS = {  # name -> config sections on top of the shared ones below
    "naics_sage": {"model": {"family": "gnn", "hidden": 32, "head_hidden": [32]}},
    "gravity": {"model": {"family": "gravity"}},
    "gbt": {"model": {"family": "gbt", "gbt_max_iter": 60}},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else <out>/mlflow.db)")
    parser.add_argument("--n-pois", type=int, default=400, help="POIs of the generated world")
    parser.add_argument("--epochs", type=int, default=8, help="GNN epochs")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="covisit_example_"))
    out.mkdir(parents=True, exist_ok=True)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / 'mlflow.db').resolve()}"

    world = generate_world(n_pois=args.n_pois, seed=0, progress=False)  # one world for every model
    run_ids = []
    for name, sections in MODELS.items():
        config = {
            "name": name,
            "data": {"cache_dir": None},
            "train": {"seed": 0, "epochs": args.epochs, "progress": False, "checkpoint_dir": str(out / "checkpoints")},
            "tracking": {"experiment": EXPERIMENT, "log_model": False},
            **sections,
        }
        result = run_from_config(config, tracking_uri=uri, world=world)
        run_ids.append(result["run_id"])
        print(f"{name}: run {result['run_id']}, {METRIC} = {result['metrics'][METRIC]:.3f}")

    table = compare_runs(EXPERIMENT, METRIC, tracking_uri=uri, run_ids=run_ids)
    print_table(table, METRIC, experiment=EXPERIMENT)
    table.drop("run_ids").write_csv(out / "comparison.csv")
    print(f"comparison written to {out / 'comparison.csv'}")


if __name__ == "__main__":
    main()
