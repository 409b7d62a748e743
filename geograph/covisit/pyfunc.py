"""The co-visitation predictor as an MLflow pyfunc model (``src_poi_id, dst_poi_id`` in,
``predicted_visitors`` out); :mod:`~geograph.covisit.pyfunc_model` is the model-from-code file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from geograph.constants import DST_POI, SRC_POI
from geograph.covisit.predict import CovisitPredictor
from geograph.errors import DataValidationError

try:
    import mlflow.pyfunc

    class CovisitPyfunc(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc: DataFrame ``src_poi_id, dst_poi_id`` -> ``predicted_visitors``."""

        def load_context(self, context) -> None:
            self.predictor = CovisitPredictor.load(Path(context.artifacts["model_dir"]))

        def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ARG002
            df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            missing = [c for c in (SRC_POI, DST_POI) if c not in df.columns]
            if missing:
                raise DataValidationError(f"model input lacks column(s) {missing}", field=missing[0])
            vis = self.predictor.predict_ids(
                df[SRC_POI].astype(str).tolist(), df[DST_POI].astype(str).tolist()
            )
            return pd.DataFrame({"predicted_visitors": vis})

except ImportError:  # pragma: no cover - mlflow is a core dependency
    CovisitPyfunc = None  # type: ignore[assignment,misc]
