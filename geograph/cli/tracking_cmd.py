"""``geograph run | compare | register | ui``: suites, comparisons, the model registry, the MLflow UI."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_METRIC = "test_observed_r2_log1p"  # geograph.experiments.grouping.DEFAULT_METRIC (not imported: --help stays light)
FORMATS = ("table", "markdown", "csv")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run an experiment suite (YAML): every config x seed not already finished, then compare",
        description="Run an experiment suite. Runs already FINISHED with the same config and data "
        "fingerprint are skipped, so re-running after a crash continues where it stopped.",
    )
    p.add_argument("suite", type=Path, help="suite YAML, e.g. experiments/covisit_suite.yaml")
    p.add_argument("--fast", action="store_true", help="tiny smoke-test runs (tracked separately)")
    p.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or mlruns/mlflow.db)")
    p.add_argument("--keep-going", action="store_true", help="go on with the other runs after a failure")
    p.add_argument("-q", "--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress on stderr (errors still print)")
    p.set_defaults(func=_run)

    p = subparsers.add_parser(
        "compare",
        help="compare an experiment's runs: config differences, metrics mean ± std over seeds",
        description="Compare the finished runs of an experiment. Runs are grouped by data fingerprint "
        "and protocol (runs on different data are never compared), configs within a group by their "
        "params; each metric is mean ± sample std over seeds, and the best config of each group is "
        "starred. The run column is a run id prefix that --run-id options accept.",
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"ranking metric (default {DEFAULT_METRIC})")
    p.add_argument(
        "--out", type=Path, help="folder for comparison.md / .csv / plots (default mlruns/reports/NAME)"
    )
    p.add_argument("--group-by", help="comma-separated params that define a config (default: all but seed)")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument(
        "--higher-is-better", dest="higher", action="store_const", const=True, default=None
    )
    direction.add_argument("--lower-is-better", dest="higher", action="store_const", const=False)
    p.add_argument("--no-log", action="store_true", help="do not log the report as a summary run")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="what to print: table (default; fits the terminal), markdown or csv (as the files in --out)",
    )
    p.add_argument("--wide", action="store_true", help="table with every column and full names, however wide")
    p.add_argument("--tracking-uri", help="MLflow store")
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("register", help="register a run's model in the MLflow model registry")
    p.add_argument("--run-id", required=True, help="run id, a unique prefix (as geograph compare prints), or latest (the last finished training run)")
    p.add_argument("--name", required=True, help="registered model name")
    p.add_argument("--alias", help="also point this alias at the new version (e.g. champion)")
    p.add_argument("--artifact-path", default="model", help="where the run logged the model (default model)")
    p.add_argument("--tracking-uri", help="MLflow store")
    p.set_defaults(func=_register)

    p = subparsers.add_parser("ui", help="start the MLflow UI for the project's store and print its URL")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a --host other than 127.0.0.1 (no login!)"
    )
    p.add_argument(
        "--allowed-hosts",
        help="Host headers MLflow accepts, for access by name from other machines (mlflow server --allowed-hosts)",
    )
    p.add_argument("--tracking-uri", help="MLflow store to serve (default mlruns/mlflow.db)")
    p.set_defaults(func=_ui)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from geograph.experiments.rendering import print_table
    from geograph.experiments.suite import run_suite

    result = run_suite(
        args.suite,
        tracking_uri=args.tracking_uri,
        fast=args.fast,
        progress=not args.quiet,
        keep_going=args.keep_going,
    )
    console = Console()
    console.print(
        f"suite {result.suite.name}: {len(result.executed)} ran, {len(result.skipped)} skipped "
        f"(parent run {result.parent_run_id})",
        markup=False,
    )
    if result.report is not None:
        rep = result.report
        print_table(
            rep.table, rep.metric, experiment=result.suite.experiment, higher_is_better=rep.higher_is_better
        )
        console.print(
            f"wrote {rep.markdown_path}, {rep.csv_path}; summary run {rep.summary_run_id}", markup=False
        )
    return 0


def _compare(args: argparse.Namespace) -> int:
    import sys

    from geograph.experiments.compare import report
    from geograph.experiments.rendering import print_table, render_csv, render_markdown

    group_by = [g.strip() for g in args.group_by.split(",") if g.strip()] if args.group_by else None
    rep = report(
        args.experiment,
        args.metric,
        tracking_uri=args.tracking_uri,
        group_by=group_by,
        out_dir=args.out,
        higher_is_better=args.higher,
        log_summary=not args.no_log,
    )
    if args.format == "markdown":
        sys.stdout.write(
            render_markdown(
                rep.table, rep.metric, experiment=args.experiment, higher_is_better=rep.higher_is_better
            )
        )
    elif args.format == "csv":
        sys.stdout.write(render_csv(rep.table))
    else:
        print_table(
            rep.table,
            rep.metric,
            experiment=args.experiment,
            higher_is_better=rep.higher_is_better,
            wide=args.wide,
        )
    # notes on stderr (stdout is the comparison only); file names one a line: copyable, short lines
    sys.stdout.flush()
    print(
        "wrote:",
        *(f"  {p}" for p in [rep.markdown_path, rep.csv_path, *rep.plot_paths]),
        sep="\n",
        file=sys.stderr,
    )
    if rep.summary_run_id:
        print(f"logged as artifacts of summary run {rep.summary_run_id}", file=sys.stderr)
    return 0


def _register(args: argparse.Namespace) -> int:
    from geograph.tracking.registry import register_model
    from geograph.tracking.store import resolve_run_id

    run_id = resolve_run_id(args.run_id, args.tracking_uri)  # a unique prefix, as compare prints
    version = register_model(
        run_id, args.name, args.artifact_path, alias=args.alias, tracking_uri=args.tracking_uri
    )
    print(f"registered runs:/{run_id}/{args.artifact_path} as models:/{args.name}/{version}")
    if args.alias:
        print(f"alias: models:/{args.name}@{args.alias} -> version {version}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    import signal
    import sys

    from geograph.tracking.server import start_ui

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and `kill PID` both stop the server (it runs in its own process group)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server = start_ui(
        host=args.host,
        port=args.port,
        tracking_uri=args.tracking_uri,
        allow_remote=args.allow_remote,
        extra_args=["--allowed-hosts", args.allowed_hosts] if args.allowed_hosts else (),
    )
    print(f"Open {server.url} in a browser; Ctrl-C stops the server.", flush=True)
    try:
        rc = server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
    print(f"mlflow server exited with code {rc}", file=sys.stderr)
    return 1 if rc else 0
