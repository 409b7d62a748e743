"""How far can co-visitation metrics go on the embedded world? Oracles next to gravity.

The embedded world is generated from a known process (``geograph.data.synthetic``), so the
true expected co-visitors ``lambda_ij`` of *any* POI pair can be computed from its hidden
quantities (:class:`~geograph.data.synthetic.GroundTruth`: masses, latents, brand effects, the
NAICS affinity ``A``). For each protocol and seed this script runs ``prepare`` of the given
config (the same split, sampled zero pairs and ranking candidates the models are scored on),
fits the gravity baseline, and scores the same test set with two oracles:

* **lambda oracle**: the true ``log lambda_ij`` of every candidate, the rows and the sampled
  non-visited POIs alike: a model that knows the generative law perfectly but not which pairs
  the data set happens to list.
* **row oracle**: the true ``log lambda_ij`` for co-visit rows and -inf for pairs that are not
  rows (sampled zeros and ranking candidates, whose label is 0 by construction): the law *and*
  the list. Only the negative-binomial noise is left.

R² of an oracle comes from a linear map of its score (``[log lambda, lambda]``, the -inf of
non-rows as a separate indicator) fitted on the training pairs, the same way a model is fitted
on training data. NDCG@10 and Recall@10 are computed with ``evaluate_predictions``, exactly as
for the models. The ratio columns divide by gravity's number of the same run.

    .venv/bin/python benchmarks/covisit_ceiling.py                      # edges + states, seeds 0-2
    .venv/bin/python benchmarks/covisit_ceiling.py --protocols edges --seeds 0 --rank-negatives 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geograph.constants import POI, POI_ID  # noqa: E402
from geograph.covisit.config import CovisitConfig, load_config_file  # noqa: E402
from geograph.covisit.data import prepare  # noqa: E402
from geograph.covisit.evaluate import evaluate_predictions  # noqa: E402
from geograph.covisit.train import fit  # noqa: E402
from geograph.data.synthetic import generate_world_with_truth, pair_log_rate  # noqa: E402


class TrueRates:
    """``log lambda`` of any POI pair of a generated world, by graph POI index
    (:func:`geograph.data.synthetic.pair_log_rate` after mapping graph rows to world rows)."""

    def __init__(self, world, truth, graph_poi_ids: list[str]) -> None:
        pos = {pid: i for i, pid in enumerate(world.pois[POI_ID].to_list())}
        self.row = np.array([pos[pid] for pid in graph_poi_ids])
        self.world, self.truth = world, truth

    def log_rate(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return pair_log_rate(self.world, self.truth, self.row[src], self.row[dst])


def _is_row(graph, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    ei = graph.data[POI, "covisits", POI].edge_index.numpy()
    n = graph.num_pois
    keys = np.union1d(ei[0] * n + ei[1], ei[1] * n + ei[0])
    return np.isin(src * n + dst, keys)


def _design(lr: np.ndarray, row: np.ndarray) -> np.ndarray:
    lam = np.exp(np.minimum(lr, 20.0))
    return np.column_stack([np.where(row, lr, 0.0), np.where(row, np.log1p(lam), 0.0), ~row])


def _views(prep, pred: np.ndarray, rank_pred: np.ndarray, rank_score: np.ndarray | None = None, score: np.ndarray | None = None) -> dict[str, float]:
    """R² (of ``pred``), NDCG@10 / Recall@10 with the ranking candidates (``score`` / ``rank_score``
    order them; default ``pred`` / ``rank_pred``) and NDCG@10 over the source's co-visit rows only."""
    from geograph.metrics.ranking import ranking_metrics

    m = evaluate_predictions(prep, "test", pred, rank_pred, "test")
    out = {"test_r2": m["test_r2"], "test_ndcg10": m["test_ndcg10"], "test_recall10": m["test_recall10"]}
    if score is not None:
        rm = evaluate_predictions(prep, "test", score, rank_score, "test")
        out["test_ndcg10"], out["test_recall10"] = rm["test_ndcg10"], rm["test_recall10"]
    pk = prep.split.pairs["test"]
    src, dst = pk.src.numpy(), pk.dst.numpy()
    rows = _is_row(prep.graph, src, dst)
    y = np.log1p(pk.visitors.double().numpy())
    order = pred if score is None else score
    out["rows_ndcg10"] = ranking_metrics(src[rows], y[rows], order[rows], k=10)["ndcg@10"]
    return out


