"""geograph.data."""
