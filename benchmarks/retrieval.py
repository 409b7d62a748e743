"""Gallery search throughput: exact chunked top-k vs a per-query loop, 100K and 1M galleries.

    .venv/bin/python benchmarks/retrieval.py [--dim 512] [--k 10] [--sizes 100000 1000000]

For each gallery size and batch size (1 and 256 queries) it times
:func:`geograph.retrieval.chunked_topk` (one matrix product per 65,536-row chunk, a running
top-k merge) and a straightforward loop (one matrix-vector product and ``topk`` per query,
:func:`geograph.retrieval.loop_topk`) in the same process, checks they return the same
neighbours, and prints queries per second, the speed-up, the extra peak resident memory of
the search (Linux ``VmHWM`` after resetting it, minus the resident size before the call) and
the fraction of this machine's measured float32 matrix-product FLOP/s the search reaches.
Results also go to ``benchmarks/out/retrieval.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geograph.retrieval import chunked_topk, loop_topk  # noqa: E402


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def peak_extra_mb(fn) -> tuple[float, object]:
    """Run ``fn``; return the rise of the peak resident set above the resident set before (MB)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    before = _status_kb("VmRSS")
    out = fn()
    peak = _status_kb("VmHWM")
    return (max(peak - before, 0) / 1024.0 if before >= 0 and peak >= 0 else float("nan")), out


def best_time(fn, repeat: int, min_time: float = 0.0) -> float:
    """Best wall time of ``repeat`` calls (at least one, and until ``min_time`` has passed)."""
    best, total, n = float("inf"), 0.0, 0
    while n < repeat or total < min_time:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total, n = min(best, dt), total + dt, n + 1
        if n >= 50:
            break
    return best


def matmul_flops(n: int = 2048, repeat: int = 5) -> float:
    """Measured float32 FLOP/s of an ``n x n @ n x n`` product (best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / best_time(lambda: a @ b, repeat)


def bench_gallery(g: int, args: argparse.Namespace, peak: float) -> list[dict]:
    """Time both searches on one random unit-norm gallery of ``g`` rows; print one line per batch size."""
    keys = torch.nn.functional.normalize(torch.randn(g, args.dim), dim=1)
    rows = []
    for b in args.batches:
        q = torch.nn.functional.normalize(torch.randn(b, args.dim), dim=1)
        mem_c, (_, i_c) = peak_extra_mb(lambda q=q: chunked_topk(q, keys, args.k, args.chunk))
        t_c = best_time(lambda q=q: chunked_topk(q, keys, args.k, args.chunk), repeat=3, min_time=1.0)
        nl = min(b, args.loop_queries)
        ql = q[:nl]
        mem_l, (_, i_l) = peak_extra_mb(lambda ql=ql: loop_topk(ql, keys, args.k))
        t_l = best_time(lambda ql=ql: loop_topk(ql, keys, args.k), repeat=2, min_time=1.0)
        same = bool(torch.equal(i_c[:nl], i_l))
        qps_c, qps_l = b / t_c, nl / t_l
        flops = 2.0 * b * g * args.dim / t_c
        rows.append(
            {
                "gallery": g,
                "dim": args.dim,
                "batch": b,
                "k": args.k,
                "chunked_qps": qps_c,
                "loop_qps": qps_l,
                "speedup": qps_c / qps_l,
                "chunked_peak_extra_mb": mem_c,
                "loop_peak_extra_mb": mem_l,
                "gallery_mb": keys.numel() * 4 / 2**20,
                "gflops": flops / 1e9,
                "fraction_of_matmul_peak": flops / peak,
                "same_neighbours": same,
                "loop_queries_timed": nl,
            }
        )
        print(
            f"{g:>9,} {b:>5} | {qps_c:>11,.1f} {qps_l:>9,.1f} {qps_c / qps_l:>7.1f}x | "
            f"{mem_c:>8.0f} {mem_l:>8.0f} | {flops / 1e9:>7.1f} {flops / peak:>7.1%}"
            + ("" if same else "  (neighbours differ!)"),
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=512, help="embedding size (GeoCLIP: 512)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--loop-queries", type=int, default=8, help="queries timed for the per-query loop")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "retrieval.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    peak = matmul_flops()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} threads; "
        f"measured float32 matmul: {peak / 1e9:.0f} GFLOP/s (2048^3)"
    )
    rows = []
    header = (
        f"{'gallery':>9} {'batch':>5} | {'chunked q/s':>11} {'loop q/s':>9} {'speed-up':>8} | "
        f"{'peak +MB':>8} {'loop +MB':>8} | {'GFLOP/s':>7} {'of peak':>7}"
    )
    print(header)
    print("-" * len(header))
    for g in args.sizes:
        rows.extend(bench_gallery(g, args, peak))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from geograph.utils.atomic import atomic_write_text

    atomic_write_text(
        out, json.dumps({"matmul_gflops": peak / 1e9, "threads": threads, "rows": rows}, indent=1)
    )
    print(
        f"gallery memory: {args.dim * 4 * 100_000 / 2**20:.0f} MB per 100K rows (float32, dim {args.dim}); "
        f"results in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
