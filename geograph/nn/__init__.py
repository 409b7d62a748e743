"""geograph.nn."""
