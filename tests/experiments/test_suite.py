"""Experiment suites: resume after a crash, nesting, data fingerprints, the `geograph run` CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from geograph.cli.main import main
from geograph.errors import ConfigError, TrackingError
from geograph.experiments.registry import register_task, unregister_task
from geograph.experiments.suite import SuiteRunError, load_suite, run_suite
from geograph.tracking import start_run
from geograph.tracking.server import free_port
from geograph.tracking.tags import (
    RUN_KIND_SUITE,
    TAG_CONFIG_HASH,
    TAG_CONFIG_NAME,
    TAG_DATA_FINGERPRINT,
    TAG_RUN_KIND,
)


def write_suite(path: Path, task: str, experiment: str, names=("a", "b", "c"), seeds=(0, 1), **extra) -> Path:
    alphas = {"a": 0.1, "b": 1.0, "c": 10.0}
    suite = {
        "name": f"suite-{experiment}",
        "experiment": experiment,
        "task": task,
        "seeds": list(seeds),
        "configs": [{"name": n, "config": {"name": n, "alpha": alphas[n], "noise": 0.3}} for n in names],
        "report_dir": str(path.parent / "report"),
        "metric": "test_r2",  # what the toy tasks log
        **extra,
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_suite_resumes_after_a_crash(
    mlflow_server: str, ridge_task, experiment_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task_name, task = ridge_task
    suite_file = write_suite(tmp_path / "suite.yaml", task_name, experiment_name)

    task.fail_on = {"b"}
    with pytest.raises(SuiteRunError, match=r"run 3/6 \(b seed=0\) failed.*injected crash") as info:
        run_suite(suite_file, tracking_uri=mlflow_server, progress=False)
    assert "run the same command again" in str(info.value)
    assert task.calls == [("a", 0), ("a", 1), ("b", 0)]

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    exp_id = client.get_experiment_by_name(experiment_name).experiment_id
    runs = client.search_runs([exp_id])
    parent = [r for r in runs if r.data.tags.get(TAG_RUN_KIND) == RUN_KIND_SUITE]
    assert len(parent) == 1 and parent[0].info.status == "FAILED"
    parent_id = parent[0].info.run_id
    children = sorted(
        (r.data.tags[TAG_CONFIG_NAME], r.data.params["seed"], r.info.status)
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent_id
    )
    assert children == [("a", "0", "FINISHED"), ("a", "1", "FINISHED"), ("b", "0", "FAILED")]

    # fixed: the re-run executes only the missing runs, under the same parent run
    task.fail_on = set()
    task.calls.clear()
    result = run_suite(suite_file, tracking_uri=mlflow_server, progress=False)
    assert task.calls == [("b", 0), ("b", 1), ("c", 0), ("c", 1)]
    assert [(r.config, r.seed) for r in result.skipped] == [("a", 0), ("a", 1)]
    assert result.parent_run_id == parent_id
    assert client.get_run(parent_id).info.status == "FINISHED"
    finished = client.search_runs(
        [exp_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'FINISHED'",
    )
    kinds = sorted(r.data.tags.get(TAG_RUN_KIND, "train") for r in finished)
    assert kinds == ["summary"] + ["train"] * 6  # 6 runs + the comparison's summary run
    for r in finished:
        if TAG_CONFIG_HASH in r.data.tags:
            assert r.data.tags[TAG_DATA_FINGERPRINT] == "none"

    # the comparison ends the suite: 3 configs x 2 seeds, read back from MLflow
    table = result.report.table
    assert table["config"].to_list()[0] in {"a", "b", "c"} and table.height == 3
    assert table["n_runs"].to_list() == [2, 2, 2]
    assert table.columns[3:5] == ["config", "alpha"]  # the `name` param only repeats the label
    assert result.report.markdown_path.is_file()
    assert result.report.markdown_path.parent == tmp_path / "report"

    # a third run has nothing left to do: same parent, same summary run, nothing new logged
    task.calls.clear()
    again = run_suite(suite_file, tracking_uri=mlflow_server, progress=False)
    assert task.calls == [] and len(again.skipped) == 6
    assert again.parent_run_id == parent_id
    assert again.report.summary_run_id == result.report.summary_run_id
    assert len(client.search_runs([exp_id])) == 1 + 7 + 1  # parent, 6 + 1 failed children, summary


def test_data_fingerprint_triggers_rerun(local_store: str, ridge_task, tmp_path: Path) -> None:
    task_name, task = ridge_task
    data = tmp_path / "points.csv"
    data.write_text("x,y\n1,2\n")
    suite = write_suite(tmp_path / "s.yaml", task_name, "fp", names=("a",), seeds=(0,), data=[str(data)])
    run_suite(suite, progress=False, make_report=False)
    run_suite(suite, progress=False, make_report=False)
    assert task.calls == [("a", 0)]
    data.write_text("x,y\n1,3\n")  # same config, new data: not done yet
    run_suite(suite, progress=False, make_report=False)
    assert task.calls == [("a", 0), ("a", 0)]
    # fast runs never stand in for full ones
    run_suite(suite, progress=False, make_report=False, fast=True)
    assert len(task.calls) == 3


def test_unreachable_server_fails_before_any_run(ridge_task, tmp_path: Path) -> None:
    task_name, task = ridge_task
    suite = write_suite(tmp_path / "s.yaml", task_name, "dead")
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match="not reachable"):
        run_suite(suite, tracking_uri=f"http://127.0.0.1:{free_port()}", progress=False)
    assert time.monotonic() - t0 < 15.0
    assert task.calls == []


def test_bad_suites_name_the_problem(local_store: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseeds: [0, 0]\nconfigs: [missing.yaml]\ntask: t\n")
    with pytest.raises(ConfigError, match="duplicates"):
        load_suite(bad)
    bad.write_text("name: x\nseeds: [0]\nconfigs: [missing.yaml]\ntask: t\n")
    with pytest.raises(ConfigError, match="config file 'missing.yaml' not found"):
        load_suite(bad)
    bad.write_text("name: x\nseeds: [0]\nconfig: []\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['config'\]"):
        load_suite(bad)
    bad.write_text("name: x\nconfigs: [{name: a, config: {}}]\ntask: no_such_task\n")
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        run_suite(bad, progress=False)


def test_config_files_seed_key_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "experiments" / "m.yaml"
    cfg.parent.mkdir()
    cfg.write_text("name: m\ntrain: {epochs: 80, seed: 0}\n")
    suite = tmp_path / "experiments" / "suite.yaml"
    suite.write_text(
        "name: s\ntask: covisit\nseed_key: train.seed\nseeds: [3]\n"
        "configs:\n  - m.yaml\n  - {path: m.yaml, name: short, overrides: {train.epochs: 2}}\n"
    )
    s = load_suite(suite)  # m.yaml is found beside the suite file
    assert [e.name for e in s.entries] == ["m", "short"]
    assert s.entries[1].config == {"name": "m", "train": {"epochs": 2, "seed": 0}}
    assert s.experiment == "s" and s.seed_key == "train.seed"


def test_run_cli(
    local_store: str, ridge_task, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    task_name, task = ridge_task
    suite = write_suite(tmp_path / "s.yaml", task_name, "cli", names=("a", "c"), seeds=(0, 1))
    assert main(["run", str(suite), "--fast", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 ran, 0 skipped" in out and "± " in out
    assert main(["run", str(suite), "--fast", "--no-progress"]) == 0
    assert "0 ran, 4 skipped" in capsys.readouterr().out
    assert len(task.calls) == 4
    task.fail_on = {"c"}
    assert main(["run", str(suite), "--no-progress"]) == 2  # not --fast: new runs; c fails
    assert "injected crash" in capsys.readouterr().err


KILLED_SUITE_SCRIPT = """
import pathlib, sys, time
import mlflow
from geograph.experiments.registry import register_task
from geograph.experiments.suite import run_suite
from geograph.tracking import start_run

