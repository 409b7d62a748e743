"""A trained co-visitation model as one self-contained bundle, a predictor, and an MLflow pyfunc.

The bundle (``bundle.pt``) holds tensors, lists, dicts and numbers only (it loads with
``torch.load(weights_only=True)`` and carries a checksum): the config, the preprocessed
graph, the fitted feature / NAICS transforms, the message edges used at evaluation, the
model weights (or regression coefficients) and the held-out pairs for re-evaluation. The
gradient-boosted baseline's scikit-learn estimator is stored beside it as ``gbt.skops``
(``skops.io``, no pickle: loading builds only the types in :data:`GBT_TRUSTED_TYPES`), and
the bundle records that file's SHA-256. geograph never unpickles a file: a bundle that still
holds the older ``gbt.joblib`` is refused with a :class:`CheckpointError` (retrain it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.config import CovisitConfig
from geograph.covisit.messages import GravityBaseline, MessageWeights
from geograph.errors import CheckpointError, DataValidationError
from geograph.graph.builder import pair_features
from geograph.graph.cache import load_checked, save_checked
from geograph.graph.geograph_data import GeoGraph
from geograph.graph.partition import StatePartitioner
from geograph.metrics import covisit_metrics
from geograph.nn.covisit_model import CovisitGNN, ModelConfig
from geograph.utils.atomic import file_sha256

BUNDLE = "bundle.pt"
GBT_FILE = "gbt.skops"
LEGACY_GBT_FILE = "gbt.joblib"  # a pickle (geograph before skops): refused, never loaded
# Everything skops.io may build from gbt.skops beyond its own safe defaults (numpy arrays,
# dicts, lists, scikit-learn estimators): a fitted HistGradientBoostingRegressor's trees, and
# the check_array partial its categorical preprocessing keeps. Anything else in the file is
# refused (skops raises before building it).
GBT_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]


def _load_gbt(folder: Path, state: dict):
    """The gradient-boosted estimator of a bundle: SHA-256 checked, then built by skops.io
    from :data:`GBT_TRUSTED_TYPES` only."""
    import skops.io as sio

    path = folder / GBT_FILE
    if not path.exists():
        if (folder / LEGACY_GBT_FILE).exists():
            raise CheckpointError(
                f"{folder / LEGACY_GBT_FILE}: this gradient-boosted model was saved as a pickle by an older "
                f"geograph, and geograph never unpickles files; train it again (geograph train covisit, "
                f"model.family=gbt) to save it as {GBT_FILE}"
            )
        raise CheckpointError(f"{folder} holds no {GBT_FILE}; the bundle's gradient-boosted model is missing")
    if file_sha256(path) != state.get("gbt_sha256"):
        raise CheckpointError(
            f"{path}: SHA-256 does not match the one recorded in {BUNDLE} (damaged, or not the file "
            f"saved with this model); train the model again"
        )
    try:
        return sio.load(path, trusted=GBT_TRUSTED_TYPES)
    except Exception as exc:  # skops' UntrustedTypesFoundException, or a file it cannot parse
        raise CheckpointError(f"{path}: cannot load the gradient-boosted model ({exc})") from exc


def save_bundle(fit_result, prep, folder: str | Path) -> Path:
    """Write the bundle of a fitted model into ``folder``; returns the folder."""
    from geograph.covisit.model import TargetScaler

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = prep.cfg
    fam = cfg.model.family
    state: dict = {
        "format": 1,
        "config": cfg.to_dict(),
        "graph": prep.graph.to_state(),
        "preprocessor": prep.pre.state_dict(),
        "message": prep.split.message["test"],
        "weight_scale": prep.weight_scale,
        "baseline": None if prep.baseline is None else {"coef": list(prep.baseline.coef), "mass_feature": prep.baseline.mass_feature},
        "groups": [gd.sub.state.split("+") for gd in prep.groups],
        "scaler": {
            "mode": fit_result.scaler.mode,
            "mean": fit_result.scaler.mean,
            "std": fit_result.scaler.std,
        },
        "eval": {
            k: {
                "src": prep.split.pairs[k].src,
                "dst": prep.split.pairs[k].dst,
                "visitors": prep.split.pairs[k].visitors,
                "sampled": ~prep.split.pairs[k].observed,
                "rank_src": prep.rank[k].src,
                "rank_dst": prep.rank[k].dst,
            }
            for k in ("val", "test")
        },
        "fingerprint": prep.fingerprint,
    }
    if fam == "gnn":
        state["model"] = {k: v.detach().cpu() for k, v in fit_result.model.state_dict().items()}
        state["dims"] = {
            "poi_in": fit_result.model.poi_in,
            "cell_in": fit_result.model.cell_in,
            "image_in": fit_result.model.image_in,
            "naics_sizes": list(fit_result.model.naics.num_embeddings)
            if fit_result.model.naics is not None
            else [prep.pre.vocab.sizes()[lv] for lv in prep.pre.vocab.levels],
            "n_brands": fit_result.model.n_brands,
        }
    elif fam == "gravity":
        est = fit_result.model
        state["gravity"] = {"coef": torch.tensor(est.coef_), "intercept": float(est.intercept_)}
    elif fam == "gravity_dc":
        state["gravity_dc"] = fit_result.model.state()  # deterrence and POI totals: rebalanced per request
    else:
        import skops.io as sio

        from geograph.utils.atomic import atomic_write

        with atomic_write(folder / GBT_FILE, suffix=".skops") as tmp:
            sio.dump(fit_result.model, tmp)
        (folder / LEGACY_GBT_FILE).unlink(missing_ok=True)
        state["gbt_sha256"] = file_sha256(folder / GBT_FILE)
    assert isinstance(fit_result.scaler, TargetScaler)
    save_checked(state, folder / BUNDLE)
    return folder


class CovisitPredictor:
    """Score POI pairs with a trained co-visitation model.

    Example:
        >>> pred = CovisitPredictor.load("path/to/model_folder")
        >>> pred.predict_ids(["poi-1"], ["poi-2"])   # predicted visitors
    """

    def __init__(self, state: dict, gbt=None) -> None:
        from geograph.covisit.model import TargetScaler
        from geograph.graph.transforms import FeaturePreprocessor

        config = dict(state["config"])
        # models saved before the neighbour-rank pair feature and the residual inputs existed
        # were trained without them
        config["model"] = {"pair_rank": False, "residual_features": False, **config.get("model", {})}
        # train.resume was a flag before checkpoints were keyed by run id; a saved model resumes nothing
        config["train"] = {**config.get("train", {}), "resume": None}
        self.cfg = CovisitConfig.from_dict(config)
        self.graph = GeoGraph.from_state(state["graph"])
        self.pre = FeaturePreprocessor.from_state_dict(state["preprocessor"])
        self.message: Tensor = state["message"]
        self.weight_scale = float(state["weight_scale"])
        self.groups: list[list[str]] = state["groups"]
        self.scaler = TargetScaler(**state["scaler"])
        self.eval_pairs = state["eval"]
        self.fingerprint = state.get("fingerprint")
        self.family = self.cfg.model.family
        b = state.get("baseline")
        self._weights = MessageWeights(self.graph, self.weight_scale, GravityBaseline(**b) if b else None)
        self._pos = {pid: i for i, pid in enumerate(self.graph.index["poi_ids"])}
        self._emb: Tensor | None = None
        self.model: CovisitGNN | None = None
        self.gravity = state.get("gravity")
        self.gravity_dc = None
        if self.family == "gravity_dc":
            from geograph.covisit.gravity_dc import DoublyConstrainedGravity

            if "gravity_dc" not in state:
                raise CheckpointError("this bundle of model.family 'gravity_dc' holds no 'gravity_dc' state "
                                      "(deterrence and POI totals); train the model again")
            self.gravity_dc = DoublyConstrainedGravity.from_state(state["gravity_dc"])
        self.gbt = gbt
        if self.family == "gnn":
            d = state["dims"]
            self.model = CovisitGNN(
                ModelConfig.from_dict(config["model"]),
                d["poi_in"],
                d["cell_in"],
                d["image_in"],
                d["naics_sizes"],
                d.get("n_brands", 2),
            )
            self.model.load_state_dict(state["model"])
            self.model.eval()

    @classmethod
    def load(cls, folder: str | Path) -> CovisitPredictor:
        """Load from a folder written by :func:`save_bundle` (checksum verified)."""
        folder = Path(folder)
        if not (folder / BUNDLE).exists():
            raise CheckpointError(f"{folder} holds no {BUNDLE}; is it a geograph co-visitation model?")
        state = load_checked(folder / BUNDLE)
        family = state.get("config", {}).get("model", {}).get("family")
        gbt = _load_gbt(folder, state) if family == "gbt" else None
        return cls(state, gbt)

    def __repr__(self) -> str:
        return f"CovisitPredictor(family={self.family}, pois={self.graph.num_pois}, name={self.cfg.name})"

    # -- ids ---------------------------------------------------------------------------
    def index_of(self, ids) -> Tensor:
        """Node indices of POI ids; unknown ids raise naming the first one."""
        out = []
        for i, pid in enumerate(ids):
            j = self._pos.get(str(pid))
            if j is None:
                raise DataValidationError(f"unknown POI id {pid!r}", row=i, field="poi_id")
            out.append(j)
        return torch.tensor(out, dtype=torch.long)

    # -- scoring -----------------------------------------------------------------------
    @torch.no_grad()
    def embeddings(self) -> Tensor:
        """Node embeddings of every POI (GNN family), computed state group by state group."""
        if self.model is None:
            raise ValueError(f"model family {self.family!r} has no node embeddings")
        if self._emb is not None:
            return self._emb
        g = self.graph
        part = StatePartitioner(g, self.cfg.graph.halo_km)
        state = g.data[POI].state
        msg_state = state[self.message[0]]
        emb = None
        for names in self.groups:
            sidx = torch.tensor([part.states.index(x) for x in names])
            m = self.message[:, torch.isin(msg_state, sidx)]
            sub = part.subgraph(names, m[1])
            local = sub.to_local(m[0], m[1])
            w = self._weights(m) if self.cfg.model.weighted_covisits else None
            h = self.model.encode(sub.data, local, w)
            if emb is None:
                emb = torch.zeros(g.num_pois, h.size(1))
            core = sub.core_mask
            emb[sub.poi_index[core]] = h[core]
        self._emb = emb
        return emb

    @torch.no_grad()
    def predict_log1p(self, src: Tensor, dst: Tensor) -> np.ndarray:
        """Predicted log1p(visitors) for index pairs.

        ``gravity_dc``: the pairs are balanced together (each origin's flows over them sum to
        its total), so a pair's prediction depends on the others requested with it.
        """
        if len(src) == 0:
            return np.zeros(0)
        pf = pair_features(self.graph, src, dst)
        if self.family == "gravity_dc":
            return self.gravity_dc.predict_log1p(self.graph, src, dst, pf)
        if self.family == "gnn":
            h = self.embeddings()
            out = self.model.head.score(h, src, dst, self.model.pair_inputs(pf))
            if self.cfg.train.loss == "poisson":
                return torch.log1p(torch.exp(out.clamp(max=20))).double().numpy()
            return self.scaler.decode(out).double().numpy()
        from geograph.covisit.baselines import encode_categories, sklearn_features_from

        X = sklearn_features_from(self.cfg, self.graph, src, dst, pf)
        if self.family == "gravity":
            return X @ self.gravity["coef"].double().numpy() + self.gravity["intercept"]
        return self.gbt.predict(encode_categories(getattr(self.gbt, "geograph_codes_", {}), X))

    def predict_ids(self, src_ids, dst_ids) -> np.ndarray:
        """Predicted visitors (counts, >= 0) for POI id pairs."""
        p = self.predict_log1p(self.index_of(src_ids), self.index_of(dst_ids))
        return np.expm1(np.clip(p, 0, None))

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Re-score the stored held-out pairs of ``split`` (``val`` or ``test``)."""
        e = self.eval_pairs[split]
        if self.family == "gravity_dc":  # pairs and candidates balanced together, as in training
            both = self.predict_log1p(torch.cat([e["src"], e["rank_src"]]), torch.cat([e["dst"], e["rank_dst"]]))
            pred, rpred = both[: len(e["src"])], both[len(e["src"]):]
        else:
            pred = self.predict_log1p(e["src"], e["dst"])
            rpred = self.predict_log1p(e["rank_src"], e["rank_dst"])
        # bundles saved before sampled zeros were marked: every pair counts as observed
        sampled = e.get("sampled", torch.zeros(len(e["src"]), dtype=torch.bool))
        return covisit_metrics(e["src"].numpy(), e["visitors"].numpy(), pred, (~sampled).numpy(),
                               e["rank_src"].numpy(), rpred, split)
