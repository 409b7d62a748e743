"""The runs of a suite in the tracking store: run hashes, data fingerprints, finished runs, the parent run.

A run whose config hash and data fingerprint match a FINISHED run of the experiment is
skipped (see :mod:`geograph.experiments.suite`); the suite's parent run is reused across
re-runs, and runs a killed process left RUNNING are marked KILLED.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from geograph.errors import GeographError
from geograph.experiments.loading import search_finished
from geograph.experiments.suite_file import Suite, SuiteEntry
from geograph.tracking.tags import (
    NO_DATA,
    RUN_KIND_SUITE,
    TAG_CONFIG_HASH,
    TAG_DATA_FINGERPRINT,
    TAG_FAST,
    TAG_RUN_KIND,
    TAG_SUITE,
    TAG_SUITE_HASH,
    config_hash,
    data_fingerprint,
    data_paths_in,
    default_tags,
)

PARENT_TAG = "mlflow.parentRunId"
TAG_SUITE_OWNER = "geograph.suite_owner"  # "host:pid" of the process running the suite


class SuiteRunError(GeographError):
    """A run of a suite failed; the runs before it are kept and a re-run continues."""


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
