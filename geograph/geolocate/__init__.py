"""Geolocation: map a query embedding (image or text) to GPS coordinates.

One lifecycle for the contrastive retrieval head and three baselines, chosen by ``method``:

- ``head``: a query MLP and a location encoder trained with InfoNCE against GPS embeddings
  (GeoCLIP, https://arxiv.org/abs/2309.16020), searched against a gallery of candidate
  coordinates; optional RANGE augmentation of the gallery keys and APPNP propagation over a
  gallery graph (:mod:`geograph.nn.propagation`); optional query-side retrieval over the
  training places, whose location embeddings are propagated over a place graph by APPNP
  (``propagation.graph_mode: fixed``) or by a GNN trained with the head (``learned``,
  :class:`~geograph.nn.place_graph_refiner.PlaceGraphRefiner`); then top-1 or a KDE mode
  over the top-k.
- ``knn``: the query's nearest training items in embedding space, KDE vote over their
  coordinates (Revisiting IM2GPS, https://arxiv.org/abs/1705.04838).
- ``cells``: coarse to fine; an MLP classifies the query into H3 geocells (haversine label
  smoothing), then kNN + KDE inside the likeliest cells (PIGEON,
  https://arxiv.org/abs/2307.05845; :class:`~geograph.retrieval.CellGeolocator`).
- ``prior``: always the weighted mode of the training coordinates (population-weighted for
  the text-places benchmark).

Data: the real text places, a world's images, or your own train / test files
(``data.source: files``; :func:`run_on_files`; ``geograph train geolocate --train F --test F``),
scored later with :func:`predict_file` (``geograph geolocate predict``).

Steps: **prepare** (load the data, split train / val / test by seed), **fit** (head only;
AdamW with a one-cycle schedule, the epoch with the best validation accuracy is kept),
**select** (inference knobs — KDE bandwidth, RANGE weight, kNN k and bandwidth — picked on
the validation split from the grids in the config), **evaluate** (test metrics with those
knobs), **log** (MLflow: the whole config, per-epoch metrics, val/test metrics, a Recall-vs-Area
plot and an error map, test predictions, and the model as a pyfunc model).

Modules: ``config`` (every default), ``data`` (prepare), ``model`` (encoder, head), ``train``
(fit on the shared loop), ``select`` (knobs on validation), ``evaluate``, ``predict`` (saved
geolocators), ``pyfunc`` (MLflow model), ``run`` (one tracked run). Attributes load on first
access, so importing the package does not import torch.
"""

from __future__ import annotations

from geograph.utils.lazy import lazy_getattr

_LAZY = {
    "GeolocateConfig": "geograph.geolocate.config",
    "apply_fast": "geograph.geolocate.config",
    "GeoData": "geograph.geolocate.data",
    "prepare": "geograph.geolocate.data",
    "FitResult": "geograph.geolocate.train",
    "fit": "geograph.geolocate.train",
    "Selected": "geograph.geolocate.select",
    "LoadedGeolocator": "geograph.geolocate.predict",
    "load_geolocator": "geograph.geolocate.predict",
    "save_geolocator": "geograph.geolocate.predict",
    "GeolocatePyfunc": "geograph.geolocate.pyfunc",
    "query_frame": "geograph.geolocate.pyfunc",
    "run_from_config": "geograph.geolocate.run",
    "run_on_files": "geograph.geolocate.run",
    "read_files": "geograph.geolocate.data",
    "load_logged_geolocator": "geograph.geolocate.predict",
    "predict_file": "geograph.geolocate.predict",
}


__getattr__ = lazy_getattr(__name__, _LAZY, submodules=True)


__all__ = list(_LAZY)
