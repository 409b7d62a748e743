"""A trained co-visitation model, loaded from MLflow, with the lookups the analytics queries share."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import polars as pl
import torch
from scipy.spatial import cKDTree

from geograph.constants import POI, POI_ID
from geograph.errors import ConfigError, DataValidationError
from geograph.geo.sphere import chord_to_km, km_to_chord, unit_xyz

from ._checks import unknown_value_error

# ``one_thread`` sections open in any thread, and torch's thread count outside them.
_THREADS_LOCK = threading.Lock()
_inside = 0
_outside_threads = 0
_depth = threading.local()  # sections open in this thread (they may nest)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small torch work on one intra-op thread, then restore the thread count.

    The per-query graphs here are tiny (about 1K nodes): with several OpenMP threads the
    threads spin-wait for each other and a ``whatif`` took 3.5 s instead of 0.07 s
    (2 CPU cores; measured with benchmarks/queries.py).

    Safe to enter from several threads at once. ``torch.set_num_threads`` sets the calling
    thread's OpenMP count and the count a thread starts with on its first torch call; a
    plain save / restore per call let a thread that started inside another's section save
    1 and restore 1, for itself and every later thread. Here the count outside all
    sections is saved by the first to enter (under a lock, counting the sections open) and
    a thread leaving its outermost section restores that count.
    """
    global _inside, _outside_threads
    with _THREADS_LOCK:
        if _inside == 0:
            _outside_threads = torch.get_num_threads()
        _inside += 1
        _depth.n = getattr(_depth, "n", 0) + 1
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _inside -= 1
            _depth.n -= 1
            torch.set_num_threads(_outside_threads if _depth.n == 0 else 1)


MODEL_ARTIFACT = "model"  # name under which geograph.covisit.train logs the pyfunc model


def model_uri_for(run_id: str | None = None, model_uri: str | None = None) -> str:
    """``runs:/<run_id>/model`` for a run id, or ``model_uri`` as given (``models:/NAME/1``...)."""
    if (run_id is None) == (model_uri is None):
        raise ConfigError("give exactly one of a run id (--run-id) or a model URI (--model-uri)")
    if run_id is not None:
        rid = str(run_id).strip()
        if not rid or "/" in rid:
            raise ConfigError(f"run id must be an MLflow run id (32 hex characters), got {run_id!r}")
        return f"runs:/{rid}/{MODEL_ARTIFACT}"
    return str(model_uri)


