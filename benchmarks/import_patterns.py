"""Benchmark ``geograph import patterns``: rows/s and peak memory on real-format Patterns files.

Writes seeded Monthly Patterns files in the vendor's layout (``placekey``, ``location_name``,
``brands``, 2017 ``naics_code``, ``latitude`` / ``longitude`` / ``region`` around six US metros,
``raw_visitor_counts``, ``poi_cbg``, ``date_range_start`` / ``date_range_end``, the
``related_same_day_brand`` / ``related_same_month_brand`` JSON maps, and the wide columns that
make a real file heavy: ``visits_by_day``, ``visitor_home_cbgs``, ``popularity_by_hour``), one
gzipped CSV per month, the same POIs every month. Then, each in its own subprocess so that its
peak resident memory (``ru_maxrss``) is its own, it imports the first month alone and all the
months: the import reads one file at a time, so the peak grows with the compact outputs, not
with the raw files. Prints the hardware line and a Markdown table.

    .venv/bin/python benchmarks/import_patterns.py                      # 200K rows, 4 months
    .venv/bin/python benchmarks/import_patterns.py --write-only data/patterns --rows 4000 --months 2
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METROS = [  # (region, latitude, longitude, county FIPS prefix of the CBGs)
    ("CA", 37.77, -122.42, "06075"),
    ("NY", 40.75, -73.98, "36061"),
    ("IL", 41.88, -87.63, "17031"),
    ("TX", 29.76, -95.37, "48201"),
    ("WA", 47.61, -122.33, "53033"),
    ("FL", 25.76, -80.19, "12086"),
]
BRANDS = [  # (brand, 2017 NAICS code: SafeGraph and Advan files carry NAICS 2017)
    ("Starbucks", "722515"), ("Dunkin'", "722515"), ("McDonald's", "722513"), ("Chipotle", "722513"),
    ("Subway", "722513"), ("Walmart", "452311"), ("Target", "452210"), ("Costco", "452311"),
    ("CVS", "446110"), ("Walgreens", "446110"), ("Kroger", "445110"), ("Safeway", "445110"),
    ("Whole Foods Market", "445110"), ("Shell", "447110"), ("Chevron", "447110"),
    ("Home Depot", "444110"), ("Lowe's", "444110"), ("Best Buy", "443142"), ("Old Navy", "448140"),
    ("Planet Fitness", "713940"),
]  # fmt: skip
CATEGORIES = {  # NAICS 2017 4-digit -> the vendor's top_category
    "7225": "Restaurants and Other Eating Places", "4523": "General Merchandise Stores",
    "4522": "Department Stores", "4461": "Health and Personal Care Stores", "4451": "Grocery Stores",
    "4452": "Specialty Food Stores", "4471": "Gasoline Stations", "4441": "Building Material and Supplies Dealers",
    "4431": "Electronics and Appliance Stores", "4481": "Clothing Stores",
    "7139": "Other Amusement and Recreation Industries", "8121": "Personal Care Services",
}  # fmt: skip
UNBRANDED = [
    ("Local Diner", "722511"),
    ("Corner Deli", "445120"),
    ("City Gym", "713940"),
    ("Hair Studio", "812112"),
]
HEADER = [
    "placekey", "parent_placekey", "location_name", "brands", "top_category", "naics_code",
    "latitude", "longitude", "street_address", "city", "region", "postal_code",
    "date_range_start", "date_range_end", "raw_visit_counts", "raw_visitor_counts",
    "visits_by_day", "poi_cbg", "visitor_home_cbgs", "popularity_by_hour",
    "related_same_day_brand", "related_same_month_brand",
]  # fmt: skip


def _placekey(i: int) -> str:
    a = "".join("abcdefghijklmnopqrstuvwxyz234567"[(i >> (5 * k)) & 31] for k in range(3))
    return f"zz{a[0]}-{a[1:]}@5vg-{i % 997:03d}-{i % 991:03d}"


def write_patterns(folder: str | Path, rows: int = 200_000, months: int = 4, seed: int = 0) -> list[Path]:
    """Write ``months`` gzipped Monthly Patterns files of ``rows // months`` POIs each (the same
    POIs every month, visitor counts and maps drawn anew); returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = rows // months
    metro = rng.integers(0, len(METROS), n)
    branded = rng.random(n) < 0.7
    brand_idx = rng.integers(0, len(BRANDS), n)
    other_idx = rng.integers(0, len(UNBRANDED), n)
    lat_off, lon_off = rng.normal(0, 0.08, n), rng.normal(0, 0.1, n)
    tract = rng.integers(100, 9999, n)
    paths = []
    for m in range(months):
        year, month = 2023 + (m // 12), 1 + m % 12
        nyear, nmonth = (year + 1, 1) if month == 12 else (year, month + 1)
        start, end = f"{year}-{month:02d}-01T00:00:00-05:00", f"{nyear}-{nmonth:02d}-01T00:00:00-05:00"
        visitors = rng.integers(5, 3000, n)
        n_day, n_month = rng.integers(0, 4, n), rng.integers(1, 7, n)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(HEADER)
        for i in range(n):
            region, lat, lon, county = METROS[metro[i]]
            name, naics = BRANDS[brand_idx[i]] if branded[i] else UNBRANDED[other_idx[i]]
            brand = name if branded[i] else ""
            others = rng.choice(len(BRANDS), n_day[i] + n_month[i], replace=False)
            day = {BRANDS[j][0]: int(rng.integers(1, 15)) for j in others[: n_day[i]]}
            mon = {BRANDS[j][0]: int(rng.integers(2, 40)) for j in others[n_day[i] :]}
            cbg = f"{county}{tract[i]:04d}001"
            home = {f"{county}{int(t):04d}00{k}": int(c) for k, (t, c) in enumerate(zip(rng.integers(100, 9999, 4), rng.integers(4, 60, 4), strict=True))}  # fmt: skip
            w.writerow([
                _placekey(i), "", name, brand, CATEGORIES[naics[:4]], naics,
                f"{lat + lat_off[i]:.6f}", f"{lon + lon_off[i]:.6f}", f"{100 + i % 900} Main St", "City",
                region, f"{10000 + i % 89999:05d}", start, end, int(visitors[i] * 1.4), int(visitors[i]),
                json.dumps(rng.integers(0, 40, 30).tolist()), cbg, json.dumps(home),
                json.dumps(rng.integers(0, 90, 24).tolist()), json.dumps(day), json.dumps(mon),
            ])  # fmt: skip
        path = folder / f"patterns-{year}-{month:02d}.csv.gz"
        path.write_bytes(gzip.compress(buf.getvalue().encode(), compresslevel=6))
        paths.append(path)
    return paths


CHILD = """
import json, resource, sys, time
from geograph.data import import_patterns
files, out = sys.argv[1].split(","), sys.argv[2]
t0 = time.perf_counter()
s = import_patterns(files, out)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": s.rows_read, "pois": s.pois, "covisit_rows": s.covisit_rows,
                  "brand_rows": s.brand_covisit_rows, "rejected": s.rows_rejected,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_import(files: list[Path], out: Path) -> dict:
    """Import ``files`` into ``out`` in a fresh interpreter; its time, counts and peak RSS."""
    if out.exists():
        shutil.rmtree(out)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(map(str, files)), str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"import failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def hardware() -> str:
    import polars as pl
    from hostinfo import cpu_model

    cpu = cpu_model()
    return f"Hardware: {cpu}, {os.cpu_count()} logical CPUs, polars {pl.__version__}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows over all months (default 200000)")
    ap.add_argument("--months", type=int, default=4, help="monthly files (default 4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the files (default 0)")
    ap.add_argument(
        "--write-only", type=Path, default=None, metavar="DIR", help="only write the files to DIR"
    )
    args = ap.parse_args(argv)
    if args.write_only is not None:
        for p in write_patterns(args.write_only, args.rows, args.months, args.seed):
            print(p)
        return 0
    print(hardware())
    with tempfile.TemporaryDirectory(prefix="geograph-patterns-") as tmp:
        t0 = time.perf_counter()
        files = write_patterns(Path(tmp) / "in", args.rows, args.months, args.seed)
        mib = sum(p.stat().st_size for p in files) / 2**20
        print(
            f"wrote {len(files)} files, {args.rows:,} rows, {mib:.1f} MiB gzipped, in {time.perf_counter() - t0:.1f} s"
        )
        one = run_import(files[:1], Path(tmp) / "one")
        every = run_import(files, Path(tmp) / "all")
    print()
    print("| files | rows | POIs | brand rows | POI co-visit rows | seconds | rows/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in ((1, one), (len(files), every)):
        print(
            f"| {n} | {r['rows']:,} | {r['pois']:,} | {r['brand_rows']:,} | {r['covisit_rows']:,} | "
            f"{r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | {r['peak_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
