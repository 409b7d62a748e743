"""The MLflow model registry: log a pyfunc model, register it, alias it, load it back.

Models are plain MLflow pyfunc models with a signature and an input example, so
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work on them with nothing
geograph-specific beyond the package itself. :func:`load_model` accepts

* ``runs:/<run_id>/<artifact_path>`` (the run id may be a unique prefix, see ``resolve_run_id``)
* ``models:/<name>/<version>``
* ``models:/<name>@<alias>`` (also written ``models:/<name>/@<alias>``)
* a local folder holding an ``MLmodel`` file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geograph.errors import ConfigError, DataValidationError, GeographError, TrackingError
from geograph.tracking.store import configure, resolve_model_uri, resolve_run_id

_ALIAS_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def log_pyfunc_model(
    python_model: Any,
    input_example: Any,
    *,
    name: str = "model",
    signature: Any = None,
    pip_requirements: Sequence[str] | None = None,
    code_paths: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Log ``python_model`` (an ``mlflow.pyfunc.PythonModel``) to the active run.

    Args:
        python_model: The model; its ``predict(context, model_input)`` is called on
            ``input_example`` to infer the output schema when ``signature`` is None.
        input_example: A small pandas DataFrame (a few rows) of valid input.
        name: Artifact path / logged-model name (``runs:/<run_id>/<name>``).
        signature: An ``mlflow.models.ModelSignature`` (default: inferred).
        pip_requirements: Requirements written with the model (default: MLflow infers them,
            which loads the model in a subprocess; pass a list to skip that).
        code_paths: Local code to ship with the model.
        **kwargs: Passed on to ``mlflow.pyfunc.log_model``.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``signature``, ...).
    """
    import mlflow
    from mlflow.models import infer_signature

    if mlflow.active_run() is None:
        raise TrackingError(
            "log_pyfunc_model needs an active run; call it inside geograph.tracking.start_run"
        )
    if signature is None:
        signature = infer_signature(input_example, python_model.predict(None, input_example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
        code_paths=list(code_paths) if code_paths is not None else None,
        **kwargs,
    )


def set_alias(name: str, alias: str, version: int | str, *, tracking_uri: str | None = None) -> None:
    """Point ``models:/<name>@<alias>`` at ``version``.

    Raises:
        ConfigError: the alias is not letters, digits, ``_`` or ``-``, or looks like a version.
        TrackingError: no such model version.
    """
    import mlflow

    if (
        not _ALIAS_RE.match(alias)
        or alias.isdigit()
        or (alias.lower().startswith("v") and alias[1:].isdigit())
    ):
        raise ConfigError(
            f"alias must be letters, digits, '_' or '-' and not a version like 'v1', got {alias!r}"
        )
    configure(tracking_uri)
    try:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(
            f"cannot set alias {alias!r} on model {name!r} version {version}: {exc.message}"
        ) from None


def register_model(
    run_id: str,
    name: str,
    artifact_path: str = "model",
    *,
    alias: str | None = None,
    tracking_uri: str | None = None,
) -> int:
    """Register the model logged by run ``run_id`` at ``artifact_path`` as a new version of ``name``.

    Args:
        run_id: The run that logged the model (full id or unique prefix).
        name: Registered model name (created on first use).
        artifact_path: Where the run logged it (the ``name`` given to ``log_model``).
        alias: Also point this alias (e.g. ``"champion"``) at the new version.
        tracking_uri: Tracking / registry store.

    Returns:
        The new version number.

    Raises:
        TrackingError: the run does not exist or logged no model at ``artifact_path``.
    """
    import mlflow

    if not name or not isinstance(name, str):
        raise ConfigError(f"model name must be a non-empty string, got {name!r}")
    configure(tracking_uri)
    run_id = resolve_run_id(run_id, tracking_uri)  # a unique prefix works too
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise TrackingError(f"run {run_id!r} not found in {mlflow.get_tracking_uri()}") from None
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{artifact_path}'",
    )
    if not logged:
        try:
            has_artifact = bool(client.list_artifacts(run_id, artifact_path))
        except Exception:  # noqa: BLE001 - an unreadable artifact store reads as "no model"
            has_artifact = False
        if not has_artifact:
            raise TrackingError(
                f"run {run_id} logged no model named {artifact_path!r}; log one with "
                "geograph.tracking.log_pyfunc_model (or pass --artifact-path)"
            )
    try:
        # MLflow 3 keeps a run's model as a LoggedModel: register that directly (registering the
        # runs:/ URI works too but warns that the run has no artifacts at the path)
        source = f"models:/{logged[0].model_id}" if logged else f"runs:/{run_id}/{artifact_path}"
        version = mlflow.register_model(source, name)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"cannot register run {run_id} as model {name!r}: {exc.message}") from None
    number = int(version.version)
    if alias:
        set_alias(name, alias, number, tracking_uri=tracking_uri)
    return number


