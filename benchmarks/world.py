"""Benchmark the embedded world: time and peak memory to generate and write N POIs.

Each size runs in its own subprocess so the peak resident memory (``ru_maxrss``) is that
size's own. Prints a table (rich on a terminal, Markdown with ``--markdown``) and writes
``benchmarks/out/world.json``.

    .venv/bin/python benchmarks/world.py                       # 10K, 100K, 1M
    .venv/bin/python benchmarks/world.py --sizes 2000,20000 --diagnostics
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"

_CHILD = r"""
import json, resource, sys, time
n, seed, folder, diagnostics = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
from geograph.data.synthetic import covisit_r2_diagnostics, generate_world_with_truth
from geograph.data.world_io import write_world
import numpy, polars, scipy.spatial, h3, sklearn.linear_model, geograph.geo  # imports are not timed
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
world, truth = generate_world_with_truth(n, seed=seed, progress=False)
t1 = time.perf_counter()
write_world(world, folder, overwrite=True)
t2 = time.perf_counter()
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
disk = sum(p.stat().st_size for p in __import__("pathlib").Path(folder).rglob("*") if p.is_file())
row = {
    "pois": n, "covisits": world.covisits.height, "images": world.images.height if world.images is not None else 0,
    "regions": world.regions.height, "generate_s": round(t1 - t0, 2), "write_s": round(t2 - t1, 2),
    "total_s": round(t2 - t0, 2), "peak_rss_mb": round(peak_mb), "rss_after_imports_mb": round(base_mb),
    "disk_mb": round(disk / 2**20, 1),
}
if diagnostics:
    row["diagnostics"] = {k: round(v, 4) for k, v in covisit_r2_diagnostics(world, truth).items()}
print("RESULT " + json.dumps(row))
"""


def run_size(n: int, seed: int, diagnostics: bool) -> dict:
    folder = OUT / f"world_bench_{n}"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), str(seed), str(folder), "1" if diagnostics else "0"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"size {n} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


COLUMNS = (
    ("pois", "POIs"),
    ("covisits", "co-visit rows"),
    ("images", "images"),
    ("regions", "regions"),
    ("generate_s", "generate (s)"),
    ("write_s", "write (s)"),
    ("total_s", "total (s)"),
    ("peak_rss_mb", "peak RSS (MB)"),
    ("rss_after_imports_mb", "RSS after imports (MB)"),
    ("disk_mb", "on disk (MB)"),
)


def _fmt(v: object) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |"
    sep = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(_fmt(r[k]) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated POI counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diagnostics", action="store_true", help="also print the co-visit R² diagnostics")
    parser.add_argument("--markdown", action="store_true", help="print Markdown instead of a rich table")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    from rich.console import Console
    from rich.table import Table

    sys.path.insert(0, str(ROOT))
    from geograph.utils.atomic import atomic_write_text

    console = Console(stderr=True)
    rows = []
    for n in sizes:
        with console.status(f"world with {n:,} POIs ..."):
            rows.append(run_size(n, args.seed, args.diagnostics))
        console.print(f"{n:,} POIs: {rows[-1]['total_s']} s, peak {rows[-1]['peak_rss_mb']} MB", markup=False)
    from importlib.metadata import version

    from hostinfo import hardware_line

    hw = hardware_line(f"polars {version('polars')}")
    print(hw + "\n")
    if args.markdown:
        print(markdown(rows))
    else:
        table = Table(title=f"embedded world, seed {args.seed}", header_style="bold")
        for _, title in COLUMNS:
            table.add_column(title, justify="right")
        for r in rows:
            table.add_row(*(_fmt(r[k]) for k, _ in COLUMNS))
        Console().print(table)
    if args.diagnostics:
        for r in rows:
            print(f"{r['pois']:>9,} POIs  " + "  ".join(f"{k}={v}" for k, v in r["diagnostics"].items()))
    OUT.mkdir(parents=True, exist_ok=True)
    machine = {"hardware": hw, "python": platform.python_version(), "machine": platform.machine(), "cpus": _cpus()}
    atomic_write_text(OUT / "world.json", json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
