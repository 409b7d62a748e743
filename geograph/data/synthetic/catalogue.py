"""The catalogue of consumer-facing 2022 NAICS codes of the embedded world, and the hand-set affinities."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One NAICS code of the catalogue with its typical venue.

    Attributes:
        code: 2022 NAICS 6-digit code.
        label: Short venue label used in unbranded names ("Coffee Shop #3").
        suffix: Word closing a brand name of this code (unique across the catalogue).
        share: Relative frequency among POIs (before the city-size tilt).
        chain: Probability a POI belongs to a multi-state chain.
        local: Probability a POI belongs to a one-state local brand.
        n_chains: National chains of this code (plus twice as many regional chains).
        visits: Typical monthly visitors.
        dwell: Typical median dwell time (minutes).
        area: Typical floor area (square feet).
        hours: Typical open hours per day.
        urban: City-size tilt exponent of the share (positive: more common in big cities).
    """

    code: str
    label: str
    suffix: str
    share: float
    chain: float
    local: float
    n_chains: int
    visits: float
    dwell: float
    area: float
    hours: float
    urban: float = 0.0


_K = Kind
CATALOGUE: tuple[Kind, ...] = (
    # 72 accommodation and food services
    _K("722511", "Restaurant", "Kitchen", 10.0, 0.25, 0.35, 12, 1800, 55, 4500, 12, 0.05),
    _K("722513", "Fast Food", "Burger", 10.0, 0.55, 0.20, 12, 3000, 12, 2500, 15, -0.05),
    _K("722515", "Coffee Shop", "Coffee", 4.0, 0.45, 0.30, 6, 2200, 15, 1500, 13, 0.15),
    _K("722410", "Bar", "Tavern", 3.0, 0.05, 0.45, 2, 900, 70, 2500, 10, 0.10),
    _K("722514", "Buffet", "Buffet", 0.5, 0.30, 0.30, 2, 1200, 45, 6000, 10, -0.05),
    _K("721110", "Hotel", "Hotel", 1.5, 0.65, 0.20, 8, 1500, 600, 60000, 24, 0.05),
    _K("721191", "Bed and Breakfast", "Inn", 0.3, 0.00, 0.50, 0, 150, 720, 4000, 24, -0.20),
    # 31 manufacturing (retail bakeries)
    _K("311811", "Bakery", "Bakery", 1.5, 0.15, 0.45, 3, 900, 10, 1400, 10, 0.10),
    # 44-45 retail trade
    _K("445110", "Grocery Store", "Market", 4.0, 0.60, 0.20, 10, 6000, 28, 40000, 16, 0.0),
    _K("445131", "Convenience Store", "Mart", 3.0, 0.50, 0.25, 6, 2500, 5, 2500, 20, -0.05),
    _K("445230", "Produce Market", "Produce", 0.6, 0.00, 0.50, 0, 700, 15, 3000, 10, 0.05),
    _K("445240", "Butcher", "Meats", 0.4, 0.00, 0.50, 0, 500, 12, 2000, 9, 0.0),
    _K("445291", "Donut Shop", "Donuts", 0.8, 0.50, 0.30, 3, 1300, 8, 1200, 14, 0.0),
    _K("445320", "Liquor Store", "Liquors", 1.2, 0.20, 0.40, 3, 900, 8, 3000, 12, 0.0),
    _K("445298", "Specialty Food Store", "Foods", 0.5, 0.10, 0.50, 2, 500, 15, 2500, 10, 0.15),
    _K("457110", "Gas Station", "Fuel", 4.0, 0.65, 0.15, 10, 3500, 6, 2500, 20, -0.15),
    _K("457120", "Fuel Stop", "Gas", 1.0, 0.50, 0.20, 5, 1500, 5, 800, 16, -0.20),
    _K("456110", "Pharmacy", "Pharmacy", 2.5, 0.70, 0.15, 4, 3000, 14, 12000, 13, 0.0),
    _K("456120", "Beauty Supply", "Beauty", 0.8, 0.50, 0.20, 3, 800, 18, 3000, 10, 0.10),
    _K("456191", "Supplement Store", "Nutrition", 0.6, 0.60, 0.20, 3, 400, 10, 1500, 10, 0.10),
    _K("455110", "Department Store", "Outfitters", 0.8, 0.80, 0.05, 6, 4000, 40, 90000, 12, 0.05),
    _K("455211", "Supercenter", "Superstore", 0.8, 0.90, 0.00, 3, 12000, 40, 150000, 17, -0.10),
    _K("455219", "Discount Store", "Dollar", 2.0, 0.75, 0.05, 3, 1500, 12, 9000, 13, -0.15),
    _K("458110", "Clothing Store", "Apparel", 3.0, 0.50, 0.30, 12, 1200, 25, 5000, 11, 0.10),
    _K("458210", "Shoe Store", "Shoes", 1.0, 0.60, 0.20, 5, 700, 18, 3500, 11, 0.05),
    _K("458310", "Jewelry Store", "Jewelers", 0.8, 0.40, 0.40, 3, 300, 20, 1500, 10, 0.10),
    _K("459110", "Sporting Goods", "Sports", 0.8, 0.60, 0.20, 4, 1200, 25, 20000, 12, 0.0),
    _K("459120", "Toy Store", "Toys", 0.5, 0.50, 0.30, 3, 600, 22, 6000, 11, 0.05),
    _K("459210", "Bookstore", "Books", 0.4, 0.50, 0.40, 2, 600, 25, 8000, 12, 0.15),
    _K("459510", "Thrift Store", "Thrift", 0.6, 0.40, 0.40, 2, 700, 30, 8000, 10, 0.0),
    _K("459910", "Pet Store", "Pets", 0.6, 0.65, 0.20, 3, 1000, 18, 12000, 12, 0.0),
    _K("449110", "Furniture Store", "Furniture", 0.6, 0.40, 0.40, 4, 400, 35, 25000, 10, 0.0),
    _K("449210", "Electronics Store", "Electronics", 0.7, 0.60, 0.20, 3, 1500, 25, 20000, 12, 0.05),
    _K("444110", "Home Center", "Home", 0.6, 0.80, 0.10, 3, 6000, 35, 100000, 14, -0.05),
    _K("441110", "Car Dealer", "Motors", 1.0, 0.50, 0.40, 8, 600, 75, 30000, 11, -0.05),
    _K("441120", "Used Car Dealer", "Auto Sales", 0.8, 0.10, 0.50, 2, 200, 50, 5000, 10, -0.10),
    # 81 other services
    _K("811111", "Auto Repair", "Auto Care", 2.0, 0.25, 0.40, 4, 400, 60, 4000, 10, -0.10),
    _K("811192", "Car Wash", "Car Wash", 0.8, 0.30, 0.40, 3, 1200, 15, 3000, 12, -0.10),
    _K("812111", "Barber Shop", "Barbers", 1.2, 0.10, 0.40, 2, 300, 35, 800, 9, 0.05),
    _K("812112", "Hair Salon", "Salon", 2.0, 0.25, 0.35, 4, 400, 60, 1500, 9, 0.05),
    _K("812113", "Nail Salon", "Nails", 1.2, 0.10, 0.40, 2, 350, 50, 1200, 10, 0.05),
    _K("812310", "Laundromat", "Laundry", 0.6, 0.10, 0.40, 1, 300, 60, 2000, 15, 0.05),
    _K("812910", "Pet Groomer", "Pet Spa", 0.4, 0.30, 0.40, 2, 200, 30, 1500, 9, 0.0),
    # 71 arts, entertainment and recreation; 51 motion picture theaters
    _K("713940", "Gym", "Fitness", 2.0, 0.50, 0.30, 6, 2000, 65, 15000, 17, 0.10),
    _K("713950", "Bowling Alley", "Lanes", 0.2, 0.30, 0.40, 1, 800, 120, 25000, 12, -0.05),
    _K("713120", "Arcade", "Arcade", 0.2, 0.40, 0.30, 2, 900, 90, 10000, 12, 0.10),
    _K("712110", "Museum", "Museum", 0.3, 0.00, 0.30, 0, 2000, 100, 40000, 8, 0.30),
    _K("512131", "Movie Theater", "Cinema", 0.4, 0.70, 0.10, 4, 3000, 140, 40000, 12, 0.05),
    # 62 health care, 54 veterinary
    _K("621111", "Doctor's Office", "Medical", 2.0, 0.20, 0.30, 3, 500, 55, 3000, 9, 0.10),
    _K("621210", "Dentist", "Dental", 1.5, 0.15, 0.35, 3, 250, 60, 2000, 9, 0.05),
    _K("621310", "Chiropractor", "Chiropractic", 0.5, 0.10, 0.30, 1, 150, 40, 1500, 9, 0.0),
    _K("622110", "Hospital", "Hospital", 0.3, 0.30, 0.30, 4, 5000, 180, 300000, 24, 0.10),
    _K("541940", "Veterinarian", "Animal Clinic", 0.6, 0.25, 0.30, 2, 300, 45, 3000, 10, -0.05),
    _K("624410", "Child Care Center", "Kids Academy", 0.8, 0.30, 0.40, 3, 200, 30, 4000, 11, 0.0),
    # 52 banks, 61 education
    _K("522110", "Bank", "Bank", 2.0, 0.70, 0.20, 8, 800, 12, 4000, 8, 0.05),
    _K("522130", "Credit Union", "Credit Union", 0.6, 0.10, 0.60, 2, 400, 12, 3000, 8, -0.05),
    _K("611110", "School", "School", 1.0, 0.00, 0.10, 0, 800, 400, 60000, 9, -0.05),
    _K("611620", "Martial Arts Studio", "Martial Arts", 0.4, 0.20, 0.40, 2, 200, 60, 3000, 9, 0.05),
)

