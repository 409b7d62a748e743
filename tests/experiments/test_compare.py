"""compare_runs / report on hand-made runs with exact numbers (local default store)."""

from __future__ import annotations

import csv
import io
import math
import shutil
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
from geograph.tracking.store import resolve_run_id
from geograph.tracking.tags import RUN_KIND_SUMMARY, TAG_CONFIG_NAME, TAG_DATA_FINGERPRINT, TAG_RUN_KIND

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
        "group",
        "data",
        "protocol",
        "config",
        "model.alpha",
        "n_runs",
        "seeds",
        "test_r2_mean",
        "test_r2_std",
        "test_rmse_mean",
        "test_rmse_std",
        "best",
        "run",
        "run_ids",
    ]  # train.lr is the same for every config, so it is not a column; the seed never is
    # no fingerprint tag and no protocol param: one comparison group
    assert df["group"].to_list() == [1, 1, 1] and df["data"].to_list() == [None] * 3
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
    assert df.columns[7:9] == ["test_rmse_mean", "test_rmse_std"]
    assert df["best"].to_list() == [True, False, False]
    flipped = compare_runs(EXP, "test_rmse", higher_is_better=True)
    assert flipped["config"].to_list() == ["ridge_c", "ridge_a", "ridge_b"]


def test_group_by(handmade: str) -> None:
    df = compare_runs(EXP, "test_r2", group_by=["train.lr"])
    assert df.height == 1 and df["n_runs"].to_list() == [6]
    assert df["test_r2_mean"][0] == pytest.approx((0.5 + 0.7 + 0.8 + 0.9 + 1.0 + 0.2) / 6)


def test_markdown_is_exact(handmade: str) -> None:
    df = compare_runs(EXP, "test_r2")
    b, a, c = df["run"].to_list()
    md = render_markdown(df, "test_r2", experiment=EXP)
    assert md == (
        "# Comparison: handmade\n"
        "\n"
        "Ranked by `test_r2` (higher is better); metrics are mean ± sample std (ddof=1) over seeds; "
        "6 finished runs in 3 configs and 1 group (runs on different data or protocols are never "
        "compared); ★ marks the best of each group; `run` is the best seed's run id (prefix).\n"
        "\n"
        "## Group 1 of 1: data untagged, protocol —; 6 runs in 3 configs\n"
        "\n"
        "| best | config | n_runs | seeds | test_r2 | test_rmse | run |\n"
        "|:-:|---|---:|---|---:|---:|---|\n"
        f"| ★ | ridge_b | 3 | 0,1,2 | 0.9000 ± 0.1000 | 1.0000 ± 0.0000 | {b} |\n"
        f"|  | ridge_a | 2 | 0,1 | 0.6000 ± 0.1414 | 1.5000 ± 0.7071 | {a} |\n"
        f"|  | ridge_c | 1 | 0 | 0.2000 | 3.0000 | {c} |\n"
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


# --- comparison groups: runs on different data or protocols are never compared --------------------

GROUPS_EXP = "cohorts"
FP_A, FP_B = "a" * 16, "b" * 16
# (data fingerprint, split.protocol, config, seed, test_r2); ridge_mlp on data B beats everything,
# but it may only be starred inside its own group
GROUP_RUNS = [
    (FP_A, "edges", "ridge_sage", 0, 0.8),
    (FP_A, "edges", "ridge_sage", 1, 0.6),
    (FP_A, "edges", "ridge_mlp", 0, 0.5),
    (FP_A, "edges", "ridge_mlp", 1, 0.7),
    (FP_B, "edges", "ridge_sage", 0, 0.3),
    (FP_B, "edges", "ridge_mlp", 0, 0.95),
    (FP_A, "states", "ridge_sage", 0, 0.4),
]
OTHER_METRICS = ("test_observed_mae", "test_observed_cpc", "test_ndcg10", "test_mrr")


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory, empty_store_db: Path) -> str:
    """A sqlite store holding :data:`GROUP_RUNS` (five metrics each, so not all fit 80 columns)."""
    db = tmp_path_factory.mktemp("grouped") / "mlflow.db"
    shutil.copyfile(empty_store_db, db)
    uri = f"sqlite:///{db}"
    for fp, protocol, name, seed, r2 in GROUP_RUNS:
        params = {
            "model": {"name": name, "hidden": 64 if name == "ridge_sage" else 32},
            "split": {"protocol": protocol},
            "train": {"seed": seed},
        }
        tags = {TAG_CONFIG_NAME: name, TAG_DATA_FINGERPRINT: fp}
        with start_run(GROUPS_EXP, run_name=f"{name}-{seed}", params=params, tags=tags, tracking_uri=uri):
            mlflow.log_metrics(
                {"test_r2": r2, **{m: r2 / (k + 2) + 0.01 * seed for k, m in enumerate(OTHER_METRICS)}}
            )
    return uri


def _cli(capsys: pytest.CaptureFixture[str], uri: str, *extra: str) -> str:
    rc = main(
        [
            "compare",
            "--experiment",
            GROUPS_EXP,
            "--metric",
            "test_r2",
            "--tracking-uri",
            uri,
            "--out",
            "out",
            "--no-log",
            *extra,
        ]
    )
    assert rc == 0
    return capsys.readouterr().out


