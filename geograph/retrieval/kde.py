"""kNN + kernel density: the mode of a weighted set of candidate coordinates.

Vo, Jacobs & Hays, "Revisiting IM2GPS in the Deep Learning Era", ICCV 2017,
https://arxiv.org/abs/1705.04838 : the location estimate is the mode of a kernel density over
the query's nearest neighbours in the reference database; as ``k`` and the bandwidth shrink
this becomes plain 1-NN.
"""

from __future__ import annotations

import torch

from geograph.geo.sphere import cdist_km, latlon_to_xyz, xyz_to_latlon


@torch.no_grad()
def kde_mode(
    cand_latlon: torch.Tensor,
    weights: torch.Tensor,
    bandwidth_km: float,
    refine_steps: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mode of a Gaussian kernel density over each query's candidates.

    The density is evaluated at every candidate, ``f(c_i) = sum_j w_j exp(-d_ij^2 / 2 h^2)``
    with ``d`` the great-circle distance and ``h = bandwidth_km``; the estimate is the candidate
    of highest density, optionally moved by ``refine_steps`` spherical mean-shift steps.

    Args:
        cand_latlon: Candidate coordinates in degrees (e.g. the top-k gallery points).
        weights: Non-negative candidate weights (normalised per query here).
        bandwidth_km: Kernel bandwidth ``h`` in km (> 0).
        refine_steps: Mean-shift iterations after the argmax (default 0: answer is a candidate).

    Shapes: ``cand_latlon`` ``(Q, k, 2)``, ``weights`` ``(Q, k)``; returns the mode ``(Q, 2)``
    and a confidence ``(Q,)``: the share of the weight within the kernel around the mode,
    ``f(mode)`` in ``(0, 1]``.
    """
    if bandwidth_km <= 0:
        raise ValueError(f"bandwidth_km must be > 0, got {bandwidth_km}")
    if cand_latlon.dim() != 3 or cand_latlon.shape[-1] != 2 or weights.shape != cand_latlon.shape[:2]:
        raise ValueError(
            f"need cand_latlon (Q, k, 2) and weights (Q, k), got {tuple(cand_latlon.shape)}, {tuple(weights.shape)}"
        )
    x = latlon_to_xyz(cand_latlon.to(torch.float64))
    w = weights.to(torch.float64).clamp(min=0)
    w = w / w.sum(1, keepdim=True).clamp(min=1e-300)
    d = cdist_km(x, x)  # (Q, k, k)
    kern = torch.exp(-0.5 * (d / bandwidth_km) ** 2)
    dens = (kern * w[:, None, :]).sum(-1)  # (Q, k)
    best = dens.argmax(1)
    conf = dens.gather(1, best[:, None]).squeeze(1)
    mode = x[torch.arange(x.shape[0]), best]  # (Q, 3)
    for _ in range(refine_steps):
        dm = cdist_km(mode[:, None, :], x).squeeze(1)  # (Q, k)
        kw = w * torch.exp(-0.5 * (dm / bandwidth_km) ** 2)
        mode = torch.nn.functional.normalize((kw[:, :, None] * x).sum(1), dim=-1)
    return xyz_to_latlon(mode).to(cand_latlon.dtype), conf.to(weights.dtype)


@torch.no_grad()
def product_kde_mode(
    cand_a: torch.Tensor,
    weights_a: torch.Tensor,
    cand_b: torch.Tensor,
    weights_b: torch.Tensor,
    bandwidth_km: float,
    mix: float | list[float],
    chunk_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mode of a weighted product of two kernel densities (a geometric mixture).

    ``f(c) = f_a(c)^(1 - m) * f_b(c)^m`` with ``f_a``, ``f_b`` Gaussian kernel densities (as in
    :func:`kde_mode`, bandwidth ``h``) of two weighted candidate sets, maximised over the union
    of the candidates. With ``m = 0`` it is the mode of ``f_a`` over both sets. Used to fuse the
    retrieval head's gallery candidates with the query's kNN neighbours in embedding space
    (Revisiting IM2GPS, https://arxiv.org/abs/1705.04838): a place both agree on wins.

    Several weightings of ``a`` (temperatures) and several ``m`` are scored at once, sharing
    the kernel matrix, which is the cost.

    Args:
        cand_a: First candidate set, degrees. weights_a: its non-negative weights, one row
            per setting when 3-D.
        cand_b: Second candidate set. weights_b: its weights.
        bandwidth_km: Kernel bandwidth ``h`` in km (> 0).
        mix: The exponent ``m`` of ``f_b`` in ``[0, 1]``, or a list of them.
        chunk_size: Queries per kernel block (memory ``chunk * (ka + kb)^2`` doubles).

    Shapes: ``cand_a`` ``(Q, ka, 2)``, ``weights_a`` ``(Q, ka)`` or ``(S, Q, ka)``, ``cand_b``
    ``(Q, kb, 2)``, ``weights_b`` ``(Q, kb)``. Returns modes ``(Q, 2)`` and confidences
    ``(Q,)`` (``f(mode)``) for 2-D weights and a float ``mix``; else ``(S, M, Q, 2)`` and
    ``(S, M, Q)``.
    """
    if bandwidth_km <= 0:
        raise ValueError(f"bandwidth_km must be > 0, got {bandwidth_km}")
    mixes = [float(mix)] if isinstance(mix, (int, float)) else [float(m) for m in mix]
    if not mixes or any(not 0.0 <= m <= 1.0 for m in mixes):
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    single = weights_a.dim() == 2 and isinstance(mix, (int, float))
    wa = weights_a[None] if weights_a.dim() == 2 else weights_a
    q, ka = cand_a.shape[:2]
    if (
        cand_a.dim() != 3
        or cand_b.dim() != 3
        or cand_b.shape[0] != q
        or wa.shape[1:] != (q, ka)
        or weights_b.shape != cand_b.shape[:2]
    ):
        raise ValueError(
            "need cand_a (Q, ka, 2), weights_a (Q, ka) or (S, Q, ka), cand_b (Q, kb, 2), weights_b "
            f"(Q, kb); got {tuple(cand_a.shape)}, {tuple(weights_a.shape)}, {tuple(cand_b.shape)}, "
            f"{tuple(weights_b.shape)}"
        )
    wa = wa.to(torch.float64).clamp(min=0)
    wa = wa / wa.sum(-1, keepdim=True).clamp(min=1e-300)
    wb = weights_b.to(torch.float64).clamp(min=0)
    wb = wb / wb.sum(-1, keepdim=True).clamp(min=1e-300)
    m = torch.tensor(mixes, dtype=torch.float64)[None, :, None, None]  # (1, M, 1, 1)
    modes, confs = [], []
    for s in range(0, q, chunk_size):
        xa = latlon_to_xyz(cand_a[s : s + chunk_size].to(torch.float64))
        xb = latlon_to_xyz(cand_b[s : s + chunk_size].to(torch.float64))
        x = torch.cat([xa, xb], 1)  # (C, ka + kb, 3)
        kern = torch.exp(-0.5 * (cdist_km(x, x) / bandwidth_km) ** 2)
        fa = torch.einsum("cij,scj->sci", kern[:, :, :ka], wa[:, s : s + chunk_size])  # (S, C, K)
        fb = torch.einsum("cij,cj->ci", kern[:, :, ka:], wb[s : s + chunk_size])  # (C, K)
        la = torch.log(fa.clamp(min=1e-300))[:, None]  # (S, 1, C, K)
        lb = torch.log(fb.clamp(min=1e-300))[None, None]
        score = (1 - m) * la + m * lb  # (S, M, C, K)
        best = score.argmax(-1)  # (S, M, C)
        xs = x[None, None].expand(*best.shape, *x.shape[1:])
        modes.append(xyz_to_latlon(xs.gather(3, best[..., None, None].expand(*best.shape, 1, 3)).squeeze(3)))
        confs.append(score.gather(3, best[..., None]).squeeze(3).exp())
    mode = torch.cat(modes, 2).to(cand_a.dtype)
    conf = torch.cat(confs, 2).to(weights_a.dtype)
    if single:
        return mode[0, 0], conf[0, 0]
    return mode, conf


@torch.no_grad()
def weighted_mode(
    latlon: torch.Tensor,
    weights: torch.Tensor,
    bandwidth_km: float,
    max_candidates: int = 5000,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Mode of one weighted point set (e.g. the population-weighted prior of a training set).

    The density uses every point; it is evaluated at the ``max_candidates`` heaviest points.

    Shapes: ``latlon`` ``(N, 2)``, ``weights`` ``(N,)``; returns ``(2,)`` degrees.
    """
    x = latlon_to_xyz(latlon.to(torch.float64))
    w = weights.to(torch.float64)
    w = w / w.sum()
    cand = torch.topk(w, min(max_candidates, len(w))).indices
    best_d, best_i = -1.0, 0
    for start in range(0, len(cand), chunk_size):
        c = cand[start : start + chunk_size]
        d = cdist_km(x[c], x)
        dens = (torch.exp(-0.5 * (d / bandwidth_km) ** 2) * w[None, :]).sum(1)
        j = int(dens.argmax())
        if float(dens[j]) > best_d:
            best_d, best_i = float(dens[j]), int(c[j])
    return latlon[best_i]


__all__ = ["kde_mode", "product_kde_mode", "weighted_mode"]
