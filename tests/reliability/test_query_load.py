"""The analytics query layer under load: concurrent queries give the sequential answers.

A mix of queries (covisited by POI and by brand, with and without filters; naics-flow at
levels 2 and 4; hotspots at resolutions 6 and 7) runs once sequentially, then the same list
runs again on a pool of threads sharing one WorldSource (in-process: nothing listens on any
port), on the lazy (Parquet scan per query) and the cached source. Every concurrent answer must
equal its sequential one; throughput and p50 / p95 latency are recorded for the README.
Slow: the 100K-POI world (``generate_world(100_000, seed=0)``); fast: 2K POIs.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from .counting import bump, record

THREADS = 4
TIME_LIMIT_S = 600


def _queries(src, n: int, seed: int) -> list[tuple[str, dict]]:
    pois = src.pois().select("poi_id", "brand", "state").collect()
    rng = random.Random(seed)
    ids = pois["poi_id"].to_list()
    brands = pois["brand"].drop_nulls().unique().sort().to_list()
    states = pois["state"].unique().sort().to_list()
    out: list[tuple[str, dict]] = []
    for i in range(n):
        kind = ("poi", "poi", "poi_radius", "brand", "brand_state", "flow", "hotspots")[i % 7]
        if kind == "poi":
            out.append(("covisited", {"poi": rng.choice(ids)}))
        elif kind == "poi_radius":
            out.append(("covisited", {"poi": rng.choice(ids), "radius_km": 5.0}))
        elif kind == "brand":
            out.append(("covisited", {"brand": rng.choice(brands)}))
        elif kind == "brand_state":
            out.append(("covisited", {"brand": rng.choice(brands), "state": rng.choice(states)}))
        elif kind == "flow":
            out.append(("naics_flow", {"level": rng.choice([2, 4])}))
        else:
            out.append(("hotspots", {"resolution": rng.choice([6, 7])}))
    return out


def _run(src, query: tuple[str, dict]) -> tuple[pl.DataFrame | str, float]:
    from geograph.analytics import covisited, hotspots, naics_flow
    from geograph.errors import GeographError

    fn = {"covisited": covisited, "naics_flow": naics_flow, "hotspots": hotspots}[query[0]]
    t0 = time.perf_counter()
    try:
        result: pl.DataFrame | str = fn(src, **query[1])
    except GeographError as exc:  # e.g. a brand with no co-visits in that state: the same error both ways
        result = f"error: {exc}"
    return result, time.perf_counter() - t0


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a.equals(b)


def load_test(folder: Path, n_queries: int, label: str) -> dict:
    from geograph.analytics import WorldSource

    report: dict = {"queries": n_queries, "threads": THREADS}
    for mode, cache in (("lazy", False), ("cached", True)):
        src = WorldSource.from_folder(folder, cache=cache)
        queries = _queries(src, n_queries, seed=7)
        _run(src, queries[0])  # warm-up: first scans, H3 cells of the POIs
        t0 = time.perf_counter()
        sequential = [_run(src, q) for q in queries]
        seq_s = time.perf_counter() - t0
        shared = WorldSource.from_folder(folder, cache=cache)
        # Warmed like the sequential one, so the timings compare (a cold shared source is
        # tested by test_cold_cached_source_is_thread_safe).
        _run(shared, queries[0])
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            futures = [pool.submit(_run, shared, q) for q in queries]
            concurrent = [f.result(timeout=TIME_LIMIT_S) for f in futures]
        conc_s = time.perf_counter() - t0
        mismatches = [
            q for q, (a, _), (b, _) in zip(queries, sequential, concurrent, strict=True) if not _same(a, b)
        ]
        lat_seq = np.array([t for _, t in sequential]) * 1000
        lat_conc = np.array([t for _, t in concurrent]) * 1000
        report[mode] = {
            "mismatches": len(mismatches),
            "sequential_qps": round(n_queries / seq_s, 1),
            "concurrent_qps": round(n_queries / conc_s, 1),
            "sequential_p50_ms": round(float(np.percentile(lat_seq, 50)), 1),
            "sequential_p95_ms": round(float(np.percentile(lat_seq, 95)), 1),
            "concurrent_p50_ms": round(float(np.percentile(lat_conc, 50)), 1),
            "concurrent_p95_ms": round(float(np.percentile(lat_conc, 95)), 1),
            "errors_same_both_ways": sum(isinstance(a, str) for a, _ in sequential),
        }
        assert not mismatches, f"{label} {mode}: concurrent answers differ for {mismatches[:5]}"
        bump("load.queries", 2 * n_queries)
    return report


@pytest.fixture(scope="module")
def world_2k(tmp_path_factory):
    from geograph.data import write_world
    from geograph.data.synthetic import generate_world

    return write_world(
        generate_world(2000, seed=0, n_images=0, progress=False), tmp_path_factory.mktemp("w2k") / "w"
    )


def test_concurrent_queries_match_sequential_2k(world_2k) -> None:
    record("query_load.2k", load_test(world_2k, 56, "2K POIs"))


@pytest.mark.slow
def test_concurrent_queries_match_sequential_100k(tmp_path: Path) -> None:
    from geograph.data import write_world
    from geograph.data.synthetic import generate_world

    folder = write_world(generate_world(100_000, seed=0, n_images=0, progress=False), tmp_path / "w100k")
    record("query_load.100k", load_test(folder, 210, "100K POIs"))


def test_cold_cached_source_is_thread_safe(world_2k) -> None:
    import threading

    from geograph.analytics import WorldSource, covisited

    src = WorldSource.from_folder(world_2k, cache=True)
    ids = src.pois().select("poi_id").collect()["poi_id"].to_list()[:2]
    slow_covisits = src.covisits

    def covisits_slowly():  # widen the window a busy machine opens anyway
        time.sleep(0.3)
        return slow_covisits()

    src.covisits = covisits_slowly
    errors: list[BaseException] = []
    answers: dict = {}

    def query(poi: str) -> None:
        try:
            answers[poi] = covisited(src, poi)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    first = threading.Thread(target=query, args=(ids[0],))
    first.start()
    time.sleep(0.15)
    query(ids[1])
    first.join()
    bump("load.queries", 2)
    if errors:
        raise errors[0]
    sequential = WorldSource.from_folder(world_2k, cache=True)
    for poi in ids:
        assert answers[poi].equals(covisited(sequential, poi)), poi
