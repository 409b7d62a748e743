"""Injected faults: SIGKILL at random points while geograph writes, and damaged files on load.

Killed writers (tests/reliability/fault_worker.py rewrites a file or folder in a loop until it
is SIGKILLed after a seeded random delay): the world (write_world, flat and hive-partitioned,
and ``geograph world --overwrite``), a comparison report (compare.write_table), the graph
cache and a training checkpoint (save_checked, the writer of cached_build and fit_gnn).
Afterwards every file is absent, the old version, or a complete new one; a file that loads
but holds anything else is *readable-but-wrong*, and there must be none.

Damaged files: every truncation and sampled byte flips of a checksummed file are a
CheckpointError; a corrupt or planted graph cache is reported and rebuilt; a damaged
checkpoint stops ``resume`` with a CheckpointError naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from geograph.data import (
    find_table,
    load_world,
    read_covisits,
    read_images,
    read_pois,
    read_regions,
    write_world,
)
from geograph.errors import CheckpointError, DataValidationError
from geograph.testing import tiny_world

from .counting import bump, record

ROOT = Path(__file__).parents[2]
WORKER = Path(__file__).with_name("fault_worker.py")
TABLES = {"pois": read_pois, "covisits": read_covisits, "images": read_images, "regions": read_regions}
KILLS = {"fast": 2, "slow": 25}
MODES = [pytest.param("fast", id="fast"), pytest.param("slow", id="slow", marks=pytest.mark.slow)]


def table_fp(df: pl.DataFrame) -> str:
    """Content hash of a table, row order ignored."""
    h = hashlib.sha256(str(sorted(df.schema.items(), key=str)).encode())
    cols = sorted(df.columns)
    rows = df.select(cols).hash_rows(seed=0).sort()
    h.update(rows.to_numpy().tobytes())
    return h.hexdigest()[:16]


def world_fps(folder: Path) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, reader in TABLES.items():
        path = find_table(folder, name)
        out[name] = None if path is None else table_fp(reader(path))
    return out


class Tally(dict):
    def __init__(self) -> None:
        super().__init__(
            faults=0,
            absent=0,
            old_or_new=0,
            readable_wrong=0,
            corrupt_detected=0,
            mixed_worlds=0,
            new_seen=0,
            hidden_left=0,
            worlds_old_or_new=0,
            worlds_refused=0,
            worlds_readable_wrong=0,
        )
        self.wrong: list[str] = []


def world_key(folder: Path) -> str:
    """What load_world reads from ``folder``: the tables' fingerprint and the provenance."""
    w = load_world(folder)
    return w.fingerprint() + json.dumps({k: v for k, v in w.meta.items() if k != "source"}, sort_keys=True)


def check_world(
    live: Path,
    refs: dict[str, dict],
    tally: Tally,
    metas: dict[str, str] | None = None,
    world_refs: dict[str, str] | None = None,
) -> None:
    """Judge every table (and meta.json) of a world folder left by a killed writer, and then the
    folder as a whole: load_world must give the old world, the new one, or a refusal."""
    if world_refs is not None:
        try:
            key = world_key(live)
        except DataValidationError as exc:
            tally["worlds_refused"] += 1
            tally.wrong.append(f"world refused: {exc}")
        else:
            if key in world_refs.values():
                tally["worlds_old_or_new"] += 1
            else:
                tally["worlds_readable_wrong"] += 1
                tally.wrong.append(f"{live}: load_world read a world that is neither version")
    versions: dict[str, str] = {}
    for name, reader in TABLES.items():
        try:
            path = find_table(live, name)
        except DataValidationError as exc:  # e.g. stored twice: refused, never read
            tally["corrupt_detected"] += 1
            tally.wrong.append(f"refused: {exc}")
            continue
        if path is None:
            tally["absent"] += 1
            continue
        try:
            fp = table_fp(reader(path))
        except DataValidationError as exc:
            tally["corrupt_detected"] += 1
            tally.wrong.append(f"refused: {exc}")
            continue
        match = [v for v, r in refs.items() if r[name] == fp]
        if match:
            tally["old_or_new"] += 1
            versions[name] = match[0]
        else:
            tally["readable_wrong"] += 1
            tally.wrong.append(f"{path}: content of neither version")
    if metas is not None and (live / "meta.json").exists():
        text = (live / "meta.json").read_text()
        if text in metas.values():
            tally["old_or_new"] += 1
            versions["meta"] = next(v for v, t in metas.items() if t == text)
        else:
            tally["readable_wrong"] += 1
            tally.wrong.append(f"{live / 'meta.json'}: content of neither version")
    if "B" in versions.values():
        tally["new_seen"] += 1
    if len(set(versions.values())) > 1:
        tally["mixed_worlds"] += 1  # each file whole, but from different writes
    tally["hidden_left"] += sum(1 for p in live.iterdir() if p.name.startswith("."))


