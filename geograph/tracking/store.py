"""Where runs go: the tracking URI and a run context that marks crashes FAILED.

Resolution order for the tracking URI: explicit argument, ``MLFLOW_TRACKING_URI``, then the
local default ``sqlite:///mlruns/mlflow.db`` (MLflow 3 recommends a database store for local
use and refuses a plain ``./mlruns`` file store). Artifacts of the default store go under
``mlruns/artifacts``. A relative SQLite path is made absolute against the working directory
when resolved, so a later ``chdir`` cannot split one store in two.

An ``http(s)://`` store is probed once with MLflow's HTTP retries turned down
(:data:`PROBE_ENV`), so a dead server fails in seconds, before any training starts.

Every run opened by :func:`start_run` carries :func:`geograph.tracking.tags.default_tags`; a
suite wraps its tasks in :func:`run_context` to put their runs into its experiment, under its
parent run, with its config-hash and data-fingerprint tags.

A run also records the process that opened it (``geograph.owner``: host, PID and the process's
start time). A process killed with SIGKILL (or by the OOM killer) cannot close its run, which
MLflow would then show RUNNING forever: :func:`mark_stale_runs` marks such a run KILLED once its
owner process on this host is gone, and :func:`start_run` calls it for its experiment, so the
next run (e.g. the ``--resume`` of the killed training) closes the old one.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geograph.constants import DEFAULT_TRACKING_URI
from geograph.errors import TrackingError

# MLflow's HTTP client settings used while probing a tracking server: no retries, a short
# timeout. The defaults (7 retries with exponential backoff, 120 s timeout) make a dead
# server look like a hang of several minutes.
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

_SQLITE_PREFIX = "sqlite:///"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """Return the tracking URI to use (argument > ``MLFLOW_TRACKING_URI`` > local SQLite default).

    A SQLite URI with a relative path is made absolute (against the working directory) and its
    folder is created.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith(_SQLITE_PREFIX):
        db = Path(uri.removeprefix(_SQLITE_PREFIX))
        if db.as_posix() != ":memory:":
            db = db.absolute()
            db.parent.mkdir(parents=True, exist_ok=True)
            uri = _SQLITE_PREFIX + db.as_posix()
    return uri


@contextlib.contextmanager
def _env(overrides: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused: nothing listens there"),
        ("timed out", "the connection timed out"),
        ("Read timed out", "the server did not answer in time"),
        ("Name or service not known", "the host name does not resolve"),
        ("nodename nor servname", "the host name does not resolve"),
        ("unable to open database file", "the database file cannot be opened"),
    ):
        if needle in text:
            return reason
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


