"""Ask urban-analytics questions of a generated world and draw the answers on maps.

    python examples/urban_analytics.py --out runs/urban_example

Which brands do visitors of the world's most common brand also visit? Which NAICS sectors
draw each other's visitors more than their sizes predict? Where are the co-visitation
hotspots? The answers are printed; the hotspots go to an HTML map and a PNG, and the sector
flows to a heatmap, in the output folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import polars as pl

from geograph.analytics import WorldSource, covisited, flow_heatmap, hotspots, naics_flow
from geograph.analytics.maps import hotspot_layers, write_html, write_png
from geograph.constants import BRAND_COL
from geograph.data.synthetic import generate_world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    parser.add_argument("--n-pois", type=int, default=800, help="POIs of the generated world")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="urban_example_"))
    out.mkdir(parents=True, exist_ok=True)

    world = generate_world(n_pois=args.n_pois, seed=0, progress=False)
    source = WorldSource.from_world(world)
    brand = (
        world.pois.filter(pl.col(BRAND_COL).is_not_null())
        .group_by(BRAND_COL).len().sort(["len", BRAND_COL], descending=[True, False])[BRAND_COL][0]
    )

    with pl.Config(tbl_rows=10, tbl_cols=8, tbl_width_chars=120):
        print(f"Which brands do visitors of {brand} also visit?")
        print(covisited(source, brand=brand, top=5))
        flow = naics_flow(source, level=2, min_visitors=1)
        print("NAICS sector flows, most visitors first (lift > 1: more than the sectors' sizes predict)")
        print(flow.sort("visitors", descending=True).select("src_naics", "dst_naics", "dst_title", "visitors", "lift").head(8))
        spots = hotspots(source, resolution=7, top=10)
        print("Co-visitation hotspots (H3 resolution 7)")
        print(spots)

    layers = hotspot_layers(spots, title="co-visitation hotspots")
    for path in (write_html(layers, out / "hotspots.html"), write_png(layers, out / "hotspots.png"),
                 flow_heatmap(flow, out / "naics_flow.png")):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
