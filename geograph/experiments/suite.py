"""Experiment suites: run a set of configs over a set of seeds, resumably, then compare them.

A suite is a YAML file::

    name: covisit_suite            # parent run name; also names the report folder
    experiment: covisit            # MLflow experiment every run of the suite goes to
    task: covisit                  # default task (geograph.experiments.registry) for every config
    metric: test_r2                # ranking metric of the final comparison (default test_r2)
    seeds: [0, 1, 2]               # every config runs once per seed
    configs:                       # a path, or a mapping with path / config, name, task, overrides
      - experiments/covisit_naics_sage.yaml
      - path: experiments/covisit_gbt.yaml
        name: gbt                  # label in the comparison (default: the config's name, else the file stem)
        overrides: {train.epochs: 5}   # dotted keys set on the loaded config
      - name: inline_example
        config: {model: {name: mlp}}   # a config written inline
    # optional
    seed_key: seed                 # dotted key the seed is written to in each config (default seed)
    higher_is_better: null         # ranking direction (default: from the metric name)
    data: [data/world]             # files / folders to fingerprint (default: every existing path
                                   #   named in a config, except under output-like keys)
    report_dir: mlruns/reports/covisit_suite   # default mlruns/reports/<name>

Relative config paths are looked up from the working directory, then beside the suite file.

Each (config, seed) run is tagged ``geograph.config_hash`` (hash of the task name, the config
with its seed, and the fast flag) and ``geograph.data_fingerprint`` (content hash of the data
files the config names). A run whose hash and fingerprint match a FINISHED run of the
experiment is skipped; when the configs name no data file (the world is generated from the
config, which the hash covers) the hash alone decides and the task's own fingerprint tag is
kept. So re-running a suite after a
crash (or Ctrl-C, or a kill) runs only what is missing; the suite's parent run is reused, so
all its runs stay nested under one parent, and runs a killed process left RUNNING are marked
KILLED. Starting a suite that is still running in a live process on this host is refused.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geograph.errors import ConfigError, GeographError
from geograph.experiments.compare import ComparisonReport, default_report_dir, report
from geograph.experiments.loading import search_finished
from geograph.experiments.registry import get_task
from geograph.tracking.store import configure, ensure_experiment, run_context
from geograph.tracking.tags import (
    NO_DATA,
    RUN_KIND_SUITE,
    RUN_KIND_SUMMARY,
    TAG_COMPARED_RUNS,
    TAG_CONFIG_HASH,
    TAG_CONFIG_NAME,
    TAG_DATA_FINGERPRINT,
    TAG_FAST,
    TAG_RUN_KIND,
    TAG_SUITE,
    TAG_SUITE_HASH,
    TAG_TASK,
    config_hash,
    data_fingerprint,
    data_paths_in,
    default_tags,
)

SUITE_KEYS = {
    "name",
    "experiment",
    "task",
    "metric",
    "seeds",
    "configs",
    "seed_key",
    "higher_is_better",
    "data",
    "report_dir",
}
ENTRY_KEYS = {"path", "config", "name", "task", "overrides"}
PARENT_TAG = "mlflow.parentRunId"
TAG_SUITE_OWNER = "geograph.suite_owner"  # "host:pid" of the process running the suite

RAN = "ran"
SKIPPED = "skipped"
FAILED = "failed"


class SuiteRunError(GeographError):
    """A run of a suite failed; the runs before it are kept and a re-run continues."""


@dataclass(frozen=True)
class SuiteEntry:
    """One config of a suite.

    Attributes:
        name: Label (the ``geograph.config_name`` tag, the row name in the comparison).
        task: Task registry name.
        config: The loaded config with overrides applied, without the seed.
        path: The config file, None for an inline config.
    """

    name: str
    task: str
    config: dict[str, Any]
    path: Path | None = None


@dataclass(frozen=True)
class Suite:
    """A parsed suite file (see the module docstring for the YAML keys)."""

    name: str
    experiment: str
    entries: tuple[SuiteEntry, ...]
    seeds: tuple[int, ...]
    metric: str = "test_r2"
    seed_key: str = "seed"
    higher_is_better: bool | None = None
    data: tuple[Path, ...] | None = None
    report_dir: Path | None = None
    path: Path | None = None


@dataclass
class SuiteRecord:
    """What happened to one (config, seed) run."""

    config: str
    seed: int
    status: str
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SuiteResult:
    """The outcome of :func:`run_suite`."""

    suite: Suite
    parent_run_id: str
    records: list[SuiteRecord]
    report: ComparisonReport | None

    @property
    def executed(self) -> list[SuiteRecord]:
        return [r for r in self.records if r.status == RAN]

    @property
    def skipped(self) -> list[SuiteRecord]:
        return [r for r in self.records if r.status == SKIPPED]

    @property
    def failed(self) -> list[SuiteRecord]:
        return [r for r in self.records if r.status == FAILED]


# --- loading ---------------------------------------------------------------------------------


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``key="a.b"``, creating mappings on the way."""
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _find(path_str: str, base: Path | None, what: str) -> Path:
    p = Path(path_str)
    candidates = [p] if p.is_absolute() else [p, *([base / p] if base is not None else [])]
    for c in candidates:
        if c.exists():
            return c
    where = " and ".join(str(c) for c in candidates)
    raise ConfigError(f"{what} {path_str!r} not found (looked at {where})")


