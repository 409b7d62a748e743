"""The 12-POI hand-made world of the analytics tests (exact answers are computed from it by hand).

CA (San Francisco): p00-p07; NY (Manhattan): p08-p11. NAICS codes: 722515 coffee (sector 72),
311811 bakery (31), 445110 supermarket (44), 713940 gym (71). Brands: "Bluebird Coffee"
(p00, p02, p08), "Golden Crust Bakery" (p01, p04), "Fresh Market" (p03, p06, p10); p05, p07,
p09, p11 are unbranded. Fourteen co-visit rows (unordered pairs, each stored once), 550
visitors in all (CA 410, NY 140):

=====  =====  ========  ==================
pair          visitors  NAICS sectors
=====  =====  ========  ==================
p00    p01    120       72-31
p00    p02     40       72-72
p01    p02     60       31-72
p00    p03     80       72-44
p03    p06     50       44-44
p03    p04     30       44-31
p02    p05     20       72-71
p05    p07      0       71-72
p07    p00     10       72-72
p06    p04      0       44-31
p08    p09     90       72-31
p08    p10     40       72-44
p09    p10      0       31-44
p10    p11     10       44-71
=====  =====  ========  ==================
"""

from __future__ import annotations

import polars as pl

from geograph.data import World, read_covisits, read_pois

POIS = (
    # poi_id, name, brand, naics, lat, lon, state, visits, area_sqft
    ("p00", "Bluebird Coffee #1", "Bluebird Coffee", "722515", 37.7793, -122.4193, "CA", 2400, 1200),
    ("p01", "Golden Crust Bakery #1", "Golden Crust Bakery", "311811", 37.7800, -122.4180, "CA", 900, 1500),
    ("p02", "Bluebird Coffee #2", "Bluebird Coffee", "722515", 37.7850, -122.4090, "CA", 1800, 1000),
    ("p03", "Fresh Market #1", "Fresh Market", "445110", 37.7700, -122.4250, "CA", 3000, 20000),
    ("p04", "Golden Crust Bakery #2", "Golden Crust Bakery", "311811", 37.7650, -122.4300, "CA", 700, 1400),
    ("p05", "Iron Gym", None, "713940", 37.7900, -122.4000, "CA", 500, 8000),
    ("p06", "Fresh Market #2", "Fresh Market", "445110", 37.7600, -122.4400, "CA", 2600, 18000),
    ("p07", "Corner Coffee", None, "722515", 37.7750, -122.4150, "CA", 600, 800),
    ("p08", "Bluebird Coffee #3", "Bluebird Coffee", "722515", 40.7128, -74.0060, "NY", 3000, 1100),
    ("p09", "Bakery #1", None, "311811", 40.7140, -74.0050, "NY", 1100, 1300),
    ("p10", "Fresh Market #3", "Fresh Market", "445110", 40.7300, -73.9900, "NY", 2000, 16000),
    ("p11", "Hudson Gym", None, "713940", 40.7200, -74.0000, "NY", 400, 6000),
)
COVISITS = (
    ("p00", "p01", 120),
    ("p00", "p02", 40),
    ("p01", "p02", 60),
    ("p00", "p03", 80),
    ("p03", "p06", 50),
    ("p03", "p04", 30),
    ("p02", "p05", 20),
    ("p05", "p07", 0),
    ("p07", "p00", 10),
    ("p06", "p04", 0),
    ("p08", "p09", 90),
    ("p08", "p10", 40),
    ("p09", "p10", 0),
    ("p10", "p11", 10),
)


def analytics_world() -> World:
    """The validated 12-POI world described in the module docstring."""
    cols = ("poi_id", "name", "brand", "naics_code", "latitude", "longitude", "state", "visits", "area_sqft")
    pois = read_pois(pl.DataFrame([dict(zip(cols, r, strict=True)) for r in POIS]))
    cov = read_covisits(
        pl.DataFrame(
            {
                "src_poi_id": [a for a, _, _ in COVISITS],
                "dst_poi_id": [b for _, b, _ in COVISITS],
                "visitors": [v for _, _, v in COVISITS],
            }
        ),
        pois=pois,
    )
    return World(pois=pois, covisits=cov, meta={"generator": "tests.analytics.analytics_world"})
