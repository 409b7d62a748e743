"""``geograph world``: generate the embedded world and write it as a world folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from geograph.cli.common import add_quiet_arg, step

DEFAULT_OUT = Path("data/world")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "world",
        help="generate the embedded world (POIs, co-visits, images, regions) and write it as Parquet",
        description="Generate geograph's seeded synthetic world on real US geography (geonames "
        "cities, 2022 NAICS codes, H3 cells) and write it with write_world. The same --pois and "
        "--seed always give the same tables. See docs/guides/data.md for the generative process.",
    )
    p.add_argument("--pois", type=int, default=2000, help="number of POIs (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--images", type=int, default=None, help="number of images (default pois // 2; 0: none)")
    p.add_argument("--embedding-dim", type=int, default=64, help="image embedding length (default 64)")
    p.add_argument(
        "--states", default=None, help="comma-separated 2-letter state codes to populate (default: all 51)"
    )
    p.add_argument(
        "--covisits-per-poi", type=float, default=10.0, help="mean co-visit pairs per POI (default 10)"
    )
    p.add_argument(
        "--partition-by",
        choices=["state"],
        default=None,
        help="write hive-partitioned folders (pois/state=CA/part-0.parquet) instead of one file per table",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the world in an existing folder (only files geograph wrote, listed in its manifest.json)",
    )
    p.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="FILE",
        help="with --overwrite: a file in the folder that geograph did not write but may replace or remove "
        "(e.g. pois.csv; repeatable)",
    )
    p.add_argument(
        "--generator",
        choices=["embedded", "latent"],
        default="embedded",
        help="embedded (default) or latent: the latent-community world of geograph.data.latent_world "
        "(hidden visitor communities; no images, --images and --embedding-dim are ignored; default "
        "states: the 48 contiguous ones)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown from 100K POIs)")
    add_quiet_arg(p)
    p.set_defaults(func=_world)


def _check_out(out: Path, overwrite: bool, replace: list[str]) -> None:
    from geograph.data.world_io import foreign_files, foreign_message
    from geograph.errors import DataValidationError

    if out.exists() and not out.is_dir():
        raise DataValidationError("output path exists and is not a folder", file=out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataValidationError(
            "output folder is not empty; pass --overwrite to replace its world", file=out
        )
    foreign = foreign_files(out, replace)
    if foreign:
        how = " ".join(f"--replace {f}" for f in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise DataValidationError(foreign_message(foreign, how), file=out)


def _world(args: argparse.Namespace) -> int:
    from rich.console import Console

    from geograph.data.synthetic import generate_world
    from geograph.data.synthetic.generate import PROGRESS_MIN_POIS
    from geograph.data.world_io import write_world
    from geograph.data.world_summary import print_world_summary
    from geograph.errors import ConfigError

    out: Path = args.out
    _check_out(out, args.overwrite, args.replace)  # before spending time on generation
    states = None
    if args.states:
        states = [s.strip().upper() for s in args.states.split(",") if s.strip()]
        if not states:
            raise ConfigError(f"--states must list 2-letter codes, got {args.states!r}")
    quiet = args.quiet or args.no_progress
    big = args.pois >= PROGRESS_MIN_POIS  # smaller worlds take seconds: no progress
    t0 = time.perf_counter()
    if args.generator == "latent":
        from geograph.data.latent_world import generate_latent_world

        with step(f"generating the latent-community world ({args.pois} POIs)", quiet or not big):
            world = generate_latent_world(
                n_pois=args.pois, seed=args.seed, covisits_per_poi=args.covisits_per_poi, states=states
            )
    else:
        world = generate_world(
            n_pois=args.pois,
            seed=args.seed,
            n_images=args.images,
            embedding_dim=args.embedding_dim,
            states=states,
            covisits_per_poi=args.covisits_per_poi,
            progress=False if quiet else None,
        )
    t_gen = time.perf_counter() - t0
    # Tables, meta.json and manifest.json as one atomic whole; stale tables of an older world go
    # (only files geograph wrote, or named with --replace).
    with step(f"writing {out}", quiet or not big):
        write_world(world, out, partition_by=args.partition_by, overwrite=args.overwrite, replace=args.replace)
    t_all = time.perf_counter() - t0
    console = Console()
    print_world_summary(world, console=console, title=f"world {out} (seed {args.seed})")
    console.print(
        f"generated in {t_gen:.1f} s, written in {t_all - t_gen:.1f} s to {out}"
        + (f" (partitioned by {args.partition_by})" if args.partition_by else ""),
        markup=False,
    )
    return 0
