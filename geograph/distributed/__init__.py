"""geograph.distributed."""
