"""Urban analytics: questions asked of the data and of trained co-visitation models.

* :func:`covisited`: top co-visited POIs of a POI (or brands of a brand), observed and predicted;
* :func:`naics_flow`: flow between NAICS categories with lift over a volume baseline;
* :func:`hotspots`: H3 cells ranked by co-visitation volume or by model residuals;
* :func:`whatif`: predicted co-visits of a hypothetical new venue;
* :func:`similar`: nearest POIs / brands in the learned embedding space;
* :mod:`~geograph.analytics.maps`: self-contained HTML maps and static PNGs.

Data come from a :class:`WorldSource` (a world folder scanned lazily with polars, or an
in-memory world); models from a :class:`ModelContext` (an MLflow run or model URI).
"""

from geograph.analytics.covisited import covisited
from geograph.analytics.hotspots import hotspots
from geograph.analytics.model_context import ModelContext
from geograph.analytics.naics_flow import flow_heatmap, naics_flow
from geograph.analytics.similar import similar
from geograph.analytics.whatif import Venue, WhatIfResult, whatif
from geograph.analytics.world_source import WorldSource

__all__ = [
    "ModelContext",
    "Venue",
    "WhatIfResult",
    "WorldSource",
    "covisited",
    "flow_heatmap",
    "hotspots",
    "naics_flow",
    "similar",
    "whatif",
]
