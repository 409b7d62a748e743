"""Metrics: regression and ranking (co-visitation), geodesic accuracy and Recall-vs-Area (geolocation)."""

from geograph.metrics.ranking import ndcg_at_k, ranking_metrics
from geograph.metrics.regression import r2, regression_metrics

__all__ = ["r2", "regression_metrics", "ndcg_at_k", "ranking_metrics"]
