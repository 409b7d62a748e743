"""geograph.data: data contracts (readers + validation), vendor adapters, the NAICS taxonomy, world IO."""

from geograph.data.naics import NAICSTaxonomy, NAICSVocabulary
from geograph.data.patterns_import import ImportSummary, import_patterns
from geograph.data.readers import (
    COVISIT_FORMS,
    DATAFRAME,
    US_STATES,
    covisit_level,
    feature_columns,
    read_covisits,
    read_images,
    read_pois,
    read_regions,
)
from geograph.data.regions import normalize_region, region_from_coordinates
from geograph.data.safegraph import read_patterns
from geograph.data.world_io import (
    World,
    find_table,
    load_world,
    scan_table,
    validate_world,
    verify_world,
    write_world,
)

__all__ = [
    "NAICSTaxonomy",
    "NAICSVocabulary",
    "COVISIT_FORMS",
    "DATAFRAME",
    "US_STATES",
    "covisit_level",
    "feature_columns",
    "read_covisits",
    "read_images",
    "read_pois",
    "read_regions",
    "read_patterns",
    "ImportSummary",
    "import_patterns",
    "normalize_region",
    "region_from_coordinates",
    "World",
    "find_table",
    "load_world",
    "scan_table",
    "validate_world",
    "verify_world",
    "write_world",
]
