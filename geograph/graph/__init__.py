"""geograph.graph."""
