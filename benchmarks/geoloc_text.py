"""Text-to-GPS benchmark: real world cities, text embedding -> coordinates, 3 seeds.

    .venv/bin/python benchmarks/geoloc_text.py                # full table (~1 h on 2 CPU cores)
    .venv/bin/python benchmarks/geoloc_text.py --quick        # 3,000 places, 2 epochs (minutes)

Every method is fitted on the training split of a seed, its inference knobs (KDE bandwidth and
temperature, RANGE weight, kNN-fusion weight, kNN k / bandwidth / power) are picked on that seed's validation
split, and it is scored once on the held-out 20 % test split. Two validation criteria are
reported side by side, each applied to every method: the lowest median error (the config
default) and the highest mean accuracy over the five thresholds.
Each head is trained once per seed (and kept under ``benchmarks/out/heads/``, keyed by a hash
of its config, so a rerun reuses it); its propagation variants reuse it. Results are appended
to ``benchmarks/out/geoloc_text.json`` as they finish (a rerun skips finished rows) and the
Markdown table (mean ± sample std over seeds) is written to ``benchmarks/out/geoloc_text.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geograph.config import load_config_file, undot  # noqa: E402
from geograph.constants import GEO_THRESHOLDS_KM  # noqa: E402
from geograph.geolocate.config import GeolocateConfig, apply_fast  # noqa: E402
from geograph.geolocate.data import prepare  # noqa: E402
from geograph.geolocate.evaluate import evaluate  # noqa: E402
from geograph.geolocate.model import build_head, build_refiner  # noqa: E402
from geograph.geolocate.select import select_all  # noqa: E402
from geograph.geolocate.train import FitResult, fit, refined_values  # noqa: E402
from geograph.metrics.geo import threshold_key  # noqa: E402

# (row label, config overrides) -- encoders trained once per seed
ENCODERS = {
    "GeoCLIP pretrained, frozen": {"encoder": {"name": "geoclip", "pretrained": True, "finetune": False}},
    "GeoCLIP pretrained, heads fine-tuned": {
        # the capsule heads (1024 -> 512 per scale) train at encoder_lr; the frozen trunks'
        # features of the training cities are cached (a full GeoCLIP step costs ~6e10 FLOP per
        # 1,000 locations, too slow for 3 seeds on 2 CPU cores)
        "encoder": {"name": "geoclip", "pretrained": True, "finetune": "heads"},
        "train": {"encoder_lr": 1e-4, "epochs": 5},
    },
    "SatCLIP (SH L=40 + SIREN)": {
        "encoder": {"name": "satclip", "pretrained": False, "options": {"degree": 40}}
    },
    "SatCLIP (SH L=10 + SIREN)": {
        "encoder": {"name": "satclip", "pretrained": False, "options": {"degree": 10}}
    },
    # seeded Gaussian random Fourier features of the 3-D unit vector (sigmas 1 / 16 / 64) + MLP
    "Sphere RFF": {"encoder": {"name": "rff", "pretrained": False}},
    "Sinusoidal": {"encoder": {"name": "sinusoidal", "pretrained": False}},
    "H3 cell embedding (res 3)": {
        "encoder": {"name": "h3", "pretrained": False, "options": {"resolution": 3}}
    },
}
# inference variants of each trained head (config overrides); "kNN fusion" multiplies the head's
# KDE with the KDE of the query's kNN neighbours among the training texts (predict.fusion_weight)
FUSION = {"predict": {"fusion_weight": 0.75}}
HEAD_ONLY = {"predict": {"fusion_weight": 0.0}}
QUERY = {"query_weight": 1.0, "query_weight_grid": [0.5, 1.0, 2.0, 4.0]}
GRAPH = {"graph_edges": ["knn", "h3", "group"], "graph_k": 2, "graph_alpha": 0.5}
# the same graph, with a 2-layer residual SAGE GNN (width 64) refining the z_j, trained with the head
LEARNED = {
    "graph_edges": ["knn", "h3", "group"],
    "graph_mode": "learned",
    "graph_hidden": 64,
    "graph_layers": 2,
}
PROPAGATION = {
    "": {"propagation": {"range_weight": 0.0, "appnp_k": 0}, **HEAD_ONLY},
    # no refinement: the top gallery point (the KDE bandwidth grid holds top-1 only)
    " + top-1 (no refinement)": {
        "propagation": {"range_weight": 0.0, "appnp_k": 0},
        "predict": {"fusion_weight": 0.0, "kde_grid": [None]},
    },
    " + RANGE": {"propagation": {"range_weight": 1.0, "appnp_k": 0}, **HEAD_ONLY},
    " + APPNP": {"propagation": {"range_weight": 0.0, "appnp_k": 10, "appnp_alpha": 0.5}, **HEAD_ONLY},
    " + RANGE + APPNP": {
        "propagation": {"range_weight": 1.0, "appnp_k": 10, "appnp_alpha": 0.5},
        **HEAD_ONLY,
    },
    " + kNN fusion": {"propagation": {"range_weight": 0.0, "appnp_k": 0}, **FUSION},
    " + RANGE + kNN fusion": {"propagation": {"range_weight": 1.0, "appnp_k": 0}, **FUSION},
    # query-side retrieval augmentation: the query's key mixed with the location embeddings of
    # its nearest training texts; "+ graph" first propagates those over the training places
    # (text-kNN, H3 adjacency and same-country edges)
    " + query retrieval": {"propagation": {"range_weight": 0.0, "appnp_k": 0, **QUERY}, **HEAD_ONLY},
    " + query retrieval + graph": {
        "propagation": {"range_weight": 0.0, "appnp_k": 0, **QUERY, **GRAPH},
        **HEAD_ONLY,
    },
    # learned propagation: a head of its own, trained with the query retrieval over the GNN's z_j
    " + query retrieval + learned graph": {
        "propagation": {"range_weight": 0.0, "appnp_k": 0, **QUERY, **LEARNED},
        **HEAD_ONLY,
    },
    " + query retrieval + learned graph + kNN fusion": {
        "propagation": {"range_weight": 0.0, "appnp_k": 0, **QUERY, **LEARNED},
        **FUSION,
    },
    " + RANGE + query retrieval": {"propagation": {"range_weight": 1.0, "appnp_k": 0, **QUERY}, **HEAD_ONLY},
    " + query retrieval + kNN fusion": {
        "propagation": {"range_weight": 0.0, "appnp_k": 0, **QUERY},
        **FUSION,
    },
}
KNN_LABEL = "kNN in text-embedding space + KDE (Revisiting IM2GPS)"
CELLS_LABEL = "Hierarchical cells: H3 res 2 classifier, kNN + KDE in the top cells (PIGEON-style)"
BASELINES = {
    "Prior only (population-weighted mode)": {"method": "prior"},
    KNN_LABEL: {"method": "knn"},
    # coarse to fine: H3 geocells (res 2) classified from the text embedding, kNN + KDE in the top cells
    CELLS_LABEL: {"method": "cells"},
    # the same, the classifier also reading the cells of the query's 32 nearest training texts
    # (one hop of label propagation over the text-kNN graph of the places)
    CELLS_LABEL + " + neighbour cells": {"method": "cells", "cells": {"neighbours": 32}},
}


def merge(base: dict, over: dict) -> dict:
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fmt(vals: list[float], scale: float = 100.0, digits: int = 1) -> str:
    a = np.asarray(vals, dtype=np.float64) * scale
    if len(a) == 1:
        return f"{a[0]:.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def area_fmt(vals: list[float]) -> str:
    """Area in km², 2 significant digits (mean ± std over seeds; ``inf``: never reached)."""
    a = np.asarray(vals, dtype=np.float64)
    if not np.isfinite(a).all():
        return "∞"
    sig = lambda x: f"{float(f'{x:.2g}'):,.0f}"  # noqa: E731
    return sig(a[0]) if len(a) == 1 else f"{sig(a.mean())} ± {sig(a.std(ddof=1))}"


def rva_plot(rows: list[dict], areas_dir: Path, path: Path, criterion: str = "median_km") -> None:
    """One Recall-vs-Area plot of every method with stored areas (seeds pooled)."""
    from geograph.geolocate.evaluate import rva_figure
    from geograph.utils.atomic import atomic_write

    curves: dict[str, np.ndarray] = {}
    for lab in dict.fromkeys(r["label"] for r in rows if r.get("criterion") == criterion):
        parts = [
            np.load(f)
            for r in rows
            if r["label"] == lab and r.get("criterion") == criterion
            for f in [areas_dir / area_file(lab, r["seed"], criterion)]
            if f.is_file()
        ]
        if parts:
            curves[lab] = np.concatenate(parts)
    if not curves:
        return
    fig = rva_figure(curves)
    fig.set_size_inches(7.5, 4.8)
    for ax in fig.axes:
        ax.legend(loc="upper left", fontsize=6.5)
        ax.axhline(0.5, color="0.6", lw=0.6, ls="--", zorder=0)
    fig.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def area_file(label: str, seed: int, criterion: str) -> str:
    import hashlib

    return f"{hashlib.sha1(label.encode()).hexdigest()[:10]}-s{seed}-{criterion}.npy"


def table(rows: list[dict]) -> str:
    labels = list(dict.fromkeys(r["label"] for r in rows))
    head = (
        ["method"]
        + [f"{t:g} km" for t in GEO_THRESHOLDS_KM]
        + [
            "median km",
            "RvA AUC",
            "km² for 50 % recall",
            "s / 1k queries",
            "seeds",
        ]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab in labels:
        rs = [r for r in rows if r["label"] == lab]
        cells = [lab] + [fmt([r["test"][threshold_key(t)] for r in rs]) for t in GEO_THRESHOLDS_KM]
        cells.append(fmt([r["test"]["median_km"] for r in rs], 1.0, 0))
        cells.append(fmt([r["test"]["rva_auc"] for r in rs], 1.0, 3) if "rva_auc" in rs[0]["test"] else "–")
        a50 = [r["test"].get("area50_km2") for r in rs]
        cells.append(area_fmt(a50) if None not in a50 else "–")
        t1k = [r["test"].get("predict_s_per_1k") for r in rs]
        cells.append(fmt(t1k, 1.0, 2) if None not in t1k else "–")
        cells.append(str(len(rs)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED_KM = (25, 200, 750, 2500)


def paired_table(rows: list[dict], baseline: str = KNN_LABEL) -> str:
    """Percentage-point difference of every row from ``baseline`` on the same seed and
    criterion: the mean, then each seed's difference in brackets."""
    head = ["method", "criterion"] + [f"Δ {t:g} km" for t in PAIRED_KM] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    base = {(r["seed"], r["criterion"]): r["test"] for r in rows if r["label"] == baseline}
    for lab in dict.fromkeys(r["label"] for r in rows if r["label"] != baseline):
        for crit in ("median_km", "acc_mean"):
            rs = sorted(
                (
                    r
                    for r in rows
                    if r["label"] == lab and r["criterion"] == crit and (r["seed"], crit) in base
                ),
                key=lambda r: r["seed"],
            )
            if not rs:
                continue
            cells = [lab, crit]
            for t in PAIRED_KM:
                k = threshold_key(t)
                d = [100 * (r["test"][k] - base[(r["seed"], crit)][k]) for r in rs]
                cells.append(f"{np.mean(d):+.1f} (" + ", ".join(f"{x:+.1f}" for x in d) + ")")
            cells.append(str(len(rs)))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def trained_head(cfg: GeolocateConfig, data, label: str, heads_dir: Path) -> FitResult:
    """Train the head of ``cfg`` (or load it from ``heads_dir``, keyed by a hash of everything
    that shapes training: data, encoder, head and train sections and the selection criterion)."""
    key = cfg.training_key()
    path = heads_dir / f"{key}.pt"
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        head = build_head(cfg, data.query_dim, load_pretrained=False)
        head.load_state_dict(state["head"])
        head.eval()
        log(f"{label} seed {cfg.train.seed}: loaded trained head {path}")
        fr = FitResult(head, best_epoch=int(state["best_epoch"]), train_time_s=float(state["train_time_s"]))
        if "refiner" in state:  # the learned place-graph GNN trained with the head
            fr.refiner = build_refiner(cfg, head.location_encoder.out_dim, data.query_dim)
            fr.refiner.load_state_dict(state["refiner"])
            fr.query_values = refined_values(cfg, head, fr.refiner, data)
        return fr
    t0 = time.perf_counter()
    # a checkpoint every epoch beside the heads: an interrupted benchmark resumes the training
    fr = fit(
        cfg,
        data,
        checkpoint=heads_dir / "ckpt" / key / "last.pt",
        resume=True,
        on_epoch=lambda e, m: log(
            f"  {label} epoch {e}: loss {m['train_loss']:.3f} val acc_mean {m['val_acc_mean']:.4f}"
        ),
    )
    log(
        f"{label} seed {cfg.train.seed}: trained in {time.perf_counter() - t0:.0f} s (best epoch {fr.best_epoch})"
    )
    heads_dir.mkdir(parents=True, exist_ok=True)
    from geograph.utils.atomic import atomic_write

    with atomic_write(path) as tmp:
        state = {"head": fr.head.state_dict(), "best_epoch": fr.best_epoch, "train_time_s": fr.train_time_s}
        if fr.refiner is not None:
            state["refiner"] = fr.refiner.state_dict()
        torch.save(state, tmp)
    return fr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "experiments" / "geolocate_text.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "geoloc_text.json"))
    ap.add_argument("--quick", action="store_true", help="3,000 places, 2 epochs, short grids")
    ap.add_argument(
        "--only", nargs="*", default=None, help="substrings of row labels to run (=LABEL: exactly)"
    )
    ap.add_argument(
        "--heads-dir",
        default=str(ROOT / "benchmarks" / "out" / "heads"),
        help="trained heads are kept here (keyed by a config hash) and reused by reruns",
    )
    ap.add_argument(
        "--rva-plot", default=None, help="write the Recall-vs-Area curves of every row here (PNG)"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    base = undot(load_config_file(args.config))
    base.setdefault("tracking", {})
    if args.quick:
        base = merge(apply_fast(base), {"data": {"max_places": 3000}})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    areas_dir = out.parent / (out.stem + ("_quick" if args.quick else "") + "_areas")
    rows: list[dict] = json.loads(out.read_text()) if out.is_file() else []
    done = {(r["label"], r["seed"], r.get("quick", False)) for r in rows}

    def want(label: str) -> bool:
        """``--only``: substrings of labels, or ``=LABEL`` for one label exactly."""
        return args.only is None or any(
            label == s[1:] if s.startswith("=") else s.lower() in label.lower() for s in args.only
        )

    def record(label: str, seed: int, cfg: GeolocateConfig, sels: dict, extra: dict) -> None:
        from geograph.utils.atomic import atomic_write_text

        tested: dict[int, tuple] = {}  # both criteria may pick the same setting
        for criterion, sel in sels.items():
            t0 = time.perf_counter()
            if id(sel.predictor) not in tested:
                ev = evaluate(cfg, data, sel, "test")
                tested[id(sel.predictor)] = (ev[0], ev[2])
            test, area = tested[id(sel.predictor)]
            if len(area):
                areas_dir.mkdir(parents=True, exist_ok=True)
                np.save(areas_dir / area_file(label, seed, criterion), area)
            rows.append(
                {
                    "label": label,
                    "seed": seed,
                    "quick": args.quick,
                    "criterion": criterion,
                    "choice": sel.choice,
                    "val": sel.val_metrics,
                    "test": test,
                    "eval_s": time.perf_counter() - t0,
                    **extra,
                }
            )
            log(
                f"{label} seed {seed} [{criterion}]: test "
                + " / ".join(f"{100 * test[threshold_key(t)]:.1f}" for t in GEO_THRESHOLDS_KM)
                + f" median {test['median_km']:.0f} km; chosen {sel.choice}"
            )
        atomic_write_text(out, json.dumps(rows, indent=1))

    for seed in args.seeds:
        cfg0 = GeolocateConfig.from_dict(merge(base, {"train": {"seed": seed}}))
        data = prepare(cfg0)
        log(
            f"seed {seed}: {len(data.split['train'])} train / {len(data.split['val'])} val / {len(data.split['test'])} test places"
        )
        for label, over in BASELINES.items():
            if not want(label) or (label, seed, args.quick) in done:
                continue
            cfg = GeolocateConfig.from_dict(merge(base, merge(over, {"train": {"seed": seed}})))
            record(label, seed, cfg, select_all(cfg, data), {})
        for enc_label, enc_over in ENCODERS.items():
            todo = [
                p
                for p in PROPAGATION
                if want(enc_label + p) and (enc_label + p, seed, args.quick) not in done
            ]
            if not todo:
                continue
            cfg = GeolocateConfig.from_dict(merge(base, merge(enc_over, {"train": {"seed": seed}})))
            if args.quick:
                cfg.train.epochs = min(cfg.train.epochs, 2)
            # one head per training key: the learned propagation trains a head of its own
            heads: dict[str, tuple[FitResult, dict]] = {}
            for p in todo:
                pc = merge(cfg.to_dict(), PROPAGATION[p])
                c2 = GeolocateConfig.from_dict(pc)
                key = c2.training_key()
                if key not in heads:  # gallery embeddings shared by the propagation variants of a head
                    heads[key] = (trained_head(c2, data, enc_label + p, Path(args.heads_dir)), {})
                fr, parts = heads[key]
                record(
                    enc_label + p,
                    seed,
                    c2,
                    select_all(c2, data, fr, cache=parts),
                    {"train_time_s": fr.train_time_s, "best_epoch": fr.best_epoch},
                )
    rows = [r for r in rows if r.get("quick", False) == args.quick]
    md = "\n\n".join(
        f"Selected on validation by {crit}:\n\n" + table([r for r in rows if r.get("criterion") == crit])
        for crit in ("median_km", "acc_mean")
        if any(r.get("criterion") == crit for r in rows)
    )
    if any(r["label"] == KNN_LABEL for r in rows):
        md += "\n\nPaired difference from the kNN baseline (percentage points, mean and per seed):\n\n"
        md += paired_table(rows)
    from geograph.utils.atomic import atomic_write_text

    atomic_write_text(out.with_suffix(".md"), md + "\n")
    if args.rva_plot:
        rva_plot(rows, areas_dir, Path(args.rva_plot))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
