"""The demo's seed-0 table (README) reproduces: every model's test metrics to the printed digits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# model -> (observed-pair R², MAE, Spearman, CPC; NDCG@10, MRR) as the README's demo table prints them
README_TABLE = {
    "naics_sage": (0.604, 0.536, 0.679, 0.527, 0.315, 0.359),
    "no_naics": (0.495, 0.601, 0.623, 0.412, 0.301, 0.337),
    "mlp": (0.561, 0.561, 0.666, 0.471, 0.323, 0.356),
    "gbt": (0.471, 0.616, 0.619, 0.404, 0.335, 0.389),
    "gravity": (0.321, 0.721, 0.570, 0.271, 0.344, 0.415),
}
KEYS = (
    "test_observed_r2_log1p",
    "test_observed_mae_log1p",
    "test_observed_spearman",
    "test_observed_cpc",
    "test_ndcg10",
    "test_mrr",
)


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
