"""``geograph train covisit|geolocate --config FILE [--set k=v ...]``."""

from __future__ import annotations

import argparse

from geograph.cli.common import add_config_args, console, load_config

DEFAULTS = {"covisit": "experiments/covisit_naics_sage.yaml", "geolocate": "experiments/geolocate_world.yaml"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model and log it to MLflow")
    sub = p.add_subparsers(dest="task", metavar="TASK")
    sub.required = True
    c = sub.add_parser("covisit", help="co-visitation prediction (NAICS-aware GNN or a baseline)")
    add_config_args(c, DEFAULTS["covisit"])
    c.add_argument("--data", default=None, help="world folder (default: the embedded world of the config)")
    c.add_argument("--seed", type=int, default=None, help="shortcut for --set train.seed=N")
    c.add_argument("--resume", metavar="RUN_ID", default=None,
                   help="continue that MLflow run (id or unique prefix) from its last checkpoint")
    c.add_argument("--nproc", type=int, default=None,
                   help="launch N processes on this machine with torchrun's elastic launcher (states sharded over ranks)")
    c.set_defaults(func=_train_covisit)
    g = sub.add_parser("geolocate", help="geolocation retrieval head (image or text embedding -> GPS)")
    add_config_args(g, DEFAULTS["geolocate"])
    g.add_argument("--seed", type=int, default=None, help="shortcut for --set train.seed=N")
    g.add_argument("--resume", metavar="RUN_ID", default=None,
                   help="continue that MLflow run (id or unique prefix) from its last checkpoint")
    g.add_argument("--nproc", type=int, default=None,
                   help="launch N processes on this machine with torchrun (data-parallel head, sharded gallery)")
    g.set_defaults(func=_train_geolocate)


def _print_metrics(title: str, run_id: str, metrics: dict) -> None:
    from rich.table import Table

    t = Table(title=f"{title} (run {run_id})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in sorted(metrics):
        if k.startswith(("test_", "val_")) or k in ("train_time_s", "best_epoch"):
            t.add_row(k, f"{metrics[k]:.4f}")
    console().print(t)


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Re-run ``geograph`` under ``torch.distributed.run`` with ``nproc`` local ranks."""
    import os
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    if nproc < 1:
        from geograph.errors import ConfigError

        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(port), "--max-restarts", "0", "-m", "geograph", *argv]
    with tempfile.TemporaryDirectory(prefix="geograph-launch-") as tmp:
        from geograph.distributed.failures import RUN_FILE_ENV

        run_file = Path(tmp) / "run.json"  # rank 0 writes its MLflow run id here
        rc = subprocess.call(cmd, env=dict(os.environ, **{RUN_FILE_ENV: str(run_file)}))
        if rc != 0:
            _report_failed_launch(rc, nproc, run_file)
    return rc


def _report_failed_launch(rc: int, nproc: int, run_file) -> None:
    """After torchrun failed: mark rank 0's MLflow run FAILED if it is still RUNNING (rank 0 was
    SIGKILLed) and say where the last checkpoint is."""
    import sys
    from pathlib import Path

    from geograph.distributed.failures import fail_recorded_run

    reason = f"torchrun exited with code {rc}: a rank of {nproc} failed or was killed"
    try:
        rec = fail_recorded_run(run_file, reason)
    except Exception as exc:  # noqa: BLE001 - the store may be down too; the exit code still tells
        rec, reason = None, f"{reason}; could not mark its MLflow run FAILED: {exc}"
    where = f"; MLflow run {rec['run_id']} is marked FAILED" if rec else "; no MLflow run was recorded"
    ckpt = Path(rec["checkpoint"]) if rec and rec.get("checkpoint") else None
    if ckpt is not None and ckpt.exists():
        where += f"; the last checkpoint {ckpt} is kept: rerun with --resume {rec['run_id']} to continue from it"
    print(f"geograph: error: {reason}{where}", file=sys.stderr)


def _strip_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        out.append(a)
    return out


def _train(args, config_cls, run_module: str, title: str) -> int:
    """Shared by both tasks: torchrun launch, config with --set / --seed / --resume, one tracked run."""
    import importlib
    import sys

    from geograph.config import apply_overrides

    if args.nproc:
        return launch_torchrun(args.nproc, _strip_nproc(sys.argv[1:]))
    cfg = load_config(args, config_cls)
    extra = []
    if getattr(args, "data", None):
        extra.append(f"data.world_dir={args.data}")
    if args.seed is not None:
        extra.append(f"train.seed={args.seed}")
    if args.resume:
        extra.append(f"train.resume='{args.resume}'")  # quoted: a hex id may read as a number
    cfg = apply_overrides(cfg, extra)
    out = importlib.import_module(run_module).run_from_config(cfg, tracking_uri=args.tracking_uri, fast=args.fast)
    _print_metrics(f"{title}: {cfg.get('name', config_cls.name)}", out["run_id"], out["metrics"])
    return 0


def _train_covisit(args) -> int:
    from geograph.covisit.config import CovisitConfig

    return _train(args, CovisitConfig, "geograph.covisit.run", "co-visitation")


def _train_geolocate(args) -> int:
    from geograph.geolocate.config import GeolocateConfig

    return _train(args, GeolocateConfig, "geograph.geolocate.run", "geolocation")
