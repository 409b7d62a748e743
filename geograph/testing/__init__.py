"""geograph.testing."""
