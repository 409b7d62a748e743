"""geograph.tasks."""
