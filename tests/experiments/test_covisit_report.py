"""benchmarks/covisit_report.py on two tiny hand-made covisit models, and its figure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import matplotlib.image
import mlflow
import numpy as np
import polars as pl
import pytest

from geograph.errors import TrackingError
from geograph.experiments.rendering import PredictionPanel, pred_vs_observed_figure
from geograph.tracking import start_run
from geograph.tracking.tags import TAG_CONFIG_NAME

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "covisit_report.py"
EXP = "covisit"
# (model, seed, test_observed_r2_log1p, prediction offset)
RUNS = [("sage", 1, 0.7, 0.2), ("sage", 0, 0.5, 0.1), ("gravity", 0, 0.2, 0.5), ("gravity", 1, 0.4, 0.3)]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("covisit_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _log_runs(tmp: Path, predictions: bool = True) -> dict[tuple[str, int], str]:
    ids = {}
    for model, seed, r2, offset in RUNS:
        params = {"model": {"family": model}, "train": {"seed": seed}}
        with start_run(EXP, run_name=f"{model}-s{seed}", params=params, tags={TAG_CONFIG_NAME: model}) as run:
            mlflow.log_metrics(
                {
                    "test_observed_r2_log1p": r2,
                    "test_observed_cpc": r2 / 2,
                    "test_ndcg10": 0.3,
                    "test_mrr": 0.4,
                }
            )
            if predictions:
                visitors = np.array([0, 3, 7, 20, 0])
                pred = np.log1p(visitors) + offset
                path = tmp / f"{model}-{seed}" / "test_predictions.csv"
                path.parent.mkdir()
                pl.DataFrame(
                    {
                        "src_poi_id": ["a", "a", "b", "b", "c"],
                        "dst_poi_id": ["b", "c", "a", "c", "a"],
                        "visitors": visitors,
                        "observed": [True, True, True, True, False],
                        "predicted_log1p": pred,
                        "predicted_visitors": np.expm1(np.clip(pred, 0, None)),
                    }
                ).write_csv(path)
                mlflow.log_artifact(str(path))
            ids[(model, seed)] = run.info.run_id
    return ids


def test_report_writes_the_table_and_one_panel_per_model(
    local_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _log_runs(tmp_path)
    out = tmp_path / "report"
    script = _script()
    assert script.main(["--experiment", EXP, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'pred_vs_observed.png'} (2 panels: sage, gravity)" in printed

    md = (out / "comparison.md").read_text()
    assert "| ★ | sage | 2 | 0,1 | 0.6000 ± 0.1414 |" in md
    assert "| gravity | 2 | 0,1 | 0.3000 ± 0.1414 |" in md
    assert (out / "comparison.csv").is_file()
    png = out / "pred_vs_observed.png"
    assert png.stat().st_size > 0
    height, width, _ = matplotlib.image.imread(png).shape
    assert (width, height) == (880, 440)  # two 4-inch panels side by side at 110 dpi

    rep = script.write_report(EXP, tmp_path / "again")
    assert rep.panels == {"sage": ids[("sage", 0)], "gravity": ids[("gravity", 0)]}  # the lowest seed


def test_report_names_a_run_without_predictions(local_store: str, tmp_path: Path) -> None:
    _log_runs(tmp_path, predictions=False)
    with pytest.raises(TrackingError, match="has no test_predictions.csv artifact"):
        _script().write_report(EXP, tmp_path / "report")


def test_pred_vs_observed_figure_has_one_panel_per_model() -> None:
    import matplotlib.pyplot as plt

    y = np.log1p(np.array([1.0, 4.0, 9.0]))
    panels = {f"m{i}": PredictionPanel(y, y + 0.1 * i, r2=0.5 + 0.1 * i, seed=0) for i in range(4)}
    fig = pred_vs_observed_figure(panels)
    try:
        assert len(fig.axes) == 4  # a 2 x 3 grid with its two spare axes removed
        assert [ax.get_title() for ax in fig.axes] == [
            "m0: observed R² 0.500, seed 0",
            "m1: observed R² 0.600, seed 0",
            "m2: observed R² 0.700, seed 0",
            "m3: observed R² 0.800, seed 0",
        ]
        xs, ys = fig.axes[0].lines[0].get_data()  # the y=x line
        assert list(xs) == list(ys)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="no models"):
        pred_vs_observed_figure({})
