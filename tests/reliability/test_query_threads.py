"""Queries shared by client threads: torch's thread count survives concurrent ``one_thread``
sections, and ``hotspots`` gives the single-threaded answer bit for bit under load."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from geograph.analytics import WorldSource, hotspots
from geograph.analytics.model_context import one_thread
from geograph.data.synthetic import generate_world
from geograph.data.world_io import write_world

from .counting import bump


@pytest.fixture
def two_threads():
    """torch at 2 intra-op threads for the test (tests/conftest.py pins 1), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def _fresh_thread_count() -> int:
    """The thread count a new thread starts with (torch copies it at the thread's first call)."""
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    return seen[0]


def test_one_thread_sections_interleaved(two_threads: int) -> None:
    """A enters, B starts inside A's section and enters, A leaves, B leaves: every thread,
    and every thread started later, is back at the count outside the sections. (A save /
    restore per call left 1: B saved the 1 it started with and restored it.)"""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside: dict[str, int] = {}
    after: dict[str, int] = {}

    def a() -> None:
        torch.get_num_threads()  # A started before any section
        with one_thread():
            inside["a"] = torch.get_num_threads()
            a_in.set()
            assert b_in.wait(10)
        after["a"] = torch.get_num_threads()
        a_out.set()

    def b() -> None:
        assert a_in.wait(10)
        with one_thread():  # B's first torch call: inside A's section
            inside["b"] = torch.get_num_threads()
            b_in.set()
            assert a_out.wait(10)
            inside["b_after_a"] = torch.get_num_threads()
        after["b"] = torch.get_num_threads()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert inside == {"a": 1, "b": 1, "b_after_a": 1}
    assert after == {"a": two_threads, "b": two_threads}
    assert torch.get_num_threads() == two_threads
    assert _fresh_thread_count() == two_threads


def test_one_thread_sections_from_8_threads(two_threads: int) -> None:
    """8 threads entering and leaving (nested, too) at once: one thread inside, the count
    restored after."""
    gate = threading.Barrier(8)
    rng = np.random.default_rng(0)
    plans = [rng.integers(0, 3, 200).tolist() for _ in range(8)]

    def client(plan: list[int]) -> list[int]:
        gate.wait()
        seen = []
        for depth in plan:
            with one_thread():
                seen.append(torch.get_num_threads())
                if depth:
                    with one_thread():
                        seen.append(torch.get_num_threads())
                    seen.append(torch.get_num_threads())
            seen.append(torch.get_num_threads() - two_threads + 1)  # 1 when restored
        return seen

    with ThreadPoolExecutor(8) as pool:
        seen = [x for part in pool.map(client, plans) for x in part]
    bump("concurrent.one_thread_sections", sum(len(p) + sum(d > 0 for d in p) for p in plans))
    assert set(seen) == {1}
    assert torch.get_num_threads() == two_threads
    assert _fresh_thread_count() == two_threads


def _hotspots_under_load(folder, calls: int, clients: int, states: int) -> int:
    """``calls`` hotspots (resolutions 7 and 8, nationwide and per state) from ``clients``
    threads sharing one cold cached source, each compared bit for bit with a single-threaded
    answer from another source. Returns the number of answers compared."""
    serial = WorldSource.from_folder(folder, cache=True)
    sts = sorted(serial.pois().select("state").unique().collect()["state"].to_list())[:states]
    jobs = [(res, st) for res in (7, 8) for st in [None, *sts]]
    ref = {j: hotspots(serial, j[0], state=j[1], top=50) for j in jobs}
    shared = WorldSource.from_folder(folder, cache=True)
    work = [jobs[i % len(jobs)] for i in range(calls)]
    gate = threading.Barrier(clients)

    def client(c: int) -> list[tuple]:
        gate.wait()
        bad = []
        for j in work[c::clients]:
            got = hotspots(shared, j[0], state=j[1], top=50)
            if not (got.schema == ref[j].schema and got.equals(ref[j])):
                bad.append((j, got, ref[j]))
        return bad

    with ThreadPoolExecutor(clients) as pool:
        bad = [x for part in pool.map(client, range(clients)) for x in part]
    assert not bad, [
        (j, [c for c in r.columns if c in g.columns and not g[c].equals(r[c])]) for j, g, r in bad
    ]
    return len(work)


def test_hotspots_threads_equal_serial(tmp_path) -> None:
    folder = tmp_path / "world"
    write_world(generate_world(3_000, seed=1, n_images=0, progress=False), folder)
    bump("load.hotspots", _hotspots_under_load(folder, calls=24, clients=4, states=2))


@pytest.mark.slow
def test_hotspots_threads_equal_serial_100k(tmp_path) -> None:
    """The soak's nationwide and per-state hotspots at resolutions 7 and 8, on 100K POIs."""
    folder = tmp_path / "world"
    write_world(generate_world(100_000, seed=0, n_images=0, progress=False), folder)
    bump("load.hotspots", _hotspots_under_load(folder, calls=96, clients=8, states=4))
