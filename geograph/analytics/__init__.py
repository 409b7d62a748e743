"""geograph.analytics."""
