"""geograph.retrieval."""