def kill_worker(args: list[str], delay_s: float) -> None:
    """Start fault_worker.py, wait for 'ready', sleep ``delay_s`` and SIGKILL it."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.wait(timeout=60)
            raise AssertionError(f"worker {args} did not start: {line}{proc.stderr.read()[-3000:]}")
        time.sleep(delay_s)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(scope="module")
def worlds():
    return {
        "A": tiny_world(seed=11, n_pois=400, n_images=60),
        "B": tiny_world(seed=12, n_pois=400, n_images=60),
    }


@pytest.mark.parametrize("layout", ["flat", "hive"])
@pytest.mark.parametrize("mode", MODES)
def test_kill_while_writing_world(mode: str, layout: str, worlds, tmp_path: Path) -> None:
    part = None if layout == "flat" else "state"
    for v, w in worlds.items():
        write_world(w, tmp_path / f"ref_{v}", partition_by=part)
    refs = {v: world_fps(tmp_path / f"ref_{v}") for v in worlds}
    world_refs = {v: world_key(tmp_path / f"ref_{v}") for v in worlds}
    rng = random.Random(f"world-{layout}-{mode}")
    tally = Tally()
    for _ in range(KILLS[mode]):
        shutil.rmtree(tmp_path / "live", ignore_errors=True)
        shutil.copytree(tmp_path / "ref_A", tmp_path / "live")  # the old version
        kill_worker(["world", str(tmp_path), layout], rng.uniform(0.0, 1.5))
        tally["faults"] += 1
        check_world(tmp_path / "live", refs, tally, world_refs=world_refs)
    bump(f"faults.world.{layout}", tally["faults"])
    record(f"faults.world.{layout}.{mode}", dict(tally))
    assert tally["readable_wrong"] == 0, tally.wrong
    assert tally["worlds_readable_wrong"] == 0, tally.wrong  # a mix of two writes is refused
    assert tally["corrupt_detected"] == 0, (
        tally,
        tally.wrong,
    )  # atomic writes: nothing half-written is visible


@pytest.mark.slow
def test_kill_geograph_world_overwrite(tmp_path: Path) -> None:
    """``geograph world --overwrite`` killed at random: no file is readable but wrong."""
    from geograph.cli.main import main

    args = ["--pois", "400", "--images", "60", "--states", "CA,NY,TX", "--no-progress", "--overwrite"]
    for v, seed in (("A", "11"), ("B", "12")):
        assert main(["world", "--out", str(tmp_path / f"ref_{v}"), "--seed", seed, *args]) == 0
    refs = {v: world_fps(tmp_path / f"ref_{v}") for v in "AB"}
    metas = {v: (tmp_path / f"ref_{v}" / "meta.json").read_text() for v in "AB"}
    world_refs = {v: world_key(tmp_path / f"ref_{v}") for v in "AB"}
    rng = random.Random("cli")
    tally = Tally()
    for _ in range(KILLS["slow"]):
        shutil.rmtree(tmp_path / "live", ignore_errors=True)
        shutil.copytree(tmp_path / "ref_A", tmp_path / "live")
        kill_worker(["cli", str(tmp_path), *args], rng.uniform(0.0, 4.0))
        tally["faults"] += 1
        check_world(tmp_path / "live", refs, tally, metas, world_refs)
    bump("faults.world.cli", tally["faults"])
    record("faults.world.cli", dict(tally))
    assert tally["readable_wrong"] == 0, tally.wrong
    assert tally["worlds_readable_wrong"] == 0, tally.wrong


@pytest.mark.parametrize("mode", MODES)
def test_kill_while_writing_report(mode: str, tmp_path: Path) -> None:
    rng = random.Random(f"report-{mode}")
    tally = Tally()
    refs: dict[str, dict[str, bytes]] = {}
    for _ in range(KILLS[mode]):
        kill_worker(["report", str(tmp_path)], rng.uniform(0.0, 1.0))
        if not refs:
            refs = {v: {p.name: p.read_bytes() for p in (tmp_path / f"ref_{v}").iterdir()} for v in "AB"}
        tally["faults"] += 1
        live = tmp_path / "live"
        for name in ("comparison.md", "comparison.csv"):
            path = live / name
            if not path.exists():
                tally["absent"] += 1
                continue
            data = path.read_bytes()
            if data in (refs["A"][name], refs["B"][name]):
                tally["old_or_new"] += 1
                tally["new_seen"] += data == refs["B"][name]
            else:
                tally["readable_wrong"] += 1
                tally.wrong.append(f"{path}: {len(data)} bytes of neither version")
        tally["hidden_left"] += sum(1 for p in live.iterdir() if p.name.startswith("."))
    bump("faults.report", tally["faults"])
    record(f"faults.report.{mode}", dict(tally))
    assert tally["readable_wrong"] == 0, tally.wrong


@pytest.mark.parametrize(
    "mode", [pytest.param(6, id="fast"), pytest.param(60, id="slow", marks=pytest.mark.slow)]
)
def test_kill_while_saving_cache_and_checkpoint(mode: int, tmp_path: Path) -> None:
    """save_checked (the writer of cached_build and of fit_gnn's last.pt) killed mid-write.

    Fast: the writers are forked from this process (torch is loaded here already); slow: from
    fault_worker.py, a process of its own.
    """
    if mode > 10:
        out = subprocess.run(
            [sys.executable, str(WORKER), "saved", str(tmp_path), "cache,checkpoint", str(mode), "7"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        results = [json.loads(line) for line in out.stdout.strip().splitlines()[-2:]]
    else:
        from .fault_worker import saved_counts

        results = saved_counts(tmp_path, "cache,checkpoint", mode, 7)
    for counts in results:
        kind = counts.pop("kind")
        bump(f"faults.{kind}", counts["faults"])
        record(f"faults.{kind}.{'slow' if mode > 10 else 'fast'}", counts)
        assert counts["faults"] == mode
        assert counts["readable_wrong"] == 0, (kind, counts)
        assert counts["corrupt_detected"] == 0, (
            kind,
            counts,
        )  # the rename is atomic: no half file is visible
        assert counts["absent"] == 0, (kind, counts)  # the old file stays until the new one replaces it


# ----------------------------------------------------------------------------------------
# damaged files on load
# ----------------------------------------------------------------------------------------


def _small_state() -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    return {
        "epoch": 3,
        "model": {"w": torch.randn(8, 4, generator=g), "b": torch.zeros(4)},
        "history": [{"loss": 1.0}],
    }


@pytest.mark.parametrize(
    "exhaustive", [pytest.param(False, id="fast"), pytest.param(True, id="slow", marks=pytest.mark.slow)]
)
def test_every_truncation_and_flip_is_a_checkpoint_error(exhaustive: bool, tmp_path: Path) -> None:
    from geograph.graph.cache import load_checked, save_checked

    path = tmp_path / "x.pt"
    save_checked(_small_state(), path)
    good = path.read_bytes()
    n = 0
    rng = random.Random(0)
    cuts = range(len(good)) if exhaustive else sorted({*range(0, 120), *rng.sample(range(len(good)), 150)})
    for cut in cuts:  # the ways a write that is not atomic could be cut short
        path.write_bytes(good[:cut])
        with pytest.raises(CheckpointError, match=r"x\.pt"):
            load_checked(path)
        n += 1
    for pos in rng.sample(range(len(good)), 300 if exhaustive else 100):
        data = bytearray(good)
        data[pos] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError):
            load_checked(path)
        n += 1
    path.write_bytes(good)
    assert load_checked(path)["epoch"] == 3
    bump("faults.damaged_file", n)


class _Planted:
    """Unpickling this would create a file: proof that a planted pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _forged(payload: bytes) -> bytes:
    """A file with geograph's header and a correct checksum around ``payload``."""
    from geograph.graph.cache import _MAGIC

    return _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_planted_pickle_is_never_unpickled(tmp_path: Path) -> None:
    """A pickle put at a cache / checkpoint path, even with a valid checksum, is refused."""
    import torch

    from geograph.graph.cache import load_checked

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"model": _Planted(marker)}, buf)
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Planted(proof)))
    assert proof.exists()  # the payload does run when unpickled
    for name, data in (
        ("raw.pt", buf.getvalue()),
        ("forged.pt", _forged(buf.getvalue())),
        ("plain_pickle.pt", _forged(pickle.dumps(_Planted(marker)))),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError):
            load_checked(tmp_path / name)
        bump("faults.damaged_file")
    assert not marker.exists()


