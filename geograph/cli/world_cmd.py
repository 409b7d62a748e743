"""``geograph world``: generate the embedded world and write it as a world folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from geograph.cli.common import add_overwrite_args, add_quiet_arg, step

DEFAULT_OUT = Path("data/world")
DEFAULT_POIS = 2000


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "world",
        help="generate the embedded world (POIs, co-visits, images, regions) and write it as Parquet",
        description="Generate geograph's seeded synthetic world on real US geography (geonames "
        "cities, 2022 NAICS codes, H3 cells) and write it with write_world. The same --pois and "
        "--seed always give the same tables. See docs/guides/data.md for the generative process.",
    )
    p.add_argument("--pois", type=int, default=None, help=f"number of POIs (default {DEFAULT_POIS})")
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
    add_overwrite_args(p, "world")
    p.add_argument(
        "--generator",
        choices=["embedded", "latent"],
        default="embedded",
        help="embedded (default) or latent: the latent-community world of geograph.data.latent_world "
        "(hidden visitor communities; no images, --images and --embedding-dim are ignored; default "
        "states: the 48 contiguous ones)",
    )
    p.add_argument(
        "--pois-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="take the POIs of the data folder DIR (e.g. from `geograph import osm`) instead of generating "
        "them, and generate seeded synthetic co-visits (and visits, dwell, area, open hours) over them; "
        "--pois, --states, --images, --embedding-dim and --generator do not apply",
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
    if args.pois_from is not None:
        return _world_over_pois(args)
    _check_out(out, args.overwrite, args.replace)  # before spending time on generation
    args.pois = DEFAULT_POIS if args.pois is None else args.pois
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


def _read_pois_folder(folder: Path):
    """The validated POI table of a data folder (its manifest checked when it has one)."""
    from geograph.data import read_pois
    from geograph.data.world_io import find_table, verify_world
    from geograph.errors import DataValidationError

    if not folder.is_dir():
        raise DataValidationError("--pois-from: data folder not found (expected a directory)", file=folder)
    verify_world(folder)
    path = find_table(folder, "pois")
    if path is None:
        raise DataValidationError(
            "--pois-from: the folder has no POI table (pois.parquet, pois.csv or pois/)", file=folder
        )
    return read_pois(path)


def _world_over_pois(args: argparse.Namespace) -> int:
    from rich.console import Console

    from geograph.data.synthetic import generate_over_pois
    from geograph.data.world_io import write_world
    from geograph.data.world_summary import print_world_summary
    from geograph.errors import ConfigError

    out: Path = args.out
    given = [
        flag
        for flag, on in (
            ("--pois", args.pois is not None),
            ("--states", args.states is not None),
            ("--images", args.images is not None),
            ("--generator", args.generator != "embedded"),
        )
        if on
    ]
    if given:
        raise ConfigError(
            f"--pois-from takes the POIs of {args.pois_from}; {', '.join(given)} do(es) not apply with it"
        )
    if out.resolve() == args.pois_from.resolve():
        raise ConfigError(f"--out must differ from --pois-from ({out}): the source folder is read, not rewritten")
    _check_out(out, args.overwrite, args.replace)
    quiet = args.quiet or args.no_progress
    with step(f"reading the POIs of {args.pois_from}", quiet):
        pois = _read_pois_folder(args.pois_from)
    with step(f"generating co-visits over {pois.height:,} POIs", quiet):
        t0 = time.perf_counter()
        world = generate_over_pois(pois, seed=args.seed, covisits_per_poi=args.covisits_per_poi)
        t_gen = time.perf_counter() - t0
    world.meta["pois_from"] = str(args.pois_from)
    with step(f"writing {out}", quiet):
        t0 = time.perf_counter()
        write_world(world, out, partition_by=args.partition_by, overwrite=args.overwrite, replace=args.replace)
        t_write = time.perf_counter() - t0
    console = Console()
    print_world_summary(world, console=console, title=f"world {out} (POIs of {args.pois_from}, seed {args.seed})")
    console.print(
        f"generated in {t_gen:.1f} s, written in {t_write:.1f} s to {out}"
        + (f" (partitioned by {args.partition_by})" if args.partition_by else "")
        + "; the co-visits and the visits / dwell / area / open-hours columns are synthetic",
        markup=False,
    )
    return 0