def parse_suite(raw: Mapping[str, Any], path: Path | None = None) -> Suite:
    """Build a :class:`Suite` from its YAML mapping.

    Raises:
        ConfigError: a key is unknown, missing or of the wrong type; a config file is missing.
    """
    src = str(path) if path is not None else "suite"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{src}: a suite must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {unknown}; expected some of {sorted(SUITE_KEYS)}")
    name = raw.get("name") or (path.stem if path is not None else None)
    if not name or not isinstance(name, str):
        raise ConfigError(f"{src}: 'name' must be a non-empty string")
    experiment = raw.get("experiment") or name
    if not isinstance(experiment, str):
        raise ConfigError(f"{src}: 'experiment' must be a string, got {experiment!r}")
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{src}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{src}: 'seeds' has duplicates: {seeds}")
    configs = raw.get("configs")
    if not isinstance(configs, list) or not configs:
        raise ConfigError(f"{src}: 'configs' must be a non-empty list of config paths or mappings")
    default_task = raw.get("task")
    base = path.parent if path is not None else None

    entries: list[SuiteEntry] = []
    for i, item in enumerate(configs):
        where = f"{src}: configs[{i}]"
        spec: Mapping[str, Any] = {"path": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a path or a mapping, got {type(item).__name__}")
        bad = sorted(set(spec) - ENTRY_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {bad}; expected some of {sorted(ENTRY_KEYS)}")
        if ("path" in spec) == ("config" in spec):
            raise ConfigError(f"{where}: give exactly one of 'path' or 'config'")
        cfg_path: Path | None = None
        if "path" in spec:
            cfg_path = _find(str(spec["path"]), base, f"{where}: config file")
            cfg = _read_yaml(cfg_path)
            label = (
                spec.get("name") or (cfg.get("name") if isinstance(cfg, Mapping) else None) or cfg_path.stem
            )
        else:
            cfg = spec["config"]
            label = spec.get("name")
            if not label:
                raise ConfigError(f"{where}: an inline config needs a 'name'")
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"{where}: the config must be a mapping, got {type(cfg).__name__}")
        cfg = copy.deepcopy(dict(cfg))
        overrides = spec.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{where}: 'overrides' must be a mapping of dotted keys to values")
        for k, v in overrides.items():
            set_dotted(cfg, str(k), v)
        task = spec.get("task") or default_task or cfg.get("task")
        if not task or not isinstance(task, str):
            raise ConfigError(f"{where}: no task; set 'task' in the suite, the entry or the config")
        if any(e.name == label for e in entries):
            raise ConfigError(f"{where}: duplicate config name {label!r}; give each entry a distinct 'name'")
        entries.append(SuiteEntry(name=str(label), task=task, config=cfg, path=cfg_path))

    data = raw.get("data")
    data_paths: tuple[Path, ...] | None = None
    if data is not None:
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list):
            raise ConfigError(f"{src}: 'data' must be a list of paths, got {data!r}")
        data_paths = tuple(_find(str(d), base, f"{src}: data path") for d in data)
    hib = raw.get("higher_is_better")
    if hib is not None and not isinstance(hib, bool):
        raise ConfigError(f"{src}: 'higher_is_better' must be true, false or null, got {hib!r}")
    metric = raw.get("metric", "test_r2")
    seed_key = raw.get("seed_key", "seed")
    if not isinstance(metric, str) or not isinstance(seed_key, str):
        raise ConfigError(f"{src}: 'metric' and 'seed_key' must be strings")
    report_dir = raw.get("report_dir")
    return Suite(
        name=name,
        experiment=experiment,
        entries=tuple(entries),
        seeds=tuple(seeds),
        metric=metric,
        seed_key=seed_key,
        higher_is_better=hib,
        data=data_paths,
        report_dir=Path(report_dir) if report_dir else None,
        path=path,
    )


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file {p} not found")
    return parse_suite(_read_yaml(p), p)


