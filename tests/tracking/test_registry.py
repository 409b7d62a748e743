"""Model registry round trip against the real tracking server: log, register, alias, load, predict."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from geograph.cli.main import main
from geograph.errors import ConfigError, TrackingError
from geograph.tracking import start_run
from geograph.tracking.registry import (
    load_model,
    log_pyfunc_model,
    normalize_model_uri,
    register_model,
    set_alias,
)


class Affine(mlflow.pyfunc.PythonModel):
    """y = 2 x + 1 (a real pyfunc model, tiny)."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return model_input["x"] * 2.0 + 1.0


X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})


@pytest.fixture(scope="module")
def logged_run(mlflow_server: str) -> str:
    with start_run("registry", tracking_uri=mlflow_server) as run:
        info = log_pyfunc_model(Affine(), X, pip_requirements=["mlflow"])
    assert info.signature is not None
    return run.info.run_id


def test_registry_round_trip(mlflow_server: str, logged_run: str, experiment_name: str) -> None:
    name = f"affine-{experiment_name}"
    assert register_model(logged_run, name, alias="champion", tracking_uri=mlflow_server) == 1
    assert register_model(logged_run, name, tracking_uri=mlflow_server) == 2
    expected = [3.0, 5.0, 7.0]
    for uri in (
        f"models:/{name}/1",
        f"models:/{name}@champion",
        f"models:/{name}/@champion",
        f"models:/{name}/2",
        f"runs:/{logged_run}/model",
    ):
        model = load_model(uri, tracking_uri=mlflow_server)
        assert list(model.predict(X)) == expected, uri
    # the logged model carries its signature and input example (so `mlflow models serve` works)
    info = mlflow.models.get_model_info(f"models:/{name}/1")
    assert [c.name for c in info.signature.inputs.inputs] == ["x"]
    assert info.saved_input_example_info is not None
    # moving the alias
    set_alias(name, "champion", 2, tracking_uri=mlflow_server)
    assert mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version in ("2", 2)


def test_register_cli(mlflow_server: str, logged_run: str, experiment_name: str, capsys) -> None:
    name = f"cli-{experiment_name}"
    args = ["register", "--run-id", logged_run, "--name", name, "--alias", "champion"]
    assert main([*args, "--tracking-uri", mlflow_server]) == 0
    out = capsys.readouterr().out
    assert f"as models:/{name}/1" in out and f"models:/{name}@champion -> version 1" in out


def test_registry_errors(mlflow_server: str, logged_run: str, experiment_name: str) -> None:
    with pytest.raises(TrackingError, match="run 'deadbeef' not found"):
        register_model("deadbeef", "x", tracking_uri=mlflow_server)
    with pytest.raises(TrackingError, match="logged no model named 'weights'"):
        register_model(logged_run, "x", artifact_path="weights", tracking_uri=mlflow_server)
    with pytest.raises(TrackingError, match="cannot load model"):
        load_model(f"models:/never-{experiment_name}/1", tracking_uri=mlflow_server)
    with pytest.raises(ConfigError, match="model URI must be"):
        normalize_model_uri("s3://bucket/model")
    with pytest.raises(ConfigError, match="models:/NAME/VERSION"):
        normalize_model_uri("models:/justaname")
    with pytest.raises(ConfigError, match="alias"):
        set_alias("x", "v2", 1, tracking_uri=mlflow_server)