def test_runs_on_other_data_are_never_compared(grouped: str) -> None:
    df = compare_runs(GROUPS_EXP, "test_r2", tracking_uri=grouped)
    rows = {
        (g, d, p, c): (n, mean, best)
        for g, d, p, c, n, mean, best in df.select(
            "group", "data", "protocol", "config", "n_runs", "test_r2_mean", "best"
        ).iter_rows()
    }
    assert rows == {
        (1, FP_A, "edges", "ridge_sage"): (2, pytest.approx(0.7), True),
        (1, FP_A, "edges", "ridge_mlp"): (2, pytest.approx(0.6), False),
        (2, FP_B, "edges", "ridge_mlp@2"): (1, pytest.approx(0.95), True),
        (2, FP_B, "edges", "ridge_sage@2"): (1, pytest.approx(0.3), False),
        (3, FP_A, "states", "ridge_sage@3"): (1, pytest.approx(0.4), True),
    }
    assert df.group_by("group").agg(pl.col("best").sum())["best"].to_list() == [1, 1, 1]
    # the protocol is a column of its own, not a config difference
    assert "split.protocol" not in df.columns and df["model.hidden"].to_list() == [
        "64",
        "32",
        "32",
        "64",
        "64",
    ]


def test_run_prefixes_are_unique_and_name_the_best_seed(grouped: str) -> None:
    df = compare_runs(GROUPS_EXP, "test_r2", tracking_uri=grouped)
    client = mlflow.MlflowClient(tracking_uri=grouped)
    for prefix, ids in df.select("run", "run_ids").iter_rows():
        assert len(prefix) >= 8
        full = resolve_run_id(prefix, grouped)
        assert full in ids.split(",")
        best = max(ids.split(","), key=lambda i: client.get_run(i).data.metrics["test_r2"])
        assert full == best


def test_compare_table_fits_80_columns(
    grouped: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    out = _cli(capsys, grouped)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert out.count("★") == 3 + 1  # one per group, and once in the legend
    assert [line.split(":")[0] for line in lines if line.startswith("group ")] == [
        "group 1 of 3",
        "group 2 of 3",
        "group 3 of 3",
    ]
    assert "0.7000 ± 0.1414" in out and "m1 test_r2" in out and "more: --wide" in out
    # every run prefix is printed whole, on one line
    for prefix in compare_runs(GROUPS_EXP, "test_r2", tracking_uri=grouped)["run"].to_list():
        assert f" {prefix} " in out
    wide = _cli(capsys, grouped, "--wide")
    assert all(m in wide for m in OTHER_METRICS) and "model.hidden" in wide
    assert max(len(line) for line in wide.splitlines()) > 80


def test_compare_markdown_and_csv_parse(
    grouped: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = list(csv.DictReader(io.StringIO(_cli(capsys, grouped, "--format", "csv"))))
    assert [(r["group"], r["config"], r["best"]) for r in rows] == [
        ("1", "ridge_sage", "true"),
        ("1", "ridge_mlp", "false"),
        ("2", "ridge_mlp@2", "true"),
        ("2", "ridge_sage@2", "false"),
        ("3", "ridge_sage@3", "true"),
    ]
    assert float(rows[0]["test_r2_mean"]) == pytest.approx(0.7)
    assert rows == list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    md = _cli(capsys, grouped, "--format", "markdown")
    assert md == (tmp_path / "out" / "comparison.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("## ")] == [
        f"## Group 1 of 3: data {FP_A}, protocol edges; 4 runs in 2 configs",
        f"## Group 2 of 3: data {FP_B}, protocol edges; 2 runs in 2 configs",
        f"## Group 3 of 3: data {FP_A}, protocol states; 1 run in 1 config",
    ]
    tables = [block.splitlines() for block in md.split("\n\n") if block.startswith("| best |")]
    assert len(tables) == 3
    for table in tables:  # every row has the header's cells, and one row per table is starred
        width = table[0].count(" | ")
        assert all(line.count(" | ") == width for line in table[2:])
        assert sum(line.startswith("| ★ |") for line in table) == 1


def test_a_printed_prefix_registers_the_run(
    grouped: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = list(csv.DictReader(io.StringIO(_cli(capsys, grouped, "--format", "csv"))))
    prefix, full = rows[0]["run"], rows[0]["run_ids"].split(",")
    with mlflow.start_run(run_id=resolve_run_id(prefix, grouped)):  # a minimal model folder
        mlflow.log_text("flavors: {}\n", "model/MLmodel")
    assert main(["register", "--run-id", prefix, "--name", "grouped_best", "--tracking-uri", grouped]) == 0
    out = capsys.readouterr().out
    registered = out.split("runs:/", 1)[1].split("/", 1)[0]
    assert registered in full and registered.startswith(prefix)


def test_knobs_a_run_chose_itself_do_not_split_its_config() -> None:
    """Geolocation logs the knobs it picked on validation as ``chosen.*`` params; they differ
    between seeds and must not make each seed a config of its own."""
    from types import SimpleNamespace

    from geograph.experiments.grouping import group_runs

    def run(seed: int, k: int, method: str = "knn") -> SimpleNamespace:
        params = {"method": method, "train.seed": str(seed), "chosen.knn_k": str(k)}
        return SimpleNamespace(data=SimpleNamespace(params=params, tags={TAG_DATA_FINGERPRINT: "fp"}))

    groups = group_runs([run(0, 10), run(1, 50), run(2, 10), run(0, 10, "cells")], None)
    assert [(dict(g.key), len(g.runs)) for g in groups] == [({"method": "knn"}, 3), ({"method": "cells"}, 1)]