# --- running ---------------------------------------------------------------------------------


def run_config(entry: SuiteEntry, seed: int, seed_key: str) -> dict[str, Any]:
    """The config one run of ``entry`` gets: a copy with the seed written at ``seed_key``."""
    cfg = copy.deepcopy(entry.config)
    set_dotted(cfg, seed_key, seed)
    return cfg


def run_hash(entry: SuiteEntry, cfg: Mapping[str, Any], fast: bool) -> str:
    """The ``geograph.config_hash`` of one run: task name, full config (seed included), fast flag."""
    return config_hash({"task": entry.task, "config": cfg, "fast": bool(fast)})


def _suite_hash(suite: Suite, fast: bool) -> str:
    return config_hash(
        {
            "name": suite.name,
            "experiment": suite.experiment,
            "entries": [[e.name, e.task, config_hash(e.config)] for e in suite.entries],
            "seeds": list(suite.seeds),
            "fast": bool(fast),
        }
    )


def _fingerprint(suite: Suite, entry: SuiteEntry, memo: dict[tuple[str, ...], str]) -> str:
    exclude = [p for p in (suite.path, entry.path) if p is not None]
    paths = list(suite.data) if suite.data is not None else data_paths_in(entry.config, exclude=exclude)
    key = tuple(str(p.resolve()) for p in paths)
    if key not in memo:
        memo[key] = data_fingerprint(*paths)
    return memo[key]


def _finished_runs(client: Any, experiment_id: str) -> dict[str, list[Any]]:
    """FINISHED runs of the experiment by config hash, latest first."""
    done: dict[str, list[Any]] = {}
    for r in reversed(search_finished(client, experiment_id)):  # oldest first -> latest first
        if TAG_CONFIG_HASH in r.data.tags:
            done.setdefault(r.data.tags[TAG_CONFIG_HASH], []).append(r)
    return done