# Hand-set cross-sector affinities ``(prefix_a, prefix_b, value)`` added to A for every pair of
# catalogue codes starting with the prefixes (both orders). Values are on the log-count scale.
AFFINITY_RULES: tuple[tuple[str, str, float], ...] = (
    ("722515", "311811", 1.5),  # coffee shops <-> retail bakeries
    ("722515", "445291", 1.0),  # coffee shops <-> donut shops
    ("713940", "456191", 1.5),  # gyms <-> supplement stores
    ("713940", "445230", 0.8),  # gyms <-> produce markets
    ("713940", "459110", 0.8),  # gyms <-> sporting goods
    ("4571", "445131", 1.2),  # gas stations <-> convenience stores
    ("4571", "811192", 0.8),  # gas stations <-> car washes
    ("456110", "445110", 1.3),  # pharmacies <-> grocery
    ("456110", "621111", 1.0),  # pharmacies <-> doctors
    ("4411", "722", -1.5),  # car dealers <-> restaurants and bars
    ("4411", "311811", -1.5),  # car dealers <-> bakeries
    ("4411", "4452", -1.0),  # car dealers <-> specialty food
    ("4411", "811111", 0.8),  # car dealers <-> auto repair
    ("512131", "722511", 1.0),  # cinemas <-> restaurants
    ("512131", "722410", 0.8),  # cinemas <-> bars
    ("459910", "541940", 1.2),  # pet stores <-> veterinarians
    ("459910", "812910", 1.2),  # pet stores <-> pet groomers
    ("812112", "812113", 1.0),  # hair salons <-> nail salons
    ("456120", "812112", 0.8),  # beauty supply <-> hair salons
    ("458110", "458210", 1.0),  # clothing <-> shoes
    ("458110", "455110", 1.0),  # clothing <-> department stores
    ("721110", "722511", 0.8),  # hotels <-> restaurants
    ("611110", "624410", 0.8),  # schools <-> child care
    ("522110", "445110", 0.5),  # banks <-> grocery
)


@functools.lru_cache(maxsize=1)
def _validated_catalogue() -> tuple[Kind, ...]:
    from geograph.data.naics import NAICSTaxonomy

    tax = NAICSTaxonomy()
    for kind in CATALOGUE:
        tax.validate(kind.code)
    suffixes = [k.suffix for k in CATALOGUE]
    if len(set(suffixes)) != len(suffixes) or len({k.code for k in CATALOGUE}) != len(CATALOGUE):
        raise AssertionError("catalogue codes and brand suffixes must be unique")
    return CATALOGUE


def _sector(code: str) -> str:
    two = code[:2]
    return {"31": "31", "32": "31", "33": "31", "44": "44", "45": "44", "48": "48", "49": "48"}.get(two, two)
