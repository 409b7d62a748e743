"""Fuzzed command lines: ``geograph.cli.main.main(argv)`` returns 0 or 2, never raises.

Argument lists are drawn from a grammar of every subcommand with good and bad values (bad
numbers, missing or odd paths, fuzzed config and suite files, unknown ids, random tokens).
A bad command line must end with exit code 2 and a one-line ``geograph: error: ...`` (or
argparse's usage message), never a traceback. Nothing slow can start: training commands point
at a dead tracking server (geograph checks it before any work), ``ui`` only gets refused hosts
or ports, world sizes stay small.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from geograph.cli.main import main
from geograph.data import write_world
from geograph.errors import DataValidationError
from geograph.testing import hand_made_world

from .counting import bump
from .fuzzlib import time_limit
from .test_fuzz_readers import fuzz_settings

DEAD_SERVER = "http://127.0.0.1:9"  # the discard port: connection refused at once
BUDGETS = [pytest.param(30, id="fast"), pytest.param(400, id="slow", marks=pytest.mark.slow)]

ints = st.one_of(
    st.integers(-3, 60).map(str), st.sampled_from(["abc", "1.5", "", "1e3", "99999999999999999999", "-0"])
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(["abc", "", "-1", "1e400"])
)
texts = st.text(max_size=12)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    world = write_world(hand_made_world(), root / "world")
    (root / "afile").write_text("x")
    (root / "busy").mkdir()
    (root / "busy" / "keep.txt").write_text("keep me")
    (root / "bad_world").mkdir()
    (root / "bad_world" / "pois.csv").write_text("poi_id,name\n1,a\n")
    return root, world


def paths(root: Path, world: Path):
    return st.sampled_from(
        [
            str(world),
            str(root / "missing"),
            str(root / "afile"),
            str(root / "afile" / "sub"),
            str(root / "busy"),
            str(root / "bad_world"),
            "",
            ".",
            "/dev/null",
            str(root / "new" / "x y"),
            "\x7f",
            "-",
        ]
    )


@st.composite
def argv(draw, root: Path, world: Path) -> list[str]:
    p = paths(root, world)
    db = f"sqlite:///{root / 'mlflow.db'}"
    cmd = draw(
        st.sampled_from(
            [
                "world",
                "graph",
                "train",
                "evaluate",
                "geolocate",
                "run",
                "compare",
                "register",
                "ui",
                "query",
                "demo",
                "junk",
            ]
        )
    )
    opt = lambda flag, values: [flag, draw(values)] if draw(st.booleans()) else []  # noqa: E731
    if cmd == "junk":
        return draw(st.lists(st.text(max_size=10), max_size=5))
    if cmd == "world":
        out = draw(
            st.sampled_from(
                [
                    str(root / "busy"),
                    str(root / "afile"),
                    str(root / "afile" / "sub"),
                    str(root / f"w{draw(st.integers(0, 3))}"),
                    "",
                ]
            )
        )
        return [
            "world",
            "--out",
            out,
            "--pois",
            str(draw(st.integers(-2, 40) | st.just("x"))),
            "--no-progress",
            *opt("--states", texts | st.sampled_from(["CA,NY", "ZZ", ",", "ca"])),
            *opt("--images", ints),
            *opt("--embedding-dim", ints),
            *opt("--covisits-per-poi", floats),
            *opt("--seed", ints),
            *opt("--partition-by", st.sampled_from(["state", "county"])),
            *(["--overwrite"] if draw(st.booleans()) and "busy" not in out else []),
        ]
    if cmd == "graph":
        return [
            "graph",
            "--data",
            draw(p),
            "--cache-dir",
            str(root / "cache"),
            *opt("--set", texts),
            *opt("--set", st.sampled_from(["cell_resolution=99", "near_k=-1", "granularity=x", "a=b"])),
        ]
    if cmd == "train":
        task = draw(st.sampled_from(["covisit", "geolocate", "bogus"]))
        cfg = root / f"cfg{draw(st.integers(0, 2))}.yaml"
        cfg.write_bytes(
            draw(
                st.one_of(
                    texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                    st.binary(max_size=40),
                    st.sampled_from(
                        [
                            b"train: {epochs: x}",
                            b"model: {hidden: -1}",
                            b"- a",
                            b"name: ../x",
                            b"data: 5",
                            b"{}",
                        ]
                    ),
                )
            )
        )
        extra = [*opt("--set", texts), *opt("--seed", ints), *opt("--data", p)]
        if task == "covisit":
            extra += [
                *opt("--nproc", st.sampled_from(["abc", "-1", "0"])),
                *(["--resume"] if draw(st.booleans()) else []),
            ]
        return [
            "train",
            task,
            "--config",
            str(cfg) if draw(st.booleans()) else draw(p),
            "--tracking-uri",
            DEAD_SERVER,
            *extra,
        ]
    if cmd == "evaluate":
        return [
            "evaluate",
            "covisit",
            "--run-id",
            draw(texts),
            "--tracking-uri",
            db,
            *opt("--split", st.sampled_from(["val", "test", "train"])),
        ]
    if cmd == "geolocate":
        return [
            "geolocate",
            "--run-id",
            draw(texts),
            "--tracking-uri",
            db,
            *draw(st.sampled_from([["--text", "a street"], ["--query-embeddings", str(root / "afile")], []])),
        ]
    if cmd == "run":
        suite = root / "suite.yaml"
        suite.write_bytes(
            draw(
                st.one_of(
                    texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                    st.binary(max_size=40),
                    st.sampled_from([b"configs: [x.yaml]", b"seeds: [a]", b"{}", b"- 1", b"\xff\xfe"]),
                )
            )
        )
        return [
            "run",
            draw(st.sampled_from([str(suite), str(root / "missing.yaml")])),
            "--tracking-uri",
            DEAD_SERVER,
            "--no-progress",
        ]
    if cmd == "compare":
        return [
            "compare",
            "--experiment",
            draw(texts),
            "--tracking-uri",
            db,
            "--no-log",
            *opt("--out", p),
            *opt("--metric", texts),
        ]
    if cmd == "register":
        return ["register", "--run-id", draw(texts), "--name", draw(texts), "--tracking-uri", db]
    if cmd == "ui":  # only hosts / ports that must be refused: nothing may start
        bad = draw(st.sampled_from(["host", "port"]))
        if bad == "host":
            return [
                "ui",
                "--host",
                draw(st.sampled_from(["0.0.0.0", "::", "example.com", "", "localhost", "10.0.0.1"])),
                "--tracking-uri",
                db,
            ]
        return ["ui", "--port", draw(st.sampled_from(["0", "-1", "70000", "abc", ""])), "--tracking-uri", db]
    if cmd == "demo":
        return [
            "demo",
            draw(st.sampled_from(["--pois", "--epochs", "--seed"])),
            draw(st.sampled_from(["x", "", "1.5"])),
        ]
    # query: on the tiny world, or on a bad folder; model queries need a run that does not exist
    q = draw(st.sampled_from(["covisited", "naics-flow", "hotspots", "whatif", "similar", "nope"]))
    base = [
        "query",
        q,
        "--data",
        draw(p),
        "--format",
        draw(st.sampled_from(["table", "csv", "json", "geojson"])),
        *opt("--out", st.sampled_from([str(root / "q.out"), str(root / "afile" / "x"), str(root / "busy")])),
        *opt("--map", st.sampled_from([str(root / "m.html"), str(root / "afile" / "m.html")])),
    ]
    if q == "covisited":
        who = draw(st.sampled_from(["--poi", "--brand"]))
        return [
            *base,
            who,
            draw(st.sampled_from(["p0", "p5", "Bluebird Coffee"]) | texts),
            *opt("--top", ints),
            *opt("--radius-km", floats),
            *opt("--state", texts),
        ]
    if q == "naics-flow":
        return [*base, *opt("--level", ints), *opt("--min-visitors", ints), *opt("--state", texts)]
    if q == "hotspots":
        return [
            *base,
            *opt("--resolution", ints),
            *opt("--top", ints),
            *opt("--min-pairs", ints),
            *opt("--by", st.sampled_from(["volume", "residual"])),
        ]
    if q == "whatif":
        return [
            *base,
            "--lat",
            draw(floats),
            "--lon",
            draw(floats),
            "--naics",
            draw(texts | st.just("722515")),
            "--run-id",
            draw(texts),
            "--tracking-uri",
            db,
        ]
    if q == "similar":
        return [*base, "--poi", draw(texts), "--run-id", draw(texts), "--tracking-uri", db]
    return base


def run_cli(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(120):
            rc = main(args)
    finally:
        for s, h in handlers.items():  # `geograph ui` installs its own
            signal.signal(s, h)
    return rc, out.getvalue() + err.getvalue()


@pytest.mark.parametrize("budget", BUDGETS)
def test_cli_fuzz(budget: int, env, monkeypatch) -> None:
    root, world = env
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    outcomes: dict[int, int] = {}

    @fuzz_settings(budget)
    @given(args=argv(root, world))
    def case(args: list[str]) -> None:
        bump("fuzz.cli")
        try:
            rc, text = run_cli(args)
        except BaseException as exc:  # noqa: BLE001 - anything escaping main is the failure
            raise AssertionError(f"geograph {args!r} raised {type(exc).__name__}: {exc}") from exc
        outcomes[rc] = outcomes.get(rc, 0) + 1
        assert rc in (0, 2), f"geograph {args!r} returned {rc}:\n{text[-2000:]}"
        assert "Traceback" not in text, f"geograph {args!r} printed a traceback:\n{text[-3000:]}"
        if rc == 2:
            assert "geograph: error: " in text or "error:" in text, (
                f"geograph {args!r}: no error message:\n{text}"
            )
        # the user's folder is never touched without --overwrite
        assert (root / "busy" / "keep.txt").read_text() == "keep me"
        assert (root / "afile").read_text() == "x"

    try:
        case()
    finally:
        for w in root.glob("w[0-9]"):
            shutil.rmtree(w, ignore_errors=True)
    assert outcomes.get(2, 0) > 0


def test_usage_errors_return_2(capsys) -> None:
    assert main([]) == 2
    assert main(["world", "--pois", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    bump("fuzz.cli", 3)


def test_bad_config_file_on_the_cli(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"epochs": "many"}}))
    assert main(["train", "covisit", "--config", str(cfg), "--tracking-uri", DEAD_SERVER]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"geograph: error: {cfg}: train.epochs must be of type int, got 'many'"), err
    assert len(err.strip().splitlines()) == 1
    bump("fuzz.cli")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    rc = main(["world", "--pois", "20", "--out", str(locked / "w"), "--no-progress"])
    assert rc == 2 and "geograph: error:" in capsys.readouterr().err


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "no-manifest"])
def test_query_on_a_damaged_world_is_a_clean_error(manifest: bool, tmp_path: Path) -> None:
    """Seeded byte flips of one Parquet table: a query answers (a flip in a value polars cannot
    notice) or fails with one line naming the damaged file, lazy scans and --cache alike. With
    write_world's manifest.json every changed file is refused by its SHA-256; without it (a
    folder from another tool) polars' own errors are translated."""
    import random

    from geograph.analytics import WorldSource, covisited, hotspots, naics_flow
    from geograph.data.world_io import MANIFEST_FILE

    world = write_world(hand_made_world(), tmp_path / "w")
    if not manifest:
        (world / MANIFEST_FILE).unlink()
    refused = 0
    for table in ("covisits", "pois"):
        path = world / f"{table}.parquet"
        good = path.read_bytes()
        for seed in range(6):
            rng = random.Random(seed)
            data = bytearray(good)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            path.write_bytes(bytes(data))
            for cache in ([], ["--cache"]):
                bump("fuzz.cli")
                rc, text = run_cli(["query", "covisited", "--poi", "p0", "--data", str(world), *cache])
                assert rc in (0, 2) and "Traceback" not in text, text
                assert rc == 2 or not manifest or bytes(data) == good, text
                if rc == 2:
                    refused += 1
                    assert text.startswith("geograph: error: file ") and path.name in text, text
                    assert len(text.strip().splitlines()) == 1, text
                for query in (
                    lambda s: covisited(s, "p0"),
                    lambda s: naics_flow(s, 2),
                    lambda s: hotspots(s, 7),
                ):
                    try:  # the library calls behind the CLI
                        query(WorldSource.from_folder(world, cache=bool(cache)))
                    except DataValidationError as exc:
                        assert path.name in str(exc), exc
        path.write_bytes(good)
    assert refused > 0