def _match(done: Mapping[str, list[Any]], config_hash_: str, fingerprint: str) -> Any:
    """The latest finished run with this config hash and data fingerprint.

    A suite whose configs name no data file (fingerprint :data:`NO_DATA`: the data is
    generated from the config, so the config hash pins it) matches on the config hash alone,
    and the task's own ``geograph.data_fingerprint`` tag is left as it wrote it.
    """
    for r in done.get(config_hash_, []):
        if fingerprint == NO_DATA or r.data.tags.get(TAG_DATA_FINGERPRINT) == fingerprint:
            return r
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parent_run(
    client: Any, experiment_id: str, suite: Suite, suite_hash: str, fast: bool
) -> tuple[str, bool]:
    """Reuse the latest parent run of this suite (same suite hash), or create one. Returns (id, reused).

    One parent per suite definition keeps every run of the suite, across crashes and re-runs,
    nested in one place in the UI.
    """
    previous = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_SUITE_HASH}` = '{suite_hash}' and tags.`{TAG_RUN_KIND}` = '{RUN_KIND_SUITE}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    owner = f"{socket.gethostname()}:{os.getpid()}"
    if previous:
        prev = previous[0]
        run_id = prev.info.run_id
        if prev.info.status == "RUNNING":
            host, _, pid = prev.data.tags.get(TAG_SUITE_OWNER, "").partition(":")
            if host == socket.gethostname() and pid.isdigit() and _alive(int(pid)):
                raise SuiteRunError(
                    f"suite {suite.name} is already running (process {pid}, parent run {run_id}); "
                    "wait for it or stop it first"
                )
        # runs left RUNNING by a killed suite process will never finish: mark them KILLED
        stale = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{run_id}' and attributes.status = 'RUNNING'",
        )
        for r in stale:
            client.set_terminated(r.info.run_id, status="KILLED")
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, TAG_SUITE_OWNER, owner)
        return run_id, True
    tags = {
        **default_tags(),
        TAG_RUN_KIND: RUN_KIND_SUITE,
        TAG_SUITE: suite.name,
        TAG_SUITE_HASH: suite_hash,
        TAG_SUITE_OWNER: owner,
        TAG_FAST: str(bool(fast)).lower(),
    }
    run = client.create_run(experiment_id, run_name=suite.name, tags=tags)
    run_id = run.info.run_id
    client.log_param(run_id, "configs", ",".join(e.name for e in suite.entries))
    client.log_param(run_id, "seeds", ",".join(str(s) for s in suite.seeds))
    client.log_param(run_id, "metric", suite.metric)
    client.log_param(run_id, "fast", str(bool(fast)))
    if suite.path is not None:
        client.log_artifact(run_id, str(suite.path))
    return run_id, False


def _progress(enabled: bool, console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )


def run_suite(
    suite: Suite | str | Path,
    *,
    tracking_uri: str | None = None,
    fast: bool = False,
    progress: bool = True,
    keep_going: bool = False,
    make_report: bool = True,
    console: Any = None,
) -> SuiteResult:
    """Run every (config, seed) of ``suite`` that is not already done, then compare them.

    The tracking store is probed and every task is resolved before anything trains. Each run
    is nested under the suite's parent run and routed into the suite's experiment.

    Args:
        suite: A :class:`Suite` or the path of a suite YAML file.
        tracking_uri: Tracking store (default: :func:`geograph.tracking.resolve_tracking_uri`).
        fast: Passed to every task (tiny epochs / data, for tests and smoke runs); part of the
            config hash, so fast runs never stand in for full ones.
        progress: Show a rich progress bar.
        keep_going: After a failed run, go on with the others (default: stop at the first).
        make_report: Finish with :func:`geograph.experiments.compare.report` over the suite's runs.
        console: rich Console for the progress bar and messages.

    Raises:
        SuiteRunError: a run failed (after marking it and the parent run FAILED).
        TrackingError: the tracking store cannot be reached.
        ConfigError: the suite or a task name is invalid.
    """
    import mlflow
    from rich.console import Console
    from rich.markup import escape

    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    console = console or Console(stderr=True)
    uri = configure(tracking_uri)  # fail fast: before any task is imported or trained
    tasks = {e.task: get_task(e.task) for e in suite.entries}
    exp_id = ensure_experiment(suite.experiment, uri)
    client = mlflow.MlflowClient(tracking_uri=uri)

    memo: dict[tuple[str, ...], str] = {}
    plan = []
    for entry in suite.entries:
        fp = _fingerprint(suite, entry, memo)
        for seed in suite.seeds:
            cfg = run_config(entry, seed, suite.seed_key)
            plan.append((entry, seed, cfg, run_hash(entry, cfg, fast), fp))

    suite_hash = _suite_hash(suite, fast)
    done = _finished_runs(client, exp_id)
    parent_id, resumed = _parent_run(client, exp_id, suite, suite_hash, fast)
    n_done = sum(_match(done, h, fp) is not None for _, _, _, h, fp in plan)
    console.print(
        f"suite {suite.name}: {len(plan)} runs ({len(suite.entries)} configs x {len(suite.seeds)} seeds), "
        f"{n_done} already finished; experiment {suite.experiment!r}, store {uri}"
        + (f"; reusing parent run {parent_id}" if resumed else f"; new parent run {parent_id}"),
        markup=False,
    )

    records: list[SuiteRecord] = []
    status = "FAILED"
    try:
        with _progress(progress, console) as bar:
            job = bar.add_task(suite.name, total=len(plan))
            for k, (entry, seed, cfg, h, fp) in enumerate(plan, start=1):
                label = f"{entry.name} seed={seed}"
                prev = _match(done, h, fp)
                if prev is not None:
                    records.append(
                        SuiteRecord(entry.name, seed, SKIPPED, prev.info.run_id, dict(prev.data.metrics))
                    )
                    bar.console.print(
                        f"  [{k}/{len(plan)}] {label}: skipped (finished run {prev.info.run_id})",
                        markup=False,
                    )
                    bar.advance(job)
                    continue
                bar.update(job, description=f"{suite.name}: {label}")
                tags = {
                    TAG_CONFIG_HASH: h,
                    **({TAG_DATA_FINGERPRINT: fp} if fp != NO_DATA else {}),
                    TAG_CONFIG_NAME: entry.name,
                    TAG_SUITE: suite.name,
                    TAG_TASK: entry.task,
                    TAG_FAST: str(bool(fast)).lower(),
                }
                t0 = time.perf_counter()
                try:
                    with run_context(experiment=suite.experiment, parent_run_id=parent_id, tags=tags):
                        out = tasks[entry.task](copy.deepcopy(cfg), tracking_uri=uri, fast=fast)
                    if not isinstance(out, Mapping) or not out.get("run_id"):
                        raise TypeError(
                            f"task {entry.task!r} must return a dict with 'run_id' and 'metrics', got {out!r}"
                        )
                except Exception as exc:  # noqa: BLE001 - any task failure stops (or is recorded)
                    secs = time.perf_counter() - t0
                    records.append(SuiteRecord(entry.name, seed, FAILED, seconds=secs, error=f"{exc}"))
                    msg = (
                        f"suite {suite.name}: run {k}/{len(plan)} ({label}) failed after {secs:.1f} s: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    bar.console.print(
                        f"  \\[{k}/{len(plan)}] {escape(label)}: [red]FAILED[/red] {escape(type(exc).__name__)}: "
                        + escape(str(exc))
                    )
                    if not keep_going:
                        raise SuiteRunError(
                            msg
                            + ". Finished runs are kept; run the same command again to continue from here."
                        ) from exc
                    bar.advance(job)
                    continue
                run_id = str(out["run_id"])
                # a task that opened its run without geograph.tracking.start_run still gets found next time
                logged = client.get_run(run_id).data.tags
                fill = {TAG_DATA_FINGERPRINT: fp} if TAG_DATA_FINGERPRINT not in logged else {}
                for key, value in {**tags, **fill, PARENT_TAG: parent_id}.items():
                    if logged.get(key) != value:
                        client.set_tag(run_id, key, value)
                secs = time.perf_counter() - t0
                metrics = {
                    str(m): float(v)
                    for m, v in dict(out.get("metrics") or {}).items()
                    if isinstance(v, (int, float))
                }
                records.append(SuiteRecord(entry.name, seed, RAN, run_id, metrics, secs))
                shown = f"{suite.metric}={metrics[suite.metric]:.4f}" if suite.metric in metrics else ""
                bar.console.print(
                    f"  [{k}/{len(plan)}] {label}: done in {secs:.1f} s {shown} (run {run_id})", markup=False
                )
                bar.advance(job)
        status = "FAILED" if any(r.status == FAILED for r in records) else "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent_id, status=status)

    comparison = None
    compared = sorted(r.run_id for r in records if r.run_id)
    if make_report and compared:
        runs_hash = config_hash(compared)
        # a re-run that trained nothing reuses the summary run that compared the same runs
        previous = client.search_runs(
            [exp_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{TAG_COMPARED_RUNS}` = '{runs_hash}' "
            f"and tags.`{TAG_RUN_KIND}` = '{RUN_KIND_SUMMARY}' and attributes.status = 'FINISHED'",
            max_results=1,
        )
        comparison = report(
            suite.experiment,
            suite.metric,
            tracking_uri=uri,
            out_dir=suite.report_dir or default_report_dir(suite.name),
            higher_is_better=suite.higher_is_better,
            run_ids=compared,
            log_summary=not previous,
            parent_run_id=parent_id,
            seed_keys=(suite.seed_key.rsplit(".", 1)[-1],),
            summary_tags={TAG_COMPARED_RUNS: runs_hash, TAG_SUITE: suite.name},
        )
        if previous:
            comparison.summary_run_id = previous[0].info.run_id
    failed = [r for r in records if r.status == FAILED]
    if failed:
        raise SuiteRunError(
            f"suite {suite.name}: {len(failed)} of {len(plan)} runs failed "
            f"({', '.join(f'{r.config} seed={r.seed}' for r in failed)}); run the same command again to retry them"
        )
    return SuiteResult(suite=suite, parent_run_id=parent_id, records=records, report=comparison)


__all__ = [
    "Suite",
    "SuiteEntry",
    "SuiteRecord",
    "SuiteResult",
    "SuiteRunError",
    "load_suite",
    "parse_suite",
    "run_config",
    "run_hash",
    "run_suite",
    "set_dotted",
]
