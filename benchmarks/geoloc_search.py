"""Exact against approximate gallery search in a trained text-to-GPS geolocator, end to end.

    .venv/bin/python benchmarks/geoloc_search.py                    # 3 epochs, galleries train + geoclip
    .venv/bin/python benchmarks/geoloc_search.py --nprobe 4 16 64 --galleries geoclip

Trains ``experiments/geolocate_text.yaml`` (GeoNames cities, MiniLM text embeddings, GeoCLIP's
pretrained location encoder, RANGE keys, kNN fusion; ``--epochs`` overrides its epochs) once,
logs it to an MLflow store under ``--out-dir``, reads the logged model back, and predicts the test
split's texts against each gallery (``train``: the training cities; ``geoclip``: its 100K GPS
points) with the exact search and with a FAISS IVF index at each ``--nprobe``
(``predict.search: ivf``; needs ``faiss-cpu``). Per row: the index build time, the search time
and the whole prediction's time per 1,000 queries (search, KDE, fusion), the median error and
the accuracy within 1 / 25 / 200 / 750 / 2500 km. The exact search runs first and last, so a
drift in the machine's speed shows. Results go to ``<out-dir>/geoloc_search.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "experiments" / "geolocate_text.yaml"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--galleries", nargs="+", default=["train", "geoclip"])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "out" / "geoloc_search"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hostinfo import hardware_line

    from geograph.config import apply_overrides, load_config_file
    from geograph.geolocate.config import GeolocateConfig
    from geograph.geolocate.data import prepare
    from geograph.geolocate.predict import load_logged_geolocator
    from geograph.geolocate.run import run_from_config
    from geograph.metrics.geo import geo_metrics
    from geograph.retrieval.ann import SearchOptions
    from geograph.utils.atomic import atomic_write_text

    hw = hardware_line(f"torch {torch.__version__}", f"{args.threads} torch thread(s)")
    print(hw, flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out.resolve() / 'mlflow.db'}"
    sets = [f"train.epochs={args.epochs}", "tracking.log_plots=false", "tracking.experiment=geoloc_search"]
    cfg = apply_overrides(load_config_file(args.config), sets)
    t = time.perf_counter()
    run_id = run_from_config(cfg, tracking_uri=uri)["run_id"]
    print(f"trained run {run_id} in {time.perf_counter() - t:.0f} s", flush=True)
    geo = load_logged_geolocator(run_id, tracking_uri=uri)
    queries, latlon = prepare(GeolocateConfig.from_dict(cfg)).part("test")
    n = len(queries)
    searches = [SearchOptions(), *(SearchOptions("ivf", 0, p) for p in args.nprobe), SearchOptions()]
    rows = []
    for gallery in args.galleries:
        pred = geo.with_gallery(gallery)
        for opts in searches:
            pred.search_options = opts
            t = time.perf_counter()
            pred.search(queries[:1])  # builds the index (ivf)
            t_build = time.perf_counter() - t
            t = time.perf_counter()
            pred.search(queries)
            t_search = time.perf_counter() - t
            t = time.perf_counter()
            p = pred.predict(queries)
            t_pred = time.perf_counter() - t
            m = geo_metrics(p.latlon, latlon)
            row = {
                "gallery": gallery,
                "gallery_size": len(pred.gallery),
                "search": opts.method,
                "nprobe": opts.nprobe if opts.method == "ivf" else None,
                "build_s": t_build,
                "search_ms_per_1k": 1e6 * t_search / n,
                "predict_ms_per_1k": 1e6 * t_pred / n,
                **{k: float(v) for k, v in m.items()},
            }
            rows.append(row)
            label = "exact" if opts.method == "exact" else f"ivf nprobe {opts.nprobe}"
            print(
                f"{gallery} ({len(pred.gallery):,} points), {label}: build {t_build:.1f} s, search "
                f"{row['search_ms_per_1k']:,.0f} ms / 1K queries, predict {row['predict_ms_per_1k']:,.0f} ms / 1K, "
                f"median {m['median_km']:.1f} km, acc@25/200/750 km {m['acc_25km']:.4f} / {m['acc_200km']:.4f} / "
                f"{m['acc_750km']:.4f}",
                flush=True,
            )
    atomic_write_text(
        out / "geoloc_search.json",
        json.dumps({"hardware": hw, "run_id": run_id, "test_queries": n, "rows": rows}, indent=1),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
