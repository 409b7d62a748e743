"""``geograph query ...`` end to end (in-process ``main``): formats, files, maps and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from geograph.cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["query", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_covisited_csv(capsys, world_dir: Path) -> None:
    rc, out, _ = _run(capsys, "covisited", "--poi", "p00", "--data", str(world_dir), "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["poi_id"], r["visitors"]) for r in rows] == [("p01", "120"), ("p03", "80"), ("p02", "40"), ("p07", "10")]


def test_covisited_table_and_out_file(capsys, world_dir: Path, tmp_path: Path) -> None:
    rc, out, _ = _run(capsys, "covisited", "--brand", "Bluebird Coffee", "--data", str(world_dir))
    assert rc == 0 and "Golden Crust Bakery" in out and "180" in out
    target = tmp_path / "sub" / "brand.json"
    rc, out, _ = _run(capsys, "covisited", "--brand", "Bluebird Coffee", "--data", str(world_dir),
                      "--format", "json", "--out", str(target))
    assert rc == 0 and f"wrote {target}" in out
    assert [r["brand"] for r in json.loads(target.read_text())] == ["Golden Crust Bakery", "Fresh Market", "Bluebird Coffee"]
    assert [p.name for p in target.parent.iterdir()] == ["brand.json"]  # no temporary file left


def test_naics_flow_json_and_heatmap(capsys, world_dir: Path, tmp_path: Path) -> None:
    png = tmp_path / "flow.png"
    rc, out, _ = _run(capsys, "naics-flow", "--level", "2", "--data", str(world_dir), "--format", "json", "--png", str(png))
    assert rc == 0
    rows = json.loads(out[: out.rindex("]") + 1])
    lift = {(r["src_naics"], r["dst_naics"]): r["lift"] for r in rows}
    assert lift[("72", "31")] == pytest.approx(270 * 1100 / (510 * 300))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hotspots_geojson(capsys, world_dir: Path) -> None:
    rc, out, _ = _run(capsys, "hotspots", "--resolution", "8", "--top", "2", "--data", str(world_dir), "--format", "geojson")
    assert rc == 0
    fc = json.loads(out)
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2
    f0 = fc["features"][0]
    ring = f0["geometry"]["coordinates"][0]
    assert f0["geometry"]["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) == 7
    assert -123 < ring[0][0] < -122 and 37 < ring[0][1] < 38  # longitude first (RFC 7946)
    assert f0["properties"]["visitors"] == 310


def test_brand_result_has_no_geojson(capsys, world_dir: Path) -> None:
    rc, _, err = _run(capsys, "covisited", "--brand", "Fresh Market", "--data", str(world_dir), "--format", "geojson")
    assert rc == 2 and "GeoJSON needs latitude/longitude" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["covisited", "--poi", "p011"], "unknown POI id 'p011'; did you mean"),
        (["covisited", "--brand", "Bluebird Cofee"], "did you mean 'Bluebird Coffee'"),
        (["covisited", "--poi", "p00", "--state", "Cali"], "unknown state code"),
        (["naics-flow", "--level", "7"], "NAICS level must be 2..6"),
        (["hotspots", "--resolution", "16"], "h3 resolution must be 0..15"),
        (["hotspots", "--by", "residual"], "needs a trained model"),
        (["whatif", "--lat", "95", "--lon", "-122.4", "--naics", "722515"], "latitude must be in [-90, 90]"),
        (["whatif", "--lat", "37.7", "--lon", "-122.4", "--naics", "12345"], "NAICS code must have 6 digits"),
        (["whatif", "--lat", "37.7", "--lon", "-122.4", "--naics", "722515"], "needs a trained model"),
        (["similar", "--poi", "p00"], "needs a trained model"),
    ],
)
def test_bad_input_exits_2(capsys, world_dir: Path, argv: list[str], message: str) -> None:
    rc, _, err = _run(capsys, *argv, "--data", str(world_dir))
    assert rc == 2
    assert err.startswith("geograph: error:") and message in err


def test_missing_world_folder(capsys, tmp_path: Path) -> None:
    rc, _, err = _run(capsys, "covisited", "--poi", "p00", "--data", str(tmp_path / "nope"))
    assert rc == 2 and "world folder not found" in err


def test_missing_run_exits_2(capsys, world_dir: Path, trained: dict) -> None:
    rc, _, err = _run(capsys, "similar", "--poi", "p00", "--data", str(world_dir), "--run-id", "f" * 32,
                      "--tracking-uri", trained["tracking_uri"])
    assert rc == 2 and f"run '{'f' * 32}' not found in" in err


def test_whatif_table_json_and_maps(capsys, world_dir: Path, trained: dict, tmp_path: Path) -> None:
    model = ["--data", str(world_dir), "--run-id", trained["run_id"], "--tracking-uri", trained["tracking_uri"]]
    where = ["--lat", "37.778", "--lon", "-122.418", "--naics", "722515", "--brand", "Bluebird Coffee"]
    rc, out, _ = _run(capsys, "whatif", *where, *model, "--top", "3", "--map", str(tmp_path / "w.html"),
                      "--png", str(tmp_path / "w.png"))
    assert rc == 0
    assert "total predicted co-visitors with the 8 nearest POIs of CA" in out
    assert "comparison: p00 Bluebird Coffee #1" in out
    assert "leaflet" in (tmp_path / "w.html").read_text().lower()
    assert (tmp_path / "w.png").stat().st_size > 1000
    rc, out, _ = _run(capsys, "whatif", *where, *model, "--format", "json", "--feature", "visits=2500")
    doc = json.loads(out)
    assert doc["venue"]["features"]["visits"] == {"value": 2500.0, "source": "given"}
    assert doc["comparison"]["poi_id"] == "p00" and len(doc["neighbours"]) == 8
    rc, out, _ = _run(capsys, "whatif", *where, *model, "--format", "geojson")
    roles = [f["properties"].get("role") for f in json.loads(out)["features"]]
    assert roles[:2] == ["venue", "comparison"] and len(roles) == 10
    rc, _, err = _run(capsys, "whatif", *where, *model, "--feature", "visits")
    assert rc == 2 and "--feature must look like NAME=NUMBER" in err


def test_similar_and_residual_hotspots(capsys, world_dir: Path, trained: dict) -> None:
    model = ["--data", str(world_dir), "--run-id", trained["run_id"], "--tracking-uri", trained["tracking_uri"]]
    rc, out, _ = _run(capsys, "similar", "--poi", "p00", "--top", "3", "--format", "csv", *model)
    assert rc == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 3
    rc, out, _ = _run(capsys, "hotspots", "--by", "residual", "--resolution", "8", "--format", "csv", *model)
    assert rc == 0 and "mean_residual" in out.splitlines()[0]