@contextlib.contextmanager
def _sqlite_init_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` while MLflow opens (and, the first time, creates
    and migrates) a SQLite store: two processes creating one new store at once otherwise race
    in the schema migration ("duplicate column name") and one of them fails."""
    if not uri.startswith(_SQLITE_PREFIX) or uri.endswith(":memory:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(uri.removeprefix(_SQLITE_PREFIX) + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the resolved tracking URI and check it answers; returns the URI.

    A remote (``http(s)://``) store is probed with :data:`PROBE_ENV` in force, so an
    unreachable server fails within seconds.

    Raises:
        TrackingError: the store cannot be reached (raised before any training starts).
    """
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    remote = uri.startswith(("http://", "https://"))
    try:
        with _env(PROBE_ENV) if remote else _sqlite_init_lock(uri):
            mlflow.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure here means "unreachable"
        hint = (
            "start it (e.g. `geograph ui --port PORT` serves the local store) or point "
            "--tracking-uri / MLFLOW_TRACKING_URI at a running server"
            if remote
            else "check the path and its permissions"
        )
        raise TrackingError(
            f"MLflow tracking store {uri} is not reachable ({_reason(exc)}); {hint}. Nothing was trained."
        ) from None
    return uri


@dataclass(frozen=True)
class RunContext:
    """Defaults that :func:`start_run` applies to top-level runs opened inside :func:`run_context`.

    Attributes:
        experiment: Experiment every run goes to (overrides the task's own choice).
        parent_run_id: Runs are nested under this run.
        tags: Tags added to every run (they win over the task's tags).
    """

    experiment: str | None = None
    parent_run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


_RUN_CONTEXT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "geograph_run_context", default=None
)


@contextlib.contextmanager
def run_context(
    experiment: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[RunContext]:
    """Route the runs opened inside (by any task) into ``experiment`` under ``parent_run_id``.

    Only runs opened while no MLflow run is active get these defaults, so a task's own
    nested runs stay nested under the task's run.
    """
    ctx = RunContext(experiment=experiment, parent_run_id=parent_run_id, tags=dict(tags or {}))
    token = _RUN_CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _RUN_CONTEXT.reset(token)


def current_run_context() -> RunContext | None:
    """The :class:`RunContext` in force, if any."""
    return _RUN_CONTEXT.get()


def ensure_experiment(name: str, tracking_uri: str | None = None) -> str:
    """Create the experiment if needed (artifacts under ``mlruns/artifacts`` for the default store)."""
    import mlflow

    uri = configure(tracking_uri)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # keep artifacts beside the database (mlruns/artifacts for the default store)
        artifact_location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # noqa: BLE001 - a concurrent process created it first
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


TAG_OWNER = "geograph.owner"  # "host:pid:start" of the process that opened the run
TAG_END_REASON = "geograph.end_reason"  # why geograph, not the run's process, ended it


def _process_start(pid: int) -> str:
    """Start time of process ``pid`` (clock ticks since boot, from /proc), or "" where unknown.

    Told apart from the PID alone, a PID that the system gave to a new process after the
    run's owner died does not keep the run open.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22 (starttime); the name may hold spaces


def owner_tag() -> str:
    """The ``geograph.owner`` value of this process: ``host:pid:start``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process named by a ``geograph.owner`` tag still runs; None when it cannot
    be told (another host, or a malformed tag)."""
    host, _, rest = tag.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    return not start or _process_start(int(pid)) in ("", start)


def mark_stale_runs(experiment_ids: list[str], tracking_uri: str | None = None) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment_ids`` whose owner process on this host is
    gone (SIGKILLed, or lost to the OOM killer), with a ``geograph.end_reason`` tag.

    Runs of other hosts, and runs without a ``geograph.owner`` tag, are left alone.

    Returns:
        The ids of the runs marked KILLED.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    killed = []
    for run in client.search_runs(
        experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=5000
    ):
        tag = run.data.tags.get(TAG_OWNER)
        if tag is None or owner_alive(tag) is not False:
            continue
        pid = tag.split(":")[1]
        client.set_tag(
            run.info.run_id, TAG_END_REASON, f"process {pid} that ran it ended without closing it (killed)"
        )
        client.set_terminated(run.info.run_id, status="KILLED")
        killed.append(run.info.run_id)
    return killed


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Open an MLflow run; a crash inside marks it FAILED (Ctrl-C: KILLED) and re-raises.

    The run is tagged with :func:`geograph.tracking.tags.default_tags` (git commit, device,
    package versions), then ``tags``, then the tags of an enclosing :func:`run_context`.

    Args:
        experiment: Experiment name (created if missing; a :func:`run_context` may override it).
        run_name: Optional run name.
        params: Config to log (nested mappings are flattened with dots).
        tags: Extra run tags.
        tracking_uri: Override the tracking URI.
        nested: Open as a child of the active run.

    Raises:
        TrackingError: the tracking store cannot be reached (before the run starts).
    """
    import mlflow

    from geograph.tracking.tags import default_tags

    ctx = _RUN_CONTEXT.get()
    top_level = mlflow.active_run() is None
    if ctx is not None and not top_level:
        ctx = None
    if ctx is not None and ctx.experiment:
        experiment = ctx.experiment
    all_tags = {
        **default_tags(),
        TAG_OWNER: owner_tag(),
        **dict(tags or {}),
        **(dict(ctx.tags) if ctx is not None else {}),
    }
    exp_id = ensure_experiment(experiment, tracking_uri)
    if top_level:
        mark_stale_runs([exp_id], mlflow.get_tracking_uri())  # runs of killed processes stay RUNNING
    run = mlflow.start_run(
        experiment_id=exp_id,
        run_name=run_name,
        nested=nested,
        parent_run_id=ctx.parent_run_id if ctx is not None else None,
        tags=all_tags,
    )
    with _ending_run():
        if params:
            flat = {k: str(v)[:6000] for k, v in _flatten(params).items()}
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))
        yield run


@contextlib.contextmanager
def _ending_run() -> Iterator[None]:
    """End the active run FINISHED, or KILLED on Ctrl-C, FAILED on any other error (re-raised)."""
    import mlflow

    try:
        yield
    except KeyboardInterrupt:
        _tag_threads()
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        _tag_threads()
        mlflow.end_run(status="FAILED")
        raise
    else:
        _tag_threads()
        mlflow.end_run(status="FINISHED")


def _tag_threads() -> None:
    """Tag the torch thread count the run ended with (training may have set it after the start)."""
    import mlflow

    from geograph.tracking.tags import thread_tags

    tags = thread_tags()
    if tags:
        with contextlib.suppress(Exception):  # a tag must not hide the run's own outcome
            mlflow.set_tags(tags)


RUN_ID_LENGTH = 32  # hex digits of an MLflow run id
LATEST = "latest"
"""The run id that names the most recently started finished training run (see resolve_run_id)."""
TAG_TRAINING_KEY = "geograph.training_key"
"""Tag on every training run (its value keys the run's config); what ``latest`` looks for."""
SHORT_RUN_ID = 8  # digits of the shortest prefix geograph prints


def _store_runs(client: Any) -> list[tuple[str, str]]:
    """``(run id, run name)`` of every active run in every active experiment of the store."""
    ids = [e.experiment_id for e in client.search_experiments(max_results=50000)]
    out: list[tuple[str, str]] = []
    token = None
    while ids:
        page = client.search_runs(ids, max_results=50000, page_token=token)
        out.extend((r.info.run_id, r.info.run_name or "") for r in page)
        token = page.token
        if not token:
            break
    return out


def resolve_run_id(run_id: str, tracking_uri: str | None = None) -> str:
    """The full MLflow run id of ``run_id`` or of a unique prefix of one (like git).

    Every command that takes a run id (``--run-id``, ``--resume``, ``runs:/ID/...`` model URIs)
    goes through here, so a prefix that :func:`unique_prefixes` printed works everywhere.
    Case and surrounding blanks are ignored.

    Args:
        run_id: A full 32-digit id, a prefix of one (at least one hex digit), or ``latest``:
            the most recently started training run that finished (see
            :func:`latest_training_run`).
        tracking_uri: The store to search (default: the configured one).

    Raises:
        TrackingError: not hexadecimal (nor ``latest``); no run in the store has that id / prefix (the message
            names the store); or more than one run starts with it (the message lists them).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    text = str(run_id).strip().lower()
    if text == LATEST:
        return latest_training_run(tracking_uri)
    if not text or len(text) > RUN_ID_LENGTH or not all(c in "0123456789abcdef" for c in text):
        raise TrackingError(
            f"run id must be up to {RUN_ID_LENGTH} hexadecimal digits (a full id or a unique prefix), got {run_id!r}"
        )
    client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    if len(text) == RUN_ID_LENGTH:
        try:
            return client.get_run(text).info.run_id
        except MlflowException as exc:
            raise TrackingError(f"run {text!r} not found in {client.tracking_uri}: no MLflow run has that id") from exc
    hits = sorted((rid, name) for rid, name in _store_runs(client) if rid.startswith(text))
    if not hits:
        raise TrackingError(f"run {text!r} not found in {client.tracking_uri}: no MLflow run id starts with {text!r}")
    if len(hits) > 1:
        shown = ", ".join(f"{rid} ({name})" if name else rid for rid, name in hits[:10])
        more = f" and {len(hits) - 10} more" if len(hits) > 10 else ""
        raise TrackingError(
            f"run id prefix {text!r} is ambiguous in {client.tracking_uri}: {len(hits)} runs start with it: "
            f"{shown}{more}; give more digits"
        )
    return hits[0][0]


def latest_training_run(tracking_uri: str | None = None) -> str:
    """The id of the most recently started FINISHED training run of the store (any experiment):
    what ``--run-id latest`` names. Summary runs (``geograph compare``) and failed or running
    runs are passed over.

    Raises:
        TrackingError: the store holds no finished training run.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    ids = [e.experiment_id for e in client.search_experiments(max_results=50000)]
    runs = client.search_runs(
        ids,
        filter_string=f"attributes.status = 'FINISHED' and tags.`{TAG_TRAINING_KEY}` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    ) if ids else []
    if not runs:
        raise TrackingError(
            f"run 'latest' not found in {client.tracking_uri}: the store holds no finished training run; "
            "train one (geograph train ...) or give a run id"
        )
    return runs[0].info.run_id


def resolve_model_uri(uri: str, tracking_uri: str | None = None) -> str:
    """``uri`` with the run id of a ``runs:/ID/PATH`` URI resolved by :func:`resolve_run_id`
    (any other URI is returned as it is).

    Raises:
        TrackingError: see :func:`resolve_run_id`.
    """
    if not uri.startswith("runs:/"):
        return uri
    rid, sep, rest = uri.removeprefix("runs:/").lstrip("/").partition("/")
    if not rid:
        return uri
    return f"runs:/{resolve_run_id(rid, tracking_uri)}{sep}{rest}"


def unique_prefixes(run_ids: Sequence[str], tracking_uri: str | None = None,
                    min_length: int = SHORT_RUN_ID) -> dict[str, str]:
    """The shortest prefix (``min_length`` digits or more) of each of ``run_ids`` that no other
    run of the store shares: what to print so that :func:`resolve_run_id` takes it back.

    Args:
        run_ids: Full run ids.
        tracking_uri: The store whose runs must not share the prefix (default: the configured one).
        min_length: Fewest digits printed (default 8).

    Returns:
        ``{full id: prefix}``; a full id that is not in the store maps to itself.
    """
    from mlflow.tracking import MlflowClient

    if not run_ids:
        return {}
    client = MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))
    store = sorted({rid for rid, _ in _store_runs(client)} | set(run_ids))
    out = {}
    for rid in run_ids:
        i = bisect.bisect_left(store, rid)
        common = max((_common_prefix(rid, store[j]) for j in (i - 1, i + 1) if 0 <= j < len(store)), default=0)
        out[rid] = rid[: max(min_length, common + 1)]
    return out


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@contextlib.contextmanager
def reopen_run(run_id: str, tracking_uri: str | None = None) -> Iterator[Any]:
    """Continue the MLflow run ``run_id`` (same id, params kept); it ends FINISHED, or FAILED /
    KILLED on an error as :func:`start_run` does. The caller checks that it may be resumed."""
    import mlflow

    if tracking_uri is not None:
        mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    run = mlflow.start_run(run_id=run_id)
    with _ending_run():
        mlflow.set_tag(TAG_OWNER, owner_tag())
        yield run


__all__ = [
    "PROBE_ENV",
    "RunContext",
    "configure",
    "current_run_context",
    "ensure_experiment",
    "mark_stale_runs",
    "owner_alive",
    "owner_tag",
    "reopen_run",
    "RUN_ID_LENGTH",
    "SHORT_RUN_ID",
    "latest_training_run",
    "resolve_model_uri",
    "resolve_run_id",
    "resolve_tracking_uri",
    "run_context",
    "start_run",
    "unique_prefixes",
]