def oracle_metrics(prep, rates: TrueRates) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LinearRegression

    g = prep.graph
    pk = {k: prep.split.pairs[k] for k in ("train", "test")}
    lr = {k: rates.log_rate(v.src.numpy(), v.dst.numpy()) for k, v in pk.items()}
    rows = {k: _is_row(g, v.src.numpy(), v.dst.numpy()) for k, v in pk.items()}
    y_train = np.log1p(pk["train"].visitors.double().numpy())
    rk = prep.rank["test"]
    r_lr = rates.log_rate(rk.src.numpy(), rk.dst.numpy())
    out = {}
    for name, structure in (("lambda_oracle", False), ("row_oracle", True)):
        tr_rows = rows["train"] if structure else np.ones(len(y_train), dtype=bool)
        te_rows = rows["test"] if structure else np.ones(len(lr["test"]), dtype=bool)
        reg = LinearRegression().fit(_design(lr["train"], tr_rows), y_train)
        pred = reg.predict(_design(lr["test"], te_rows))
        r_pred = reg.predict(_design(r_lr, np.full(len(r_lr), not structure)))
        # ranking only needs the order: lambda itself, or -inf for a pair that is not a row
        score = np.where(te_rows, lr["test"], -np.inf)
        r_score = r_lr if not structure else np.full(len(r_lr), -np.inf)
        out[name] = _views(prep, pred, r_pred, r_score, score)
    return out


SCORERS = ("gravity", "geograph", "lambda_oracle", "row_oracle")


def run(config: str, protocols: list[str], seeds: list[int], n_pois: int | None, rank_negatives: int | None, with_model: bool) -> list[dict]:
    from geograph.covisit.evaluate import predict_split

    base = load_config_file(config)
    results = []
    world_cache: dict = {}
    for protocol in protocols:
        for seed in seeds:
            d = json.loads(json.dumps(base))
            d["split"]["protocol"] = protocol
            d["train"]["seed"] = seed
            if n_pois:
                d["data"]["n_pois"] = n_pois
            if rank_negatives is not None:
                d["split"]["rank_negatives"] = rank_negatives
            key = (d["data"].get("n_pois", 2000), d["data"].get("world_seed", 0))
            if key not in world_cache:
                world_cache[key] = generate_world_with_truth(n_pois=key[0], seed=key[1], n_images=0)
            world, truth = world_cache[key]
            row = {"protocol": protocol, "seed": seed}
            families = [("gravity", {"family": "gravity"})] + ([("geograph", d["model"])] if with_model else [])
            for name, model in families:
                cfg = CovisitConfig.from_dict({**d, "model": model})
                prep = prepare(cfg, world=world)
                pred, r_pred = predict_split(fit(prep), prep, "test")
                row[name] = _views(prep, pred, r_pred)
            rates = TrueRates(world, truth, [str(x) for x in prep.graph.index["poi_ids"]])
            row.update(oracle_metrics(prep, rates))
            results.append(row)
            print(json.dumps(row), flush=True)
    return results


def table(results: list[dict]) -> str:
    lines = [
        "| protocol | scorer | test R² | NDCG@10 | Recall@10 | NDCG@10, rows only | R² / gravity | NDCG@10 / gravity | rows-only NDCG@10 / gravity |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    df = pl.DataFrame(
        [
            {"protocol": r["protocol"], "scorer": s, "seed": r["seed"], **r[s]}
            for r in results
            for s in SCORERS
            if s in r
        ]
    )
    for (protocol, scorer), part in df.group_by(["protocol", "scorer"], maintain_order=True):
        grav = df.filter((pl.col("protocol") == protocol) & (pl.col("scorer") == "gravity"))

        def ms(col: str, part=part) -> str:
            v = part[col].to_numpy()
            return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"

        r2r = part["test_r2"].mean() / grav["test_r2"].mean()
        nr = part["test_ndcg10"].mean() / grav["test_ndcg10"].mean()
        rr = part["rows_ndcg10"].mean() / grav["rows_ndcg10"].mean()
        lines.append(
            f"| {protocol} | {scorer} | {ms('test_r2')} | {ms('test_ndcg10')} | {ms('test_recall10')} | "
            f"{ms('rows_ndcg10')} | {r2r:.2f}x | {nr:.2f}x | {rr:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "experiments" / "covisit_naics_sage.yaml"))
    ap.add_argument("--protocols", default="edges,states")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n-pois", type=int, default=None, help="world size (default: the config's)")
    ap.add_argument("--rank-negatives", type=int, default=None, help="override split.rank_negatives")
    ap.add_argument("--no-model", action="store_true", help="skip training the config's own model")
    ap.add_argument("--report", help="write the per-run results as JSON here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    res = run(
        a.config, a.protocols.split(","), [int(s) for s in a.seeds.split(",")], a.n_pois, a.rank_negatives, not a.no_model
    )
    print(table(res))
    if a.report:
        Path(a.report).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
