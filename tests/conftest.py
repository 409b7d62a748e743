"""Shared test setup: quiet MLflow progress bars, keep runs out of the repository."""

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
