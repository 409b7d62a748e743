"""Metrics: regression and ranking (co-visitation), geodesic accuracy and Recall-vs-Area (geolocation)."""

from geograph.metrics.covisit import covisit_metrics
from geograph.metrics.flows import common_part_of_commuters, origin_jsd
from geograph.metrics.ranking import ndcg_at_k, ranking_means, ranking_metrics, ranking_per_source
from geograph.metrics.regression import r2, regression_metrics

__all__ = [
    "common_part_of_commuters",
    "covisit_metrics",
    "ndcg_at_k",
    "origin_jsd",
    "r2",
    "ranking_means",
    "ranking_metrics",
    "ranking_per_source",
    "regression_metrics",
]
