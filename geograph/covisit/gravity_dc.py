"""Doubly-constrained gravity baseline (``model.family: gravity_dc``).

The flow of a pair is ``T_ij = A_i B_j f(d_ij)`` with the balancing factors ``A_i`` / ``B_j``
chosen so that every origin's predicted flows sum to its total ``O_i`` and every
destination's to its total ``D_j`` (Wilson, A. G. (1967) "A statistical theory of spatial
distribution models", Transportation Research 1, 253-269, doi:10.1016/0041-1647(67)90035-4;
the factors are found by iterative proportional fitting, the Furness method).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geograph.constants import POI
from geograph.covisit.messages import log_mass, resolve_mass_feature
from geograph.errors import ConfigError
from geograph.geo import haversine_km
from geograph.graph.geograph_data import GeoGraph

IPF_MAX_ITER = 50  # Furness sweeps at most (each: columns, then rows)
IPF_TOL = 1e-6  # stop once every column sum is within this relative error of its target


@dataclass
class BalanceInfo:
    """How the last balancing ended: sweeps run, the largest relative column error left
    (rows are matched exactly at exit), and whether it fell under the tolerance."""

    iterations: int
    max_col_error: float
    converged: bool


def _totals_regression(lm: np.ndarray, total: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Totals of every POI: the observed ``total`` where ``known``, else ``expm1`` of the
    least-squares fit ``log1p(total) ~ a + b log1p(mass)`` over the known POIs (clipped at 0)."""
    out = total.astype(np.float64).copy()
    if known.all() or not known.any():
        return out
    a = np.stack([np.ones(int(known.sum())), lm[known]], axis=1)
    coef = np.linalg.lstsq(a, np.log1p(total[known]), rcond=None)[0]  # minimum norm if degenerate
    out[~known] = np.clip(np.expm1(coef[0] + coef[1] * lm[~known]), 0, None)
    return out


def furness(rows: np.ndarray, cols: np.ndarray, f: np.ndarray, o: np.ndarray, d: np.ndarray,
            max_iter: int = IPF_MAX_ITER, tol: float = IPF_TOL) -> tuple[np.ndarray, BalanceInfo]:
    """Iterative proportional fitting of ``T = A[rows] * B[cols] * f`` on a sparse pair set.

    Each sweep sets ``B = d / (column sums of A f)`` and then ``A = o / (row sums of B f)``,
    so row sums equal ``o`` exactly on return; it stops when every column sum is within
    ``tol`` (relative) of ``d`` or after ``max_iter`` sweeps. A row or column whose pairs all
    carry zero weight gets factor 0. Margins that no factors can meet (a sparse pair set where
    a destination's total exceeds what its few origins can send) do not converge: the sweeps
    stop at ``max_iter``, or earlier at the last sweep whose factors stayed finite. Deterministic.

    Args:
        rows: Row index of each pair, ``(E,)`` in ``0..len(o)-1``.
        cols: Column index of each pair, ``(E,)`` in ``0..len(d)-1``.
        f: Deterrence of each pair, ``(E,)`` positive.
        o: Row targets ``(R,)``.
        d: Column targets ``(C,)``; should sum to what ``o`` sums to within each connected block.
        max_iter: Sweeps at most (default :data:`IPF_MAX_ITER`).
        tol: Relative tolerance on the column sums (default :data:`IPF_TOL`).

    Returns:
        ``T`` per pair ``(E,)`` and a :class:`BalanceInfo`.
    """
    a, b, info = _sweeps(
        lambda a: np.bincount(cols, weights=a[rows] * f, minlength=len(d)),
        lambda b: np.bincount(rows, weights=b[cols] * f, minlength=len(o)),
        lambda a, b: np.bincount(cols, weights=a[rows] * b[cols] * f, minlength=len(d)),
        o, d, max_iter, tol,
    )
    return a[rows] * b[cols] * f, info


def _sweeps(col_sums, row_sums, flow_col_sums, o: np.ndarray, d: np.ndarray, max_iter: int,
            tol: float) -> tuple[np.ndarray, np.ndarray, BalanceInfo]:
    """The Furness sweeps of :func:`furness` and :func:`furness_dense`, given how their pairs
    sum: ``col_sums(A)`` the column sums of ``A_i f_ij``, ``row_sums(B)`` the row sums of
    ``B_j f_ij``, ``flow_col_sums(A, B)`` the column sums of ``T_ij = A_i B_j f_ij``.

    Returns the factors ``A``, ``B`` and a :class:`BalanceInfo`.
    """
    a = np.ones(len(o))
    b = np.ones(len(d))
    err, it = np.inf, 0
    live = d > 0
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
            cs = col_sums(a)
            b_new = np.divide(d, cs, out=np.zeros(len(d)), where=cs > 0)
            rs = row_sums(b_new)
            a_new = np.divide(o, rs, out=np.zeros(len(o)), where=rs > 0)
            cs = flow_col_sums(a_new, b_new)  # f >= 0: an overflowed flow shows in its column's sum
            if it > 1 and not (np.isfinite(cs).all() and np.isfinite(a_new).all()):
                break  # infeasible margins drove a factor to overflow: keep the last finite sweep
            a, b = a_new, b_new
            err = float(np.max(np.abs(cs[live] - d[live]) / d[live], initial=0.0))
            if err <= tol:
                break
    return a, b, BalanceInfo(it, err, err <= tol)


