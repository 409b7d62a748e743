"""``benchmarks/retrieval.py``: the comparison of the chunked search with the per-query loop, and
the run on GeoCLIP's real gallery embeddings."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "retrieval.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("retrieval_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_same_result_tells_rounding_from_a_missed_neighbour():
    same_result = _bench_module().same_result
    i = torch.tensor([[4, 7, 9]])
    s = torch.tensor([[0.9, 0.8, 0.7]])
    assert same_result(s, i, s.clone(), i.clone(), 512) == "same"
    # two near-tied neighbours swapped, their scores a few float32 ulps apart (the loop's
    # matrix-vector product sums in another order than the batched product)
    s_l = s + torch.tensor([[0.0, 3e-7, -2e-7]])
    assert same_result(s, i, s_l, torch.tensor([[4, 9, 7]]), 512) == "ties"
    # the loop found a better third neighbour: not rounding
    assert same_result(s, i, torch.tensor([[0.9, 0.8, 0.701]]), torch.tensor([[4, 7, 3]]), 512) == "DIFFER"
    # bfloat16 scores: its own rounding step, not float32's
    sb = s.bfloat16()
    assert same_result(sb, i, (s + 0.003).bfloat16(), torch.tensor([[4, 9, 7]]), 512) == "ties"
    assert same_result(sb, i, (s + 0.05).bfloat16(), torch.tensor([[4, 9, 7]]), 512) == "DIFFER"


@pytest.mark.slow
def test_geoclip_embeddings_run(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--embeddings", "geoclip", "--batches", "8", "--dtype", "float32",
         "--no-faiss", "--repeat", "1", "--loop-queries", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["embeddings"] == "geoclip"
    (row,) = res["rows"]
    assert row["gallery"] == 100_000 and row["dim"] == 512 and row["batch"] == 8
    assert row["check"] in ("same", "ties")
    assert "GeoCLIP's gallery (100,000 GPS points) and 8 GeoNames places" in proc.stdout


def test_device_is_checked_before_any_work(tmp_path):
    main = _bench_module().main
    out = tmp_path / "r.json"
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            main(["--device", "cuda", "--out", str(out)])
    with pytest.raises(SystemExit, match="cpu or cuda"):
        main(["--device", "meta", "--out", str(out)])
    assert not out.exists()


def test_cpu_run_records_its_device(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its hostinfo, as when run as a script
    out = tmp_path / "r.json"
    assert _bench_module().main(
        ["--sizes", "3000", "--batches", "4", "--dtype", "float32", "--no-faiss", "--repeat", "1",
         "--loop-queries", "2", "--chunk", "1024", "--device", "cpu", "--out", str(out)]
    ) == 0  # fmt: skip
    got = json.loads(out.read_text())
    assert got["device"] == "cpu" and got["rows"][0]["check"] in ("same", "ties")
    assert got["rows"][0]["gallery"] == 3000 and got["rows"][0]["chunked_qps"] > 0
