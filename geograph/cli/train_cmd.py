"""``geograph train covisit|geolocate --config FILE [--set k=v ...]``."""

from __future__ import annotations

import argparse

from geograph.cli.common import add_config_args, add_quiet_arg, console, load_config

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
    _add_malloc_arg(c)
    add_quiet_arg(c)
    c.set_defaults(func=_train_covisit)
    g = sub.add_parser("geolocate", help="geolocation retrieval head (image or text embedding -> GPS)")
    add_config_args(g, DEFAULTS["geolocate"])
    g.add_argument("--train", metavar="FILE", default=None,
                   help="your training table, CSV or Parquet: id, lat, lon and an embedding (list; JSON in CSV) "
                   "or a text column (sets data.source=files; needs --test)")
    g.add_argument("--test", metavar="FILE", default=None, help="your test table (same columns as --train)")
    g.add_argument("--val", metavar="FILE", default=None,
                   help="your validation table (default: a data.val_frac share of --train, drawn by seed)")
    g.add_argument("--seed", type=int, default=None, help="shortcut for --set train.seed=N")
    g.add_argument("--resume", metavar="RUN_ID", default=None,
                   help="continue that MLflow run (id or unique prefix) from its last checkpoint")
    g.add_argument("--nproc", type=int, default=None,
                   help="launch N processes on this machine with torchrun (data-parallel head, sharded gallery)")
    _add_malloc_arg(g)
    add_quiet_arg(g)
    g.set_defaults(func=_train_geolocate)


MALLOC_REEXEC_ENV = "GEOGRAPH_MALLOC_REEXEC"  # set on the process started again with LD_PRELOAD


def _add_malloc_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--malloc", choices=("system", "tcmalloc"), default="system",
                   help="memory allocator of the training processes: tcmalloc (gperftools, installed "
                   "separately) returns freed memory to the system and was faster on large graphs; "
                   "geograph starts them with LD_PRELOAD (default: the system's malloc)")


def malloc_env(choice: str) -> dict[str, str]:
    """Environment additions that start a process with the allocator ``choice`` (``{}`` for
    ``"system"`` or when this process already runs with it).

    Raises:
        ConfigError: ``tcmalloc`` asked for and not installed, or asked for on a platform
            without ``LD_PRELOAD``.
    """
    import os
    import sys

    from geograph.errors import ConfigError
    from geograph.utils.memory import TCMALLOC_HINT, allocator, find_tcmalloc

    if choice == "system" or allocator() == choice:
        return {}
    if not sys.platform.startswith("linux"):
        raise ConfigError(f"--malloc {choice} needs Linux (LD_PRELOAD); use --malloc system here")
    lib = find_tcmalloc()
    if lib is None:
        raise ConfigError(f"--malloc tcmalloc: the library was not found; {TCMALLOC_HINT}")
    preload = os.environ.get("LD_PRELOAD", "")
    return {"LD_PRELOAD": f"{lib} {preload}".strip()}


def _restart_with_malloc(choice: str, argv: list[str]) -> None:
    """Start this command again (same process id, ``exec``) with ``choice`` preloaded, unless it
    already runs with it; a restarted process that still does not is an error, not a loop."""
    import os
    import sys

    from geograph.errors import ConfigError
    from geograph.utils.memory import allocator

    extra = malloc_env(choice)
    if not extra:
        return
    if os.environ.get(MALLOC_REEXEC_ENV):
        raise ConfigError(
            f"--malloc {choice}: started with LD_PRELOAD={extra['LD_PRELOAD']!r} but the process "
            f"runs with {allocator()}; check that the library loads (ldd, LD_DEBUG=libs)"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ, **extra, **{MALLOC_REEXEC_ENV: "1"})
    os.execve(sys.executable, [sys.executable, "-m", "geograph", *argv], env)


def _print_result(title: str, out: dict) -> None:
    """Rank 0 (or a single process): the run id on its own line (never wrapped, so it can be
    copied whole) and the metrics table, on stdout. Another rank: the run it logs to, on stderr."""
    import sys

    from rich.table import Table

    from geograph.train import shared_run_id

    run_id = out.get("run_id") or shared_run_id()
    rank, world_size = int(out.get("rank", 0)), int(out.get("world_size", 1))
    if rank != 0:
        print(f"geograph: rank {rank} of {world_size} trained in run {run_id} (rank 0 logs its metrics)",
              file=sys.stderr, flush=True)
        return
    metrics = out["metrics"]
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in sorted(metrics):
        if k.startswith(("test_", "val_")) or k in ("train_time_s", "best_epoch"):
            t.add_row(k, f"{metrics[k]:.4f}")
    print(f"run {run_id}", flush=True)
    console().print(t)


def launch_torchrun(nproc: int, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Re-run ``geograph`` under ``torch.distributed.run`` with ``nproc`` local ranks (``env``:
    variables added to the ranks' environment)."""
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
        rc = subprocess.call(cmd, env=dict(os.environ, **(env or {}), **{RUN_FILE_ENV: str(run_file)}))
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
    import os
    import sys

    from geograph.config import apply_overrides

    malloc = getattr(args, "malloc", "system")
    if args.nproc:
        return launch_torchrun(args.nproc, _strip_nproc(args.cli_argv), env=malloc_env(malloc))
    _restart_with_malloc(malloc, args.cli_argv)
    cfg = load_config(args, config_cls)
    extra = []
    if getattr(args, "data", None):
        extra.append(f"data.world_dir={args.data}")
    if args.seed is not None:
        extra.append(f"train.seed={args.seed}")
    if args.resume:
        extra.append(f"train.resume='{args.resume}'")  # quoted: a hex id may read as a number
    if args.quiet:
        extra.append("train.progress=false")
    cfg = apply_overrides(cfg, extra)
    _use_files(args, cfg)
    name = cfg.get("name", config_cls.name)
    if not args.quiet and os.environ.get("RANK", "0") == "0":
        how = f"resuming run {args.resume}" if args.resume else "training"
        print(f"geograph: {how} {title} {name}{' (fast)' if args.fast else ''}", file=sys.stderr, flush=True)
    out = importlib.import_module(run_module).run_from_config(cfg, tracking_uri=args.tracking_uri, fast=args.fast)
    _print_result(f"{title}: {name}", out)
    return 0


def _use_files(args, cfg: dict) -> None:
    """``--train`` / ``--test`` / ``--val``: the geolocation config reads those files (set as
    values, not through ``--set``, so any file name is taken as it is)."""
    files = {k: getattr(args, k, None) for k in ("train", "test", "val")}
    if not any(files.values()):
        return
    if not (files["train"] and files["test"]):
        from geograph.errors import ConfigError

        raise ConfigError("--train and --test go together: give both files (--val is optional)")
    data = cfg.setdefault("data", {})
    data.update(source="files", train_file=files["train"], test_file=files["test"], val_file=files["val"])
    if args.config == DEFAULTS["geolocate"]:  # the default config is the world's: name the run after the files
        cfg["name"] = "geolocate_files"


def _train_covisit(args) -> int:
    from geograph.covisit.config import CovisitConfig

    return _train(args, CovisitConfig, "geograph.covisit.run", "co-visitation")


def _train_geolocate(args) -> int:
    from geograph.geolocate.config import GeolocateConfig

    return _train(args, GeolocateConfig, "geograph.geolocate.run", "geolocation")