class ModelContext:
    """A :class:`~geograph.covisit.predict.CovisitPredictor` plus cached lookups.

    Predictions are symmetric: the edge head scores ``(a, b)`` and ``(b, a)`` and the two
    log1p predictions are averaged, because co-visit rows are unordered pairs.

    Args:
        predictor: The loaded predictor (its graph holds the POIs the model knows).
        uri: Where it came from (for messages).
    """

    def __init__(self, predictor, uri: str = "<predictor>") -> None:
        self.predictor = predictor
        self.uri = uri
        self.graph = predictor.graph
        p = self.graph.data[POI]
        self.ids: list[str] = [str(x) for x in self.graph.index["poi_ids"]]
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.pos = p.pos.double().numpy()
        self.state_idx = p.state.numpy()
        self.states: list[str] = list(self.graph.index["states"])
        self.naics = p.naics_code.numpy()
        self._trees: dict[int, tuple[np.ndarray, cKDTree]] = {}
        self._unit: torch.Tensor | None = None

    @classmethod
    def from_mlflow(
        cls, run_id: str | None = None, model_uri: str | None = None, tracking_uri: str | None = None
    ) -> ModelContext:
        """Load the model logged by run ``run_id`` (artifact ``model``) or at ``model_uri``.

        Raises:
            ConfigError: neither or both of ``run_id`` / ``model_uri``, or a malformed URI.
            TrackingError: the run, model, version or alias does not exist.
        """
        from geograph.tracking.registry import load_model

        uri = model_uri_for(run_id, model_uri)
        pyfunc = load_model(uri, tracking_uri=tracking_uri)
        inner = pyfunc.unwrap_python_model()
        predictor = getattr(inner, "predictor", None)
        if predictor is None:
            raise ConfigError(f"{uri} is not a geograph co-visitation model (no predictor inside)")
        return cls(predictor, uri)

    def __repr__(self) -> str:
        return f"ModelContext({self.uri}, family={self.family}, pois={len(self.ids)})"

    @property
    def family(self) -> str:
        return self.predictor.family

    def require_gnn(self, what: str) -> None:
        if self.predictor.model is None:
            raise ConfigError(
                f"{what} needs a GNN model (model.family=gnn) with node embeddings; {self.uri} is a "
                f"{self.family!r} model"
            )

    # -- ids -------------------------------------------------------------------------------
    def idx(self, poi_id: str) -> int:
        j = self.index.get(str(poi_id))
        if j is None:
            raise unknown_value_error(
                f"POI id (not in the model {self.uri})", str(poi_id), pl.Series(self.ids), POI_ID
            )
        return j

    def known(self, ids: list[str]) -> np.ndarray:
        """Node index of each id, -1 where the model does not know it."""
        return np.asarray([self.index.get(str(x), -1) for x in ids], dtype=np.int64)

    def state_of(self, state: str) -> int:
        if state not in self.states:
            raise DataValidationError(
                f"state {state!r} has no POI in the model's graph (states: {', '.join(self.states)})", field="state"
            )
        return self.states.index(state)

    # -- space -----------------------------------------------------------------------------
    def _tree(self, state: int) -> tuple[np.ndarray, cKDTree]:
        if state not in self._trees:
            members = np.flatnonzero(self.state_idx == state) if state >= 0 else np.arange(len(self.ids))
            self._trees[state] = (members, cKDTree(unit_xyz(self.pos[members, 0], self.pos[members, 1])))
        return self._trees[state]

    def nearest(
        self, lat: float, lon: float, k: int, state: int = -1, radius_km: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` POIs nearest to ``(lat, lon)`` (of one state index, or all with -1).

        Returns:
            ``(indices, distances_km)`` sorted by distance.
        """
        members, tree = self._tree(state)
        if len(members) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        xyz = unit_xyz(np.array([lat]), np.array([lon]))
        ub = km_to_chord(radius_km) if radius_km else np.inf
        chord, nb = tree.query(xyz, k=min(k, len(members)), distance_upper_bound=ub)
        chord, nb = np.atleast_1d(chord[0]), np.atleast_1d(nb[0])
        ok = nb < len(members)
        km = chord_to_km(chord[ok])
        return members[nb[ok]], km

    # -- scoring ---------------------------------------------------------------------------
    def predict_log1p(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Predicted log1p(visitors) of index pairs, averaged over both orientations.

        The pairs are scored in (src, dst) order whatever order they come in: a float32 kernel
        rounds a row differently by its position in the batch (the last rows of a block take
        another path), and the callers' rows come from polars joins and group-bys, whose order
        varies from run to run, so the same query gave answers differing in the last bits.
        """
        if len(src) == 0:
            return np.zeros(0)
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        order = np.lexsort((dst, src))
        s, d = torch.as_tensor(src[order]), torch.as_tensor(dst[order])
        self.embeddings_if_gnn()  # the whole-graph pass keeps every thread
        with one_thread():
            a = self.predictor.predict_log1p(s, d)
            b = self.predictor.predict_log1p(d, s)
        out = np.empty(len(order))
        out[order] = (np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)) / 2
        return out

    def embeddings_if_gnn(self) -> None:
        if self.predictor.model is not None:
            self.predictor.embeddings()

    def embeddings(self) -> torch.Tensor:
        """POI embeddings of the whole graph (computed once by the predictor)."""
        self.require_gnn("this query")
        return self.predictor.embeddings()

    def unit_embeddings(self) -> torch.Tensor:
        """L2-normalised POI embeddings (computed once), for cosine similarity."""
        if self._unit is None:
            self._unit = torch.nn.functional.normalize(self.embeddings().float(), dim=1)
        return self._unit


def ordered_sum(col: str) -> pl.Expr:
    """Group-by sum of the float column ``col``, added in ascending order of its values.

    Polars adds a group's floats in the order its rows reach the group-by, which varies from
    run to run (parallel joins and partitions), so a plain ``sum`` of predictions changed in
    the last bits between two runs of the same query. A cumulative sum depends on the order,
    so the sort before it is kept (before a ``sum`` the optimiser drops it). Nulls are
    skipped; a group without values sums to 0.
    """
    return pl.col(col).drop_nulls().sort().cum_sum().last().fill_null(0.0)


def to_visitors(log1p: np.ndarray) -> np.ndarray:
    """Predicted log1p(visitors) -> visitors (>= 0)."""
    return np.expm1(np.clip(np.asarray(log1p, dtype=np.float64), 0, None))
