"""Names shared across geograph: node and edge types, column names, earth constants.

Every string that names a column, node type or relation lives here, so a typo is an
``AttributeError`` rather than a silent empty graph.
"""

from __future__ import annotations

# --- earth -----------------------------------------------------------------------
EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
WGS84 = "EPSG:4326"

# --- node types ------------------------------------------------------------------
POI = "poi"
BRAND = "brand"
CELL = "cell"
IMAGE = "image"

# --- relations -------------------------------------------------------------------
IN = "in"
ADJACENT = "adjacent"
NEAR = "near"
COVISITS = "covisits"
SIMILAR = "similar"
REV_PREFIX = "rev_"

# --- column names: POIs ------------------------------------------------------------
POI_ID = "poi_id"
NAME = "name"
BRAND_COL = "brand"
NAICS_CODE = "naics_code"
LAT = "latitude"
LON = "longitude"
STATE = "state"
POI_REQUIRED = (POI_ID, NAME, BRAND_COL, NAICS_CODE, LAT, LON, STATE)

# --- column names: co-visits --------------------------------------------------------
SRC_POI = "src_poi_id"
DST_POI = "dst_poi_id"
SRC_BRAND = "src_brand"
DST_BRAND = "dst_brand"
VISITORS = "visitors"
PERIOD = "period"
COVISIT_REQUIRED = (SRC_POI, DST_POI, VISITORS)

# --- column names: images ----------------------------------------------------------
IMAGE_ID = "image_id"
EMBEDDING = "embedding"
PATH = "path"
TEXT = "text"

# --- column names: geotagged queries (geolocation's own train / test files) --------
QUERY_ID = "id"
QUERY_LAT = "lat"
QUERY_LON = "lon"

# --- column names: regions ---------------------------------------------------------
H3_CELL = "h3_cell"

# --- files of a world folder --------------------------------------------------------
POIS_FILE = "pois.parquet"
COVISITS_FILE = "covisits.parquet"
IMAGES_FILE = "images.parquet"
REGIONS_FILE = "regions.parquet"

# --- NAICS --------------------------------------------------------------------------
NAICS_LEVELS = (2, 3, 4, 5, 6)

# --- tracking -------------------------------------------------------------------------
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"

# --- geolocation thresholds ------------------------------------------------------------
GEO_THRESHOLDS_KM = (1.0, 25.0, 200.0, 750.0, 2500.0)