def test_corrupt_cache_is_reported_and_rebuilt(tmp_path: Path) -> None:
    from geograph.graph.cache import cache_key, cached_build, load_checked
    from geograph.graph.config import GraphConfig

    world = tiny_world(seed=5, n_pois=60)
    cfg = GraphConfig()
    first = cached_build(world, cfg, tmp_path)
    path = tmp_path / f"graph-{cache_key(world, cfg)}.pt"
    good = path.read_bytes()
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch_save_planted(buf, marker)
    damaged = {
        "truncated": good[: len(good) // 2],
        "flipped": good[:-50] + bytes([good[-50] ^ 0xFF]) + good[-49:],
        "empty": b"",
        "foreign": b"not a geograph file",
        "planted pickle with a valid checksum": _forged(buf.getvalue()),
    }
    for what, data in damaged.items():
        path.write_bytes(data)
        with pytest.warns(UserWarning, match="rebuilding the graph"):
            again = cached_build(world, cfg, tmp_path)
        assert again.stats["cache"] == "miss", what
        assert again.num_pois == first.num_pois
        load_checked(path)  # rewritten whole
        assert cached_build(world, cfg, tmp_path).stats["cache"] == "hit"
        bump("faults.damaged_cache")
    assert not marker.exists()


def torch_save_planted(buf: io.BytesIO, marker: Path) -> None:
    import torch

    torch.save({"model": _Planted(marker)}, buf)


def test_damaged_checkpoint_stops_resume_with_a_clear_error(tmp_path: Path) -> None:
    from geograph import covisit as C
    from geograph.covisit.config import CovisitConfig

    world = tiny_world(seed=3, n_pois=80, n_images=0)
    cfg = CovisitConfig.from_dict(
        {
            "data": {"cache_dir": None},
            "model": {"hidden": 8, "head_hidden": [8], "layers": 1},
            "train": {"epochs": 1, "checkpoint_dir": str(tmp_path / "ckpt"), "device": "cpu"},
        }
    )
    prep = C.prepare(cfg, world)
    ckpt = tmp_path / "ckpt" / "last.pt"
    C.fit(prep, checkpoint=ckpt)
    good = ckpt.read_bytes()
    rng = random.Random(1)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch_save_planted(buf, marker)
    for what, data in {
        "truncated at a random byte": good[: rng.randrange(len(good))],
        "a flipped byte": good[:100] + bytes([good[100] ^ 1]) + good[101:],
        "a planted pickle with a valid checksum": _forged(buf.getvalue()),
    }.items():
        ckpt.write_bytes(data)
        with pytest.raises(CheckpointError) as ei:
            C.fit(prep, checkpoint=ckpt, resume=True)
        assert str(ckpt) in str(ei.value), what
        bump("faults.damaged_checkpoint")
    assert not marker.exists()