def sleepy(config, *, tracking_uri=None, fast=False):
    with start_run("x", params=config, tracking_uri=tracking_uri) as run:
        mlflow.log_metric("test_r2", config["alpha"])
        if config["name"] == "b":
            pathlib.Path(sys.argv[2]).write_text("b started")
            time.sleep(120)
    return {"run_id": run.info.run_id, "metrics": {"test_r2": config["alpha"]}}

register_task("sleepy", sleepy)
run_suite(sys.argv[1], progress=False)
"""


def test_suite_killed_mid_run_continues(local_store: str, tmp_path: Path) -> None:
    """SIGKILL the suite process while run 2/3 trains; the re-run finishes only what is missing."""
    suite = write_suite(tmp_path / "s.yaml", "sleepy", "killed", names=("a", "b", "c"), seeds=(0,))
    script = tmp_path / "suite_proc.py"
    script.write_text(KILLED_SUITE_SCRIPT)
    marker = tmp_path / "b.started"
    proc = subprocess.Popen([sys.executable, str(script), str(suite), str(marker)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, "suite process died early"
            assert time.monotonic() < deadline, "suite process never reached config b"
            time.sleep(0.2)
    finally:
        proc.kill()  # SIGKILL: no handler runs, runs stay RUNNING
        proc.wait(timeout=30)

    calls: list[tuple[str, int]] = []

    def recorder(config, *, tracking_uri=None, fast=False):
        calls.append((config["name"], config["seed"]))
        with start_run("x", params=config, tracking_uri=tracking_uri) as run:
            mlflow.log_metric("test_r2", config["alpha"])
        return {"run_id": run.info.run_id, "metrics": {"test_r2": config["alpha"]}}

    register_task("sleepy", recorder)
    try:
        result = run_suite(suite, progress=False)
    finally:
        unregister_task("sleepy")
    assert calls == [("b", 0), ("c", 0)]
    assert [r.config for r in result.skipped] == ["a"]
    client = mlflow.MlflowClient()
    exp_id = client.get_experiment_by_name("killed").experiment_id
    runs = client.search_runs([exp_id])
    parents = [r for r in runs if r.data.tags.get(TAG_RUN_KIND) == RUN_KIND_SUITE]
    assert len(parents) == 1 and parents[0].info.run_id == result.parent_run_id
    assert parents[0].info.status == "FINISHED"
    statuses = sorted(
        (r.data.tags[TAG_CONFIG_NAME], r.info.status)
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id and TAG_CONFIG_NAME in r.data.tags
    )
    assert statuses == [("a", "FINISHED"), ("b", "FINISHED"), ("b", "KILLED"), ("c", "FINISHED")]


def test_suite_running_in_a_live_process_is_refused(local_store: str, ridge_task, tmp_path: Path) -> None:
    task_name, _ = ridge_task
    suite = write_suite(tmp_path / "s.yaml", task_name, "busy", names=("a",), seeds=(0,))
    result = run_suite(suite, progress=False, make_report=False)
    client = mlflow.MlflowClient()
    client.update_run(result.parent_run_id, status="RUNNING")  # as if this process were running it
    with pytest.raises(SuiteRunError, match="already running"):
        run_suite(suite, progress=False, make_report=False)


def test_task_fingerprint_kept_when_configs_name_no_data(local_store: str, tmp_path: Path) -> None:
    calls = []

    def fingerprinting(config, *, tracking_uri=None, fast=False):
        calls.append(config["name"])
        with start_run("x", params=config, tags={TAG_DATA_FINGERPRINT: "world-abc"}) as run:
            mlflow.log_metric("test_r2", 0.5)
        return {"run_id": run.info.run_id, "metrics": {"test_r2": 0.5}}

    register_task("fingerprinting", fingerprinting)
    try:
        suite = write_suite(tmp_path / "s.yaml", "fingerprinting", "own-fp", names=("a",), seeds=(0,))
        first = run_suite(suite, progress=False, make_report=False)
        run_suite(suite, progress=False, make_report=False)
    finally:
        unregister_task("fingerprinting")
    assert calls == ["a"]  # the config hash alone decides: skipped the second time
    tags = mlflow.get_run(first.records[0].run_id).data.tags
    assert tags[TAG_DATA_FINGERPRINT] == "world-abc" and tags[TAG_CONFIG_NAME] == "a"


def test_covisit_suite_with_an_unknown_metric_fails_before_any_run(tmp_path: Path) -> None:
    suite = tmp_path / "covisit_suite.yaml"
    suite.write_text("name: x\ntask: covisit\nmetric: test_observed_r2\nconfigs: [{name: a, config: {}}]\n")
    with pytest.raises(
        ConfigError, match=r"'metric' 'test_observed_r2' .*did you mean 'test_observed_r2_log1p'"
    ) as info:
        load_suite(suite)
    assert str(suite) in str(info.value)
    suite.write_text(
        "name: x\ntask: covisit\nmetric: best_val_observed_r2_log1p\nconfigs: [{name: a, config: {}}]\n"
    )
    assert load_suite(suite).metric == "best_val_observed_r2_log1p"
    # other tasks log other metrics: not checked here
    suite.write_text("name: x\ntask: toy\nmetric: test_observed_r2\nconfigs: [{name: a, config: {}}]\n")
    assert load_suite(suite).metric == "test_observed_r2"
