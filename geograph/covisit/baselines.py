"""Non-graph baselines on pair features: gravity (log-linear), doubly-constrained gravity
(:mod:`~geograph.covisit.gravity_dc`) and gradient-boosted trees."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.config import CovisitConfig
from geograph.covisit.gravity_dc import DoublyConstrainedGravity
from geograph.covisit.groups import Prepared
from geograph.covisit.messages import gravity_design
from geograph.covisit.model import FitResult, TargetScaler
from geograph.data.naics import code_level
from geograph.graph.geograph_data import GeoGraph

# ----------------------------------------------------------------------------------------
# scikit-learn families: gravity and gradient-boosted trees
# ----------------------------------------------------------------------------------------


def sklearn_features_from(cfg: CovisitConfig, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor) -> np.ndarray:
    """Pair-feature matrix of the non-graph baselines.

    ``gravity`` / ``gravity_dc``: ``[log1p km, log1p mass_src, log1p mass_dst]``. ``gbt``: ``[log1p km,
    same brand, NAICS prefix depth, neighbour rank (with ``model.pair_rank``), standardised POI
    features of both ends]`` plus, with
    ``gbt_naics_level``, the NAICS codes of both ends at each level (categorical).
    """
    if cfg.model.family in ("gravity", "gravity_dc"):
        return gravity_design(cfg.model.mass_feature, graph, src, dst, pf)
    dist = np.log1p(pf[:, 0].double().numpy())
    p = graph.data[POI]
    x = p.x.double().numpy()
    rest = pf[:, 1:] if cfg.model.pair_rank else pf[:, 1:3]  # same brand, depth (, neighbour rank)
    cols = [dist[:, None], rest.double().numpy(), x[src.numpy()], x[dst.numpy()]]
    naics = p.naics_code.numpy()
    for lv in cfg.model.gbt_naics_levels:
        codes = naics_at_level(naics, lv)
        cols += [codes[src.numpy()][:, None], codes[dst.numpy()][:, None]]
    return np.concatenate(cols, axis=1)


def naics_at_level(naics: np.ndarray, level: int) -> np.ndarray:
    """Stored 6-digit NAICS codes cut to ``level`` digits, as floats; NaN (a missing category)
    where a code is shorter than ``level``: the zero padding of a short code (``311800`` for the
    industry group ``3118``) is not a finer code.

    Shapes: ``naics`` ``(N,)`` integers; returns ``(N,)`` float64.
    """
    uniq, inv = np.unique(naics, return_inverse=True)
    own = np.array([code_level(int(c)) for c in uniq], dtype=np.int64)[inv]
    out = (naics // 10 ** (6 - level)).astype(np.float64)
    out[own < level] = np.nan
    return out


MAX_CATEGORIES = 255  # HistGradientBoostingRegressor's limit on a categorical feature's cardinality


def encode_categories(codes: dict[int, np.ndarray], X: np.ndarray) -> np.ndarray:
    """NAICS code columns ``c`` -> their index in ``codes[c]``, the training codes the trees know
    as categories (an unseen code: missing)."""
    for c, uniq in codes.items():
        pos = np.searchsorted(uniq, X[:, c])
        known = (pos < len(uniq)) & (uniq[np.clip(pos, 0, len(uniq) - 1)] == X[:, c])
        X[:, c] = np.where(known, pos, np.nan)
    return X


def sklearn_features(prep: Prepared, src: Tensor, dst: Tensor, pf: Tensor) -> np.ndarray:
    return sklearn_features_from(prep.cfg, prep.graph, src, dst, pf)


def fit_sklearn(prep: Prepared) -> FitResult:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    t0 = time.perf_counter()
    tr = prep.split.pairs["train"]
    X = sklearn_features(prep, tr.src, tr.dst, prep.pair_feats["train"])
    y = torch.log1p(tr.visitors.double()).numpy()
    if prep.cfg.model.family in ("gravity", "gravity_dc"):
        est = LinearRegression().fit(X, y)
        if prep.cfg.model.family == "gravity_dc":  # its distance deterrence, balanced to POI totals
            est = DoublyConstrainedGravity.from_gravity(est.coef_, est.intercept_, prep.graph, tr.src, tr.dst,
                                                        tr.visitors, prep.cfg.model.mass_feature)
    else:
        n_code = 2 * len(prep.cfg.model.gbt_naics_levels)
        code_cols = range(X.shape[1] - n_code, X.shape[1])
        # categories must be small non-negative ints: index the NAICS codes seen in training
        known = {c: np.unique(X[:, c][~np.isnan(X[:, c])]) for c in code_cols}  # NaN: finer than the code
        cat = [c for c in code_cols if len(known[c]) <= MAX_CATEGORIES] or None
        prep_codes = {c: known[c] for c in cat or []}
        X = encode_categories(prep_codes, X)
        est = HistGradientBoostingRegressor(
            max_iter=prep.cfg.model.gbt_max_iter,
            categorical_features=cat,
            early_stopping=True,
            validation_fraction=0.1,
            random_state=prep.cfg.train.seed,
        ).fit(X, y)
        est.geograph_codes_ = prep_codes
    return FitResult(est, TargetScaler(), [], 0, time.perf_counter() - t0)


def predict_sklearn(est, prep: Prepared, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    def run(src, dst, pf):
        if len(src) == 0:
            return np.zeros(0)
        return est.predict(encode_categories(getattr(est, "geograph_codes_", {}), sklearn_features(prep, src, dst, pf)))

    pk = prep.split.pairs[split_name]
    rk = prep.rank.get(split_name)
    if isinstance(est, DoublyConstrainedGravity):  # the split's pairs and candidates balanced together
        if rk is None:
            return est.predict_log1p(prep.graph, pk.src, pk.dst, prep.pair_feats[split_name]), np.zeros(0)
        return est.predict_with_candidates(prep.graph, pk.src, pk.dst, prep.pair_feats[split_name],
                                           rk.src, rk.dst, prep.rank_feats[split_name])
    pred = run(pk.src, pk.dst, prep.pair_feats[split_name])
    rpred = run(rk.src, rk.dst, prep.rank_feats[split_name]) if rk is not None else np.zeros(0)
    return pred, rpred
