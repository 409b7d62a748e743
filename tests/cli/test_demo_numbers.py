"""The demo's seed-0 table (README) reproduces: every model's test metrics to the printed digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# model -> (test R², MAE, Spearman, NDCG@10, Recall@10) as the README's demo table prints them
README_TABLE = {
    "naics_sage": (0.592, 0.336, 0.621, 0.780, 0.912),
    "no_naics": (0.535, 0.356, 0.619, 0.766, 0.924),
    "mlp": (0.561, 0.355, 0.619, 0.794, 0.921),
    "gbt": (0.530, 0.350, 0.629, 0.818, 0.932),
    "gravity": (0.285, 0.543, 0.556, 0.731, 0.897),
}
KEYS = ("test_r2", "test_mae", "test_spearman", "test_ndcg10", "test_recall10")


@pytest.mark.slow
def test_demo_reproduces_the_readme_table(tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    done = subprocess.run([sys.executable, "-m", "geograph", "demo", "--tracking-uri", uri],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    got = {r.data.tags["geograph.config_name"]: tuple(round(r.data.metrics[k], 3) for k in KEYS) for r in runs}
    assert got == README_TABLE
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, values in README_TABLE.items():  # the table the README prints holds these numbers
        assert any(line.startswith(f"│ {name}") and all(f"{v:.3f}" in line for v in values)
                   for line in readme.splitlines()), name
