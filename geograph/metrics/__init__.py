"""geograph.metrics."""
