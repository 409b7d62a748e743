"""MLflow "model from code" entry for co-visitation models (no pickled Python objects).

MLflow logs this file's source, not a pickle; loading it re-imports geograph and reads the
checksummed bundle with ``torch.load(weights_only=True)``.
"""

import mlflow

from geograph.covisit.pyfunc import CovisitPyfunc

mlflow.models.set_model(CovisitPyfunc())
