"""MLflow "model from code" entry for geolocation models (no pickled Python objects).

MLflow logs this file's source; loading it re-imports geograph and reads the checksummed
geolocator bundle with ``torch.load(weights_only=True)``.
"""

import mlflow

from geograph.geolocate.pyfunc import GeolocatePyfunc

mlflow.models.set_model(GeolocatePyfunc())
