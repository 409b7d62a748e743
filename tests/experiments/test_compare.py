"""compare_runs / report on hand-made runs with exact numbers (local default store)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import polars as pl
import pytest

from geograph.cli.main import main
from geograph.errors import TrackingError
from geograph.experiments.compare import compare_runs, report
from geograph.experiments.grouping import higher_is_better
from geograph.experiments.rendering import render_markdown
from geograph.tracking import start_run
from geograph.tracking.tags import RUN_KIND_SUMMARY, TAG_CONFIG_NAME, TAG_RUN_KIND

EXP = "handmade"
# (config name, alpha, seed, test_r2, test_rmse); lr is the same everywhere
RUNS = [
    ("ridge_a", 1.0, 0, 0.5, 2.0),
    ("ridge_a", 1.0, 1, 0.7, 1.0),
    ("ridge_b", 2.0, 0, 0.8, 1.0),
    ("ridge_b", 2.0, 1, 0.9, 1.0),
    ("ridge_b", 2.0, 2, 1.0, 1.0),
    ("ridge_c", 3.0, 0, 0.2, 3.0),
]


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory, make_local_store: Callable) -> Iterator[str]:
    """One local default store with the hand-made runs, shared by this module's tests.

    Tests may add summary runs (they never enter a comparison) but nothing else.
    """
    with pytest.MonkeyPatch.context() as mp:
        uri = make_local_store(tmp_path_factory.mktemp("handmade"), mp)
        _log_handmade_runs()
        yield uri


def _log_handmade_runs() -> None:
    for name, alpha, seed, r2, rmse in RUNS:
        params = {"model": {"alpha": alpha}, "train": {"lr": 0.1, "seed": seed}}
        with start_run(EXP, run_name=f"{name}-{seed}", params=params, tags={TAG_CONFIG_NAME: name}):
            for step in range(3):
                mlflow.log_metric("train_loss", (3 - step) * alpha + seed, step=step)
            mlflow.log_metrics({"test_r2": r2, "test_rmse": rmse})
    # noise that must be ignored: a crashed run and a summary run
    with pytest.raises(RuntimeError):
        with start_run(EXP, params={"model": {"alpha": 9.0}, "train": {"lr": 0.1, "seed": 0}}):
            mlflow.log_metric("test_r2", 99.0)
            raise RuntimeError("crash")
    with start_run(EXP, tags={TAG_RUN_KIND: RUN_KIND_SUMMARY}):
        mlflow.log_metric("test_r2", 42.0)


def test_compare_exact_numbers(handmade: str) -> None:
    df = compare_runs(EXP, "test_r2")
    assert df.columns == [
        "config",
        "model.alpha",
        "n_runs",
        "seeds",
        "test_r2_mean",
        "test_r2_std",
        "test_rmse_mean",
        "test_rmse_std",
        "best",
    ]  # train.lr is the same for every config, so it is not a column; the seed never is
    assert df["config"].to_list() == ["ridge_b", "ridge_a", "ridge_c"]
    assert df["model.alpha"].to_list() == ["2.0", "1.0", "3.0"]
    assert df["n_runs"].to_list() == [3, 2, 1]
    assert df["seeds"].to_list() == ["0,1,2", "0,1", "0"]
    assert df["test_r2_mean"].to_list() == pytest.approx([0.9, 0.6, 0.2])
    # sample std (ddof=1): sqrt(((0.5-0.6)^2 + (0.7-0.6)^2) / 1) = 0.141421...
    b, a, c = df["test_r2_std"].to_list()
    assert b == pytest.approx(0.1) and a == pytest.approx(math.sqrt(0.02)) and c is None
    assert df["test_rmse_mean"].to_list() == pytest.approx([1.0, 1.5, 3.0])
    assert df["best"].to_list() == [True, False, False]


def test_lower_is_better_metrics(handmade: str) -> None:
    assert not higher_is_better("test_rmse") and not higher_is_better("val_loss")
    assert not higher_is_better("test_median_km") and not higher_is_better("test_mae")
    assert higher_is_better("test_r2") and higher_is_better("test_ndcg@10")
    df = compare_runs(EXP, "test_rmse")
    assert df["config"].to_list() == ["ridge_b", "ridge_a", "ridge_c"]
    assert df.columns[4:6] == ["test_rmse_mean", "test_rmse_std"]
    assert df["best"].to_list() == [True, False, False]
    flipped = compare_runs(EXP, "test_rmse", higher_is_better=True)
    assert flipped["config"].to_list() == ["ridge_c", "ridge_a", "ridge_b"]


def test_group_by(handmade: str) -> None:
    df = compare_runs(EXP, "test_r2", group_by=["train.lr"])
    assert df.height == 1 and df["n_runs"].to_list() == [6]
    assert df["test_r2_mean"][0] == pytest.approx((0.5 + 0.7 + 0.8 + 0.9 + 1.0 + 0.2) / 6)


def test_markdown_is_exact(handmade: str) -> None:
    md = render_markdown(compare_runs(EXP, "test_r2"), "test_r2", experiment=EXP)
    assert md == (
        "# Comparison: handmade\n"
        "\n"
        "Ranked by `test_r2` (higher is better); metrics are mean ± sample std (ddof=1) over seeds; "
        "6 finished runs in 3 configs; ★ marks the best.\n"
        "\n"
        "| best | config | n_runs | seeds | test_r2 | test_rmse |\n"
        "|:-:|---|---:|---|---:|---:|\n"
        "| ★ | ridge_b | 3 | 0,1,2 | 0.9000 ± 0.1000 | 1.0000 ± 0.0000 |\n"
        "|  | ridge_a | 2 | 0,1 | 0.6000 ± 0.1414 | 1.5000 ± 0.7071 |\n"
        "|  | ridge_c | 1 | 0 | 0.2000 | 3.0000 |\n"
        "\n"
        "Config differences (params that differ between configs):\n"
        "\n"
        "| param | ridge_b | ridge_a | ridge_c |\n"
        "|---|---|---|---|\n"
        "| model.alpha | 2.0 | 1.0 | 3.0 |\n"
    )


def test_report_writes_files_and_logs_a_summary_run(handmade: str, tmp_path: Path) -> None:
    rep = report(EXP, "test_r2", out_dir=tmp_path / "out")
    assert rep.markdown_path.read_text().startswith("# Comparison: handmade\n")
    csv = pl.read_csv(rep.csv_path)
    assert csv["config"].to_list() == ["ridge_b", "ridge_a", "ridge_c"]
    assert csv["test_r2_mean"].to_list() == pytest.approx([0.9, 0.6, 0.2])
    assert [p.name for p in rep.plot_paths] == ["metric_bars.png", "learning_curves.png"]
    for p in rep.plot_paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave no temp files
    client = mlflow.MlflowClient()
    summary = client.get_run(rep.summary_run_id)
    assert summary.data.tags[TAG_RUN_KIND] == RUN_KIND_SUMMARY
    assert summary.data.tags["geograph.best_config"] == "ridge_b"
    logged = sorted(a.path for a in client.list_artifacts(rep.summary_run_id, "comparison"))
    assert logged == [
        "comparison/comparison.csv",
        "comparison/comparison.md",
        "comparison/learning_curves.png",
        "comparison/metric_bars.png",
    ]
    # the summary run itself never enters a comparison
    assert compare_runs(EXP, "test_r2")["n_runs"].to_list() == [3, 2, 1]


def test_compare_cli(
    handmade: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: rich does not wrap the cells
    rc = main(
        ["compare", "--experiment", EXP, "--metric", "test_r2", "--out", str(tmp_path / "cli"), "--no-log"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "0.6000 ± 0.1414" in out and "ridge_b" in out
    assert (tmp_path / "cli" / "comparison.md").is_file()
    assert (tmp_path / "cli" / "comparison.csv").is_file()


def test_compare_errors_are_clear(handmade: str) -> None:
    with pytest.raises(TrackingError, match="no experiment named 'nope'"):
        compare_runs("nope")
    with pytest.raises(TrackingError, match="logged metric 'test_ndcg'"):
        compare_runs(EXP, "test_ndcg")
    assert main(["compare", "--experiment", "nope", "--no-log"]) == 2