def furness_dense(f: np.ndarray, o: np.ndarray, d: np.ndarray, max_iter: int = IPF_MAX_ITER,
                  tol: float = IPF_TOL) -> tuple[np.ndarray, np.ndarray, BalanceInfo]:
    """:func:`furness` on a complete block: the pairs are every cell of the dense ``(R, C)``
    deterrence matrix ``f`` (a zero cell carries no flow, as the diagonal of a state's block).

    The sweeps are the same; each column or row sum is one matrix-vector product over ``f``
    instead of gathers and ``bincount`` over ``R C`` listed pairs, and no pair lists are held:
    a state of 16,861 POIs needs its 2.3 GB block, not about 40 bytes per pair.

    Returns:
        The factors ``A`` ``(R,)`` and ``B`` ``(C,)`` (``T_ij = A_i B_j f_ij``) and a
        :class:`BalanceInfo`.
    """
    return _sweeps(lambda a: a @ f, lambda b: f @ b, lambda a, b: b * (a @ f), o, d, max_iter, tol)


MAX_BLOCK_POIS = 40_000
"""Most POIs of a state that ``gravity_dc`` balances: its block is ``m x m`` float64 (12.8 GB
at 40,000)."""


def _deterrence_block(lat: np.ndarray, lon: np.ndarray, coef: float, rows: int = 1024) -> np.ndarray:
    """``(1 + km)^coef`` between every two of ``m`` points, 0 on the diagonal; ``(m, m)``,
    computed ``rows`` rows at a time (no ``m x m`` temporaries besides the result)."""
    m = len(lat)
    out = np.empty((m, m))
    for i in range(0, m, rows):
        j = slice(i, min(i + rows, m))
        km = haversine_km(lat[j, None], lon[j, None], lat[None, :], lon[None, :])
        out[j] = np.exp(coef * np.log1p(km))
    np.fill_diagonal(out, 0.0)
    return out