def normalize_model_uri(uri: str) -> str:
    """Check a model URI and rewrite ``models:/NAME/@alias`` as MLflow's ``models:/NAME@alias``.

    Raises:
        ConfigError: not a ``runs:/``, ``models:/`` URI or a local model folder.
    """
    if uri.startswith("models:/"):
        body = uri.removeprefix("models:/").strip("/")
        if "/@" in body:
            body = body.replace("/@", "@", 1)
        name, _, rest = body.partition("@") if "@" in body else body.partition("/")
        if not name or not rest:
            raise ConfigError(f"model URI must be models:/NAME/VERSION or models:/NAME@ALIAS, got {uri!r}")
        return f"models:/{body}"
    if uri.startswith("runs:/"):
        parts = uri.removeprefix("runs:/").strip("/").split("/", 1)
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"run model URI must be runs:/RUN_ID/ARTIFACT_PATH, got {uri!r}")
        return uri
    if (Path(uri) / "MLmodel").is_file():
        return uri
    raise ConfigError(
        f"model URI must be runs:/RUN_ID/PATH, models:/NAME/VERSION, models:/NAME@ALIAS "
        f"or a folder with an MLmodel file, got {uri!r}"
    )


def load_model(uri: str, *, tracking_uri: str | None = None) -> Any:
    """Load a pyfunc model by URI (see the module docstring for the accepted forms).

    A ``runs:/`` or ``models:/`` model is downloaded into a temporary folder, loaded and the
    folder removed. An error raised while loading it (a damaged ``bundle.pt``...) names the
    file where the store keeps it (or the model URI), not the temporary copy.

    Raises:
        ConfigError: a malformed URI.
        TrackingError: the run, model, version or alias does not exist, or its files cannot be read.
        GeographError: what the model's own loader raises (e.g. a ``CheckpointError`` for a
            damaged bundle), with the stored location in place of the temporary path.
    """
    import tempfile

    import mlflow

    uri = normalize_model_uri(uri)
    if not uri.startswith(("runs:/", "models:/")):
        return _load_pyfunc(mlflow, uri, None, uri)
    configure(tracking_uri)
    uri = resolve_model_uri(uri, tracking_uri)  # runs:/PREFIX/... names the full run id
    with tempfile.TemporaryDirectory(prefix="geograph-model-") as tmp:
        return _load_pyfunc(mlflow, uri, tmp, uri)


def _load_pyfunc(mlflow: Any, uri: str, tmp: str | None, shown: str) -> Any:
    try:
        return mlflow.pyfunc.load_model(uri, dst_path=tmp)
    except mlflow.exceptions.MlflowException as exc:
        raise TrackingError(f"cannot load model {shown}: {_user_paths(exc.message, tmp, uri)}") from None
    except OSError as exc:
        raise TrackingError(f"cannot load model {shown}: {_user_paths(str(exc), tmp, uri)}") from None
    except GeographError as exc:
        if tmp is None:
            raise
        raise _renamed(exc, tmp, uri) from exc


def _user_paths(text: str, tmp: str | None, uri: str) -> str:
    """``text`` with the temporary download folder replaced by where the store keeps the model."""
    if tmp is None or tmp not in text:
        return text
    roots = [p for p in Path(tmp).iterdir() if p.is_dir()] if Path(tmp).is_dir() else []
    root = str(roots[0]) if len(roots) == 1 else tmp
    where = _stored_location(uri) if root != tmp else None
    return text.replace(root, where or uri).replace(tmp, uri)


def _stored_location(uri: str) -> str | None:
    """The folder (or remote URI) where the tracking store keeps the model at ``uri``, when MLflow
    can tell (a logged model); None otherwise."""
    from urllib.parse import unquote, urlparse

    import mlflow

    try:
        model_id = getattr(mlflow.models.get_model_info(uri), "model_id", None)
        if not model_id:
            return None
        location = mlflow.MlflowClient().get_logged_model(model_id).artifact_location
    except Exception:  # noqa: BLE001 - best effort: the URI is shown instead
        return None
    if location.startswith("file:"):
        return unquote(urlparse(location).path)
    return location


def _renamed(exc: GeographError, tmp: str, uri: str) -> GeographError:
    """The same kind of error as ``exc``, naming the stored model instead of the temporary copy."""
    if isinstance(exc, DataValidationError):
        return DataValidationError(
            f"model {uri}: {_user_paths(exc.reason, tmp, uri)}",
            file=_user_paths(exc.file, tmp, uri) if exc.file is not None else None,
            row=exc.row,
            field=exc.field,
        )
    message = f"cannot load model {uri}: {_user_paths(str(exc), tmp, uri)}"
    try:
        return type(exc)(message)
    except TypeError:  # a subclass with another signature
        return GeographError(message)


__all__ = ["load_model", "log_pyfunc_model", "normalize_model_uri", "register_model", "set_alias"]
