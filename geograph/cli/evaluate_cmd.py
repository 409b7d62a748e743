"""``geograph evaluate covisit --run-id ID``: reload a logged model and re-score its held-out pairs.

``ID`` is a full run id or any unique prefix of one (``geograph.tracking.store.resolve_run_id``)."""

from __future__ import annotations

import argparse

from geograph.cli.common import add_quiet_arg, console, step


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="re-evaluate a logged model from MLflow")
    sub = p.add_subparsers(dest="task", metavar="TASK")
    sub.required = True
    c = sub.add_parser("covisit", help="co-visitation model of an MLflow run")
    c.add_argument("--run-id", required=True,
                   help="MLflow run id (a unique prefix, or latest) of a `geograph train covisit` run")
    c.add_argument("--split", choices=["val", "test"], default="test")
    c.add_argument("--tracking-uri", default=None)
    add_quiet_arg(c)
    c.set_defaults(func=_evaluate_covisit)


def load_predictor_from_run(run_id: str, tracking_uri: str | None = None):
    """Download the model bundle of ``run_id`` (a full id or a unique prefix) and load it as a
    CovisitPredictor.

    Raises:
        TrackingError: no run, an ambiguous prefix, or a run without a co-visitation model.
    """
    import mlflow

    from geograph.covisit.predict import CovisitPredictor
    from geograph.errors import TrackingError
    from geograph.tracking import configure
    from geograph.tracking.store import resolve_run_id

    configure(tracking_uri)
    run_id = resolve_run_id(run_id, tracking_uri)
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/artifacts/model_dir")
    except Exception as exc:  # noqa: BLE001
        raise TrackingError(f"run {run_id} has no logged co-visitation model (model/artifacts/model_dir)") from exc
    return CovisitPredictor.load(path)


def _evaluate_covisit(args) -> int:
    import mlflow
    from rich.table import Table

    from geograph.tracking import configure
    from geograph.tracking.store import resolve_run_id

    configure(args.tracking_uri)  # an unreachable store fails fast, before the prefix search
    run_id = resolve_run_id(args.run_id, args.tracking_uri)
    with step(f"loading the model of run {run_id}", args.quiet):
        pred = load_predictor_from_run(run_id, args.tracking_uri)
    with step(f"scoring the {args.split} split", args.quiet):
        metrics = pred.evaluate(args.split)
    logged = mlflow.get_run(run_id).data.metrics
    print(f"run {run_id}", flush=True)
    t = Table(title=f"{pred.cfg.name}: {args.split} metrics re-computed from the logged model")
    t.add_column("metric")
    t.add_column("re-computed", justify="right")
    t.add_column("logged", justify="right")
    for k in sorted(metrics):
        t.add_row(k, f"{metrics[k]:.4f}", f"{logged[k]:.4f}" if k in logged else "-")
    console().print(t)
    return 0
