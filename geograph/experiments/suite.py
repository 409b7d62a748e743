"""Experiment suites: run a set of configs over a set of seeds, resumably, then compare them.

A suite is a YAML file naming configs and seeds (its keys, parsing and checks:
:mod:`geograph.experiments.suite_file`); :func:`run_suite` runs every (config, seed) of it.

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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geograph.experiments.compare import ComparisonReport, default_report_dir, report
from geograph.experiments.registry import get_task
from geograph.experiments.suite_file import ENTRY_KEYS as ENTRY_KEYS
from geograph.experiments.suite_file import SUITE_KEYS as SUITE_KEYS
from geograph.experiments.suite_file import Suite, SuiteEntry, load_suite, parse_suite, run_config, set_dotted
from geograph.experiments.suite_runs import (
    PARENT_TAG,
    SuiteRunError,
    _fingerprint,
    _finished_runs,
    _match,
    _parent_run,
    _suite_hash,
    run_hash,
)
from geograph.experiments.suite_runs import TAG_SUITE_OWNER as TAG_SUITE_OWNER
from geograph.tracking.store import configure, ensure_experiment, run_context
from geograph.tracking.tags import (
    NO_DATA,
    RUN_KIND_SUMMARY,
    TAG_COMPARED_RUNS,
    TAG_CONFIG_HASH,
    TAG_CONFIG_NAME,
    TAG_DATA_FINGERPRINT,
    TAG_FAST,
    TAG_RUN_KIND,
    TAG_SUITE,
    TAG_TASK,
    config_hash,
)

RAN = "ran"
SKIPPED = "skipped"
FAILED = "failed"


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