@dataclass
class DoublyConstrainedGravity:
    """Doubly-constrained gravity model balanced over the pairs it is asked to score.

    Fitting: the distance deterrence ``f(d) = (1 + km)^c`` takes ``c``, the distance
    coefficient of the log-linear gravity baseline (``log1p(visitors) ~ log1p km +
    log1p mass_src + log1p mass_dst`` on the training pairs). ``O_i`` (``D_j``) is a POI's
    observed total of training visitors as a source (destination) when it has training rows in
    that role; a POI with none (a held-out POI) gets ``expm1(a + b log1p(mass))``, a log-log
    regression of the totals on the POI's mass feature fitted over the training POIs.

    Scoring: each state is one complete block: every POI of the state is an origin with total
    ``O_i`` and a destination with total ``D_j`` (rescaled to sum to the origins' total), and
    :func:`furness_dense` balances ``T_ij = A_i B_j f(d_ij)`` over all ordered pairs of its POIs.
    Predictions are ``log1p(T_ij)``, the same whatever other pairs are scored with them. The
    block of a state of ``m`` POIs has ``m (m - 1)`` cells, held as one ``m x m`` float64
    matrix (2.3 GB for 16,861 POIs; a state above :data:`MAX_BLOCK_POIS` is refused with a
    :class:`~geograph.errors.ConfigError`): a baseline for states of thousands, not hundreds of
    thousands, of POIs. Wilson (1967), doi:10.1016/0041-1647(67)90035-4.

    Attributes:
        coef: Gravity coefficients ``[log1p km, log1p mass_src, log1p mass_dst]``.
        intercept: Gravity intercept (kept for reference; balancing absorbs it).
        origin_total: ``O_i`` of every POI, ``(N,)``.
        dest_total: ``D_j`` of every POI, ``(N,)``.
        mass_feature: POI feature used as mass.
        max_iter: Furness sweeps at most.
        tol: Relative tolerance of the balancing.
    """

    coef: np.ndarray
    intercept: float
    origin_total: np.ndarray
    dest_total: np.ndarray
    mass_feature: str = "visits"
    max_iter: int = IPF_MAX_ITER
    tol: float = IPF_TOL

    def __post_init__(self) -> None:
        self.last_balance: BalanceInfo | None = None

    def __repr__(self) -> str:
        return (f"DoublyConstrainedGravity(distance_exponent={float(self.coef[0]):.3f}, "
                f"pois={len(self.origin_total)}, mass_feature={self.mass_feature!r})")

    @classmethod
    def from_gravity(cls, coef: np.ndarray, intercept: float, graph: GeoGraph, src: Tensor, dst: Tensor,
                     visitors: Tensor, mass_feature: str = "visits") -> DoublyConstrainedGravity:
        """Totals of every POI from the training pairs ``(src, dst, visitors)`` around a fitted
        gravity regression (``coef`` / ``intercept``)."""
        n = graph.num_pois
        vis = visitors.double().numpy()
        s, t = src.numpy(), dst.numpy()
        mass_feature = resolve_mass_feature(mass_feature, graph)  # a saved model names its column
        lm = log_mass(mass_feature, graph, torch.arange(n))
        o = _totals_regression(lm, np.bincount(s, weights=vis, minlength=n), np.bincount(s, minlength=n) > 0)
        d = _totals_regression(lm, np.bincount(t, weights=vis, minlength=n), np.bincount(t, minlength=n) > 0)
        return cls(np.asarray(coef, dtype=np.float64), float(intercept), o, d, mass_feature)

    def state(self) -> dict:
        """Tensors and numbers only (what a saved bundle stores)."""
        return {"coef": torch.from_numpy(self.coef.copy()), "intercept": self.intercept,
                "origin_total": torch.from_numpy(self.origin_total.copy()),
                "dest_total": torch.from_numpy(self.dest_total.copy()),
                "mass_feature": self.mass_feature, "max_iter": self.max_iter, "tol": self.tol}

    @classmethod
    def from_state(cls, state: dict) -> DoublyConstrainedGravity:
        return cls(state["coef"].double().numpy(), float(state["intercept"]), state["origin_total"].double().numpy(),
                   state["dest_total"].double().numpy(), state["mass_feature"], int(state["max_iter"]), float(state["tol"]))

    def flows(self, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor | None = None) -> np.ndarray:
        """Balanced flows ``T`` of the pairs ``(src, dst)`` (each ``(E,)``).

        Every state holding a requested origin is balanced as one complete block (each of its
        POIs an origin and a destination of every other), so a pair's flow does not depend on
        which other pairs are requested. A pair whose ends lie in different states gets 0.
        ``pf`` is accepted for the common predictor signature and not needed.
        """
        del pf
        out = np.zeros(len(src))
        if len(src) == 0:
            self.last_balance = BalanceInfo(0, 0.0, True)
            return out
        p = graph.data[POI]
        state = p.state.numpy()
        pos = p.pos.double().numpy()
        s, t = src.numpy(), dst.numpy()
        worst, iters, ok = 0.0, 0, True
        names = graph.index.get("states", [])
        for st in np.unique(state[s]):
            members = np.flatnonzero(state == st)
            m = len(members)
            if m < 2:
                continue
            if m > MAX_BLOCK_POIS:
                name = names[st] if st < len(names) else str(st)
                raise ConfigError(
                    f"model.family gravity_dc balances each state as one block of POIs x POIs flows; state "
                    f"{name} has {m:,} POIs ({8 * m * m / 1e9:,.1f} GB for its block, at most {MAX_BLOCK_POIS:,} "
                    f"POIs): use model.family gravity (not balanced) or gbt for worlds with states this large"
                )
            f = _deterrence_block(pos[members, 0], pos[members, 1], float(self.coef[0]))
            o = self.origin_total[members]
            d = self.dest_total[members]
            d = d if d.sum() > 0 else np.ones(m)  # no known inflow in the state: spread evenly
            d = d * o.sum() / d.sum()
            fa, fb, info = furness_dense(f, o, d, self.max_iter, self.tol)
            worst, iters, ok = max(worst, info.max_col_error), max(iters, info.iterations), ok and info.converged
            local = np.full(graph.num_pois, -1, dtype=np.int64)
            local[members] = np.arange(m)
            sel = (state[s] == st) & (local[t] >= 0)
            li, lj = local[s[sel]], local[t[sel]]
            out[np.flatnonzero(sel)] = np.where(li != lj, fa[li] * fb[lj] * f[li, lj], 0.0)
            del f
        self.last_balance = BalanceInfo(iters, worst, ok)
        return out

    def predict_log1p(self, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor | None = None) -> np.ndarray:
        """``log1p`` of :meth:`flows`."""
        return np.log1p(self.flows(graph, src, dst, pf))

    def predict_with_candidates(self, graph: GeoGraph, src: Tensor, dst: Tensor, pf: Tensor | None,
                                rank_src: Tensor, rank_dst: Tensor, rank_pf: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Predictions of the scored pairs and of the ranking candidates (one balancing pass)."""
        del pf, rank_pf
        both = self.predict_log1p(graph, torch.cat([src, rank_src]), torch.cat([dst, rank_dst]))
        return both[: len(src)], both[len(src):]
