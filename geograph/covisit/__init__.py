"""Co-visitation task: how many visitors of venue A also visit venue B.

Modules, in the order a run uses them: :mod:`~geograph.covisit.config` (every default),
:mod:`~geograph.covisit.data` (world -> graph -> splits -> state groups),
:mod:`~geograph.covisit.model` (the GNN and its target scaling), :mod:`~geograph.covisit.baselines`
(gravity, gradient-boosted trees), :mod:`~geograph.covisit.train` (fitting on the shared loop),
:mod:`~geograph.covisit.evaluate`, :mod:`~geograph.covisit.predict` (saved bundles, the
predictor), :mod:`~geograph.covisit.pyfunc` (the MLflow model; ``pyfunc_model`` is its
model-from-code file), :mod:`~geograph.covisit.run` (one tracked run), plus
:mod:`~geograph.covisit.groups` (state groups), :mod:`~geograph.covisit.messages` (message
weights, the gravity fit) and :mod:`~geograph.covisit.sharded` (per-state loading). Attributes load on first access, so importing the package does not import torch.
"""

from __future__ import annotations

from geograph.utils.lazy import lazy_getattr

_LAZY = {
    "CovisitConfig": "geograph.covisit.config",
    "prepare": "geograph.covisit.data",
    "Prepared": "geograph.covisit.groups",
    "fit": "geograph.covisit.train",
    "fit_gnn": "geograph.covisit.train",
    "FitResult": "geograph.covisit.model",
    "TargetScaler": "geograph.covisit.model",
    "build_model": "geograph.covisit.model",
    "hiding_folds": "geograph.covisit.train",
    "run_from_config": "geograph.covisit.run",
    "CovisitPredictor": "geograph.covisit.predict",
}


__getattr__ = lazy_getattr(__name__, _LAZY, submodules=True)


__all__ = list(_LAZY)
