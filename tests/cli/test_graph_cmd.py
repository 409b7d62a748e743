"""``geograph graph``: node and edge types, counts and feature widths, readable at 80 columns."""

from __future__ import annotations

import csv
import io
import json

import pytest

from geograph.cli.main import main
from geograph.data.synthetic import generate_world
from geograph.graph import GraphConfig, cached_build

ARGS = ["graph", "--pois", "60", "--seed", "1", "--cache-dir", ""]


@pytest.fixture(scope="module")
def schema() -> dict:
    """The schema of the graph the command builds (same world, same default config)."""
    return cached_build(generate_world(n_pois=60, seed=1), GraphConfig(), None).schema()


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main([*ARGS, *extra]) == 0
    captured = capsys.readouterr()
    assert "graph of embedded world (60 POIs, seed 1)" in captured.err  # the note is not the result
    return captured.out


def test_schema_lists_every_type_with_counts_and_widths(schema: dict) -> None:
    nodes = {n["type"]: n for n in schema["nodes"]}
    assert set(nodes) == {"poi", "cell", "image"} and nodes["poi"]["count"] == 60
    assert nodes["image"]["x_width"] > 0 and "pos[2]" in nodes["poi"]["attrs"]
    edges = {(e["src"], e["relation"], e["dst"]): e for e in schema["edges"]}
    assert edges[("poi", "covisits", "poi")]["edge_attr_width"] > 0
    assert "visitors" in edges[("poi", "covisits", "poi")]["attrs"]
    assert edges[("poi", "in", "cell")] == {
        "src": "poi",
        "relation": "in",
        "dst": "cell",
        "count": 60,
        "edge_attr_width": None,
        "attrs": [],
    }


def test_table_shows_every_type_name_at_80_columns(
    schema: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = _run(capsys)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(line.isascii() for line in lines)  # not a terminal: a plain ASCII box
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    for n in schema["nodes"]:  # the type names survive (rich markup would eat "[poi]")
        assert [n["type"], f"{n['count']:,}", str(n["x_width"])] in [c[:3] for c in cells]
    for e in schema["edges"]:
        width = "-" if e["edge_attr_width"] is None else str(e["edge_attr_width"])
        assert [e["src"], e["relation"], e["dst"], f"{e['count']:,}", width] in [c[:5] for c in cells]


def test_csv_json_and_markdown_parse(schema: dict, capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "--format", "csv"))))
    assert [
        (r["kind"], r["node_type"] or f"{r['src']},{r['relation']},{r['dst']}", int(r["count"])) for r in rows
    ] == [("node", n["type"], n["count"]) for n in schema["nodes"]] + [
        ("edge", f"{e['src']},{e['relation']},{e['dst']}", e["count"]) for e in schema["edges"]
    ]
    assert json.loads(_run(capsys, "--format", "json"))["edges"] == schema["edges"]
    md = _run(capsys, "--format", "markdown").splitlines()
    table_rows = [
        line for line in md if line.startswith("| ") and not line.startswith(("| node type", "| src"))
    ]
    assert len(table_rows) == len(schema["nodes"]) + len(schema["edges"])
