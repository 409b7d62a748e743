"""What a run records about where its numbers came from, and errors that name the user's files.

* Every run is tagged with torch's intra-op thread count (again when it ends, so a count set
  by the training shows), the Python version and the library versions.
* A logged model whose stored file is damaged fails to load with an error that names the file
  in the tracking store (or the model URI), not the temporary copy MLflow loaded it from.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from geograph.errors import CheckpointError, DataValidationError
from geograph.tracking import start_run
from geograph.tracking.registry import load_model, log_pyfunc_model
from geograph.tracking.tags import (
    PYTHON_VERSION_TAG,
    TAG_TORCH_THREADS,
    TAG_VERSION_PREFIX,
    TRACKED_PACKAGES,
    default_tags,
)

GOOD = b"a model's weights"


class Checked(mlflow.pyfunc.PythonModel):
    """Loads its one artifact and refuses it, naming the file, unless it holds :data:`GOOD`."""

    def load_context(self, context) -> None:
        path = Path(context.artifacts["weights"])
        data = path.read_bytes()
        if data == b"bad row":
            raise DataValidationError("not a weights file", file=path, row=0, field="weights")
        if data != GOOD:
            raise CheckpointError(f"{path} is corrupt or truncated (checksum mismatch)")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return model_input["x"] * 2.0


@pytest.fixture
def store(tmp_path: Path, empty_store_db: Path) -> str:
    shutil.copyfile(empty_store_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_runs_carry_thread_count_and_versions(store: str) -> None:
    tags = default_tags()
    assert tags[TAG_TORCH_THREADS] == str(torch.get_num_threads())
    assert tags[PYTHON_VERSION_TAG] == platform.python_version()
    assert {TAG_VERSION_PREFIX + p for p in TRACKED_PACKAGES} <= set(tags)
    assert tags[TAG_VERSION_PREFIX + "numpy"] != "not installed"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with start_run("provenance", tracking_uri=store) as run:
            torch.set_num_threads(2)  # what a training's train.threads does after the run starts
        got = mlflow.MlflowClient(store).get_run(run.info.run_id).data.tags
    finally:
        torch.set_num_threads(before)
    assert got[TAG_TORCH_THREADS] == "2"
    assert got[PYTHON_VERSION_TAG] == platform.python_version()
    assert got[TAG_VERSION_PREFIX + "torch"] == torch.__version__


def test_a_damaged_model_names_the_stored_file(store: str, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(GOOD)
    with start_run("provenance", tracking_uri=store) as run:
        log_pyfunc_model(
            Checked(), pd.DataFrame({"x": [1.0]}), pip_requirements=["mlflow"], artifacts={"weights": str(weights)}
        )
    uri = f"runs:/{run.info.run_id}/model"
    assert list(load_model(uri, tracking_uri=store).predict(pd.DataFrame({"x": [2.0]}))) == [4.0]
    stored = [p for p in tmp_path.rglob("weights.bin") if p != weights]
    assert len(stored) == 1, stored
    stored[0].write_bytes(b"damaged")
    with pytest.raises(CheckpointError) as ei:
        load_model(uri, tracking_uri=store)
    text = str(ei.value)
    assert text.startswith(f"cannot load model {uri}: {stored[0]} is corrupt"), text
    assert "geograph-model-" not in text
    stored[0].write_bytes(b"bad row")
    with pytest.raises(DataValidationError) as ei:
        load_model(uri, tracking_uri=store)
    assert ei.value.file == str(stored[0]) and ei.value.row == 0 and ei.value.field == "weights"
