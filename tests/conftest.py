"""Shared test setup: quiet MLflow progress bars, one torch thread.

The test graphs are tiny: a second intra-op thread buys nothing there, and on a busy 2-core
machine OpenMP's spinning threads slow every test down many times over.
"""

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import torch  # noqa: E402

torch.set_num_threads(1)
