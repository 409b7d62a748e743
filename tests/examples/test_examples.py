"""Each script in examples/ runs from the repository root and writes what it says it writes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, out: Path, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, f"examples/{script}", "--out", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_covisit_compare_prints_the_three_models(tmp_path):
    out = tmp_path / "out"
    text = _run("covisit_compare.py", out, tmp_path, "--n-pois", "300", "--epochs", "3")
    for name in ("naics_sage", "gravity", "gbt"):
        assert f"{name}: run " in text
        assert f"| {name}" in text.replace("★", " ")
    assert (tmp_path / "mlflow.db").is_file()  # the store came from MLFLOW_TRACKING_URI
    assert not (out / "mlflow.db").exists()
    assert (out / "comparison.csv").read_text().count("\n") == 4  # header + three configs


@pytest.mark.slow
def test_geolocate_own_embeddings_reports_accuracy(tmp_path):
    out = tmp_path / "out"
    text = _run("geolocate_own_embeddings.py", out, tmp_path, "--n", "600", "--epochs", "2")
    for km in (25, 200, 750):
        assert f"accuracy within {km} km: " in text
    assert (out / "my_embeddings.parquet").is_file()
    assert (out / "predictions.csv").read_text().count("\n") == 121  # header + 20% of 600


def test_urban_analytics_answers_and_draws_maps(tmp_path):
    out = tmp_path / "out"
    text = _run("urban_analytics.py", out, tmp_path, "--n-pois", "400")
    assert "Which brands do visitors of " in text
    assert "NAICS sector flows" in text and "hotspots" in text
    for name in ("hotspots.html", "hotspots.png", "naics_flow.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "hotspots.png").read_bytes()[:4] == b"\x89PNG"
