"""The geolocator as an MLflow pyfunc model (query frame in, ``lat, lon, confidence`` out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from geograph.errors import DataValidationError
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import GeoData
from geograph.geolocate.predict import load_geolocator, save_geolocator
from geograph.geolocate.select import Selected
from geograph.train import pip_requirements

QUERY_PREFIX = "e"  # pyfunc input columns e0 .. e{D-1}

PIP_PACKAGES = ("torch", "torch_geometric", "numpy", "pandas", "h3", "scikit-learn", "mlflow")


def query_frame(queries: np.ndarray):
    """Query embeddings as the pyfunc input frame: columns ``e0 .. e{D-1}`` (float32)."""
    import pandas as pd

    q = np.asarray(queries, dtype=np.float32)
    return pd.DataFrame(q, columns=[f"{QUERY_PREFIX}{i}" for i in range(q.shape[1])])


def frame_queries(df, query_dim: int) -> np.ndarray:
    """Inverse of :func:`query_frame`; raises ``DataValidationError`` naming a missing column."""
    cols = [f"{QUERY_PREFIX}{i}" for i in range(query_dim)]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"model input lacks column(s) {missing[:3]} (needs e0..e{query_dim - 1})", field=missing[0]
        )
    return np.array(df[cols].to_numpy(dtype=np.float32), copy=True)


try:
    import mlflow.pyfunc

    class GeolocatePyfunc(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: DataFrame ``e0 .. e{D-1}`` (query embeddings) -> ``lat, lon, confidence``."""

        def load_context(self, context) -> None:
            self.geolocator = load_geolocator(Path(context.artifacts["geolocator"]))

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
            df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            q = frame_queries(df, self.geolocator.query_dim)
            p = self.geolocator.predictor.predict(q)
            return pd.DataFrame(
                {"lat": p.latlon[:, 0], "lon": p.latlon[:, 1], "confidence": p.confidence.astype(np.float64)}
            )

except ImportError:  # pragma: no cover - mlflow is a core dependency
    GeolocatePyfunc = None  # type: ignore[assignment,misc]


def _log_pyfunc(cfg: GeolocateConfig, sel: Selected, data: GeoData, tmp: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature

    folder = save_geolocator(cfg, sel, data, tmp / "geolocator")
    q_te, _ = data.part("test")
    example = query_frame(q_te[:3])
    p = sel.predictor.predict(q_te[:3])
    import pandas as pd

    out = pd.DataFrame(
        {"lat": p.latlon[:, 0], "lon": p.latlon[:, 1], "confidence": p.confidence.astype(np.float64)}
    )
    mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"geolocator": str(folder)},
        signature=infer_signature(example, out),
        input_example=example,
        pip_requirements=pip_requirements(PIP_PACKAGES),
    )
    mlflow.set_tag(
        "geograph.model_summary", json.dumps({"gallery": sel.predictor.gallery.name, **sel.choice})
    )
