"""Print the troubleshooting table of docs/readme/reliability.md: every error a user can meet.

    .venv/bin/python tests/reliability/error_table.py > /tmp/errors.md

Collects every ``raise`` of a geograph error (DataValidationError, ConfigError,
CheckpointError, TrackingError, DistributedError, and the ``ctx.error`` / helper calls that build them) from
the package source with ``ast``, renders each message template (``<name>`` where the message
inserts a value) and pairs it with what to do (the rules below; messages that already say how
to fix themselves get "as the message says").
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "geograph"
ERRORS = {
    "DataValidationError",
    "ConfigError",
    "CheckpointError",
    "TrackingError",
    "DistributedError",
    "GeographError",
    "error",
    "unknown_value_error",
    "_bad",
    "_error",
}

AREAS = [
    ("data/readers/", "Reading tables (POIs, co-visits, images, regions)"),
    ("data/safegraph.py", "SafeGraph / Advan Monthly Patterns"),
    ("data/world_io.py", "World folders"),
    ("data/", "Embedded world and text places"),
    ("config.py", "Configs and --set overrides"),
    ("covisit/config.py", "Configs and --set overrides"),
    ("geolocate/config.py", "Configs and --set overrides"),
    ("graph/cache.py", "Caches and checkpoints"),
    ("graph/", "Graph construction and splits"),
    ("nn/", "Models"),
    ("covisit/", "Co-visitation training, evaluation and models"),
    ("geolocate/", "Geolocation training, evaluation and models"),
    ("train/", "Training loop, checkpoints and resume"),
    ("tracking/", "MLflow tracking, runs, model registry, UI"),
    ("experiments/", "Experiment suites, task registry and comparison"),
    ("distributed/", "Distributed training"),
    ("retrieval/", "Geolocation galleries"),
    ("analytics/", "Analytics queries and maps"),
    ("cli/", "Command line"),
]

# (substring of the message template, what to do); first match wins
ADVICE = [
    (
        "not completely written",
        "a writer was killed mid-way: write the world again (`geograph world --overwrite`)",
    ),
    (
        "manifest.json",
        "write the world again; if you edited or replaced a table on purpose, delete manifest.json "
        "(the tables are then read unchecked)",
    ),
    (
        "cannot run the query",
        "load the folder with load_world to find the bad table; report it if that passes",
    ),
    ("saved as a pickle", "train the gradient-boosted model again: it is saved as gbt.skops"),
    ("gradient-boosted", "train the model again; never copy model files between bundles"),
    ("must be unique", "remove or rename the duplicated row (the message names both rows)"),
    ("missing required column", "add the column, or map yours onto it with column_map={'yours': 'theirs'}"),
    ("column_map", "fix column_map: every key must be a column of the file, every value a distinct new name"),
    ("file not found", "check the path (relative paths are read from the working directory)"),
    ("unsupported file type", "save the table as .csv, .csv.gz, .tsv, .parquet or .pq"),
    ("is empty", "the file / table has no data rows: regenerate or re-export it"),
    (
        "cannot read",
        "the file is truncated, not in the format its suffix says, or damaged: re-export or re-download it",
    ),
    ("truncated", "re-export or re-download the file; for a checkpoint, remove it and train again"),
    (
        "corrupt",
        "remove the file: a cache is rebuilt on the next run, a checkpoint means training from scratch",
    ),
    ("bad header", "the file was not written by geograph: never point geograph at a file you did not write"),
    ("could not be decoded", "the file holds something other than tensors (e.g. a pickle): remove it"),
    (
        "different config",
        "train with the config that wrote the checkpoint, or drop --resume / remove the folder",
    ),
    ("<col> must be in [", "fix the value in that row (coordinates are WGS84 degrees: latitude first)"),
    ("config key", "fix the spelling; the message lists the known keys"),
    ("unknown group", "use the relation groups the message lists"),
    ("duplicate", "remove the duplicated row or id"),
    ("must be finite", "replace inf / NaN in that row"),
    ("every row needs", "fill the missing value in that row"),
    ("have 6 digits", "use a 6-digit 2022 NAICS code (the message suggests the closest valid prefix)"),
    ("naics", "use a 6-digit 2022 NAICS code (text or integer)"),
    ("state must be a 2-letter", "use a USPS code (CA, NY, DC, PR, ...)"),
    ("unknown state", "use a USPS code that occurs in the data"),
    ("h3_cell", "use H3 cell indexes as hex text (e.g. 8828308281fffff) or 64-bit integers"),
    ("embedding", "give each image one JSON list of finite floats, all of one length"),
    ("unknown POI id", "every co-visit end must be a poi_id of the POI table: fix the id or add the POI"),
    ("co-visit names POI", "every co-visit end must be a poi_id of the POI table: fix the id or add the POI"),
    (
        "co-visit form",
        "name the columns as one of the three co-visit forms (src_poi_id/dst_poi_id/visitors, ...)",
    ),
    ("64-bit", "the count is beyond 2**63: check the column for a unit or parsing error"),
    ("count", "visitors must be whole numbers >= 0"),
    ("malformed", "fix the JSON map in that row, or pass on_error='skip' to drop such maps and list them"),
    ("on_error", "use on_error='raise' or 'skip'"),
    ("stored twice", "keep one of the files (e.g. delete pois.csv when pois.parquet is the table)"),
    ("world has no", "write the world with `geograph world` / write_world, or add the missing table"),
    ("world folder not found", "pass an existing world folder (--data DIR)"),
    ("meta.json", "fix or delete meta.json (it is provenance only)"),
    (
        "output folder is not empty",
        "pick a new folder, or pass --overwrite to replace the world's files (other files stay)",
    ),
    ("output path exists", "--out must be a folder, not a file"),
    (
        "must be of type",
        "give the value the type the message names (numbers without quotes, lists as [a, b])",
    ),
    ("unknown key", "fix the spelling; the message lists the known keys"),
    ("unknown top-level", "fix the spelling; the message lists the known sections"),
    ("must be a mapping", "write the section as key: value lines"),
    ("not valid YAML", "fix the YAML syntax at the line the message gives"),
    ("not UTF-8", "save the config as UTF-8 text"),
    ("aliases", "the YAML expands to a huge document (alias bomb): write it out plainly"),
    ("keys must be text", "quote keys that look like numbers or dates"),
    ("values must be numbers", "remove YAML tags such as !!binary / !!set"),
    (
        "plain folder name",
        "name the config without '/', '\\\\' or a leading '.' (it names the checkpoint folder)",
    ),
    ("override", "write --set section.key=value (the value is YAML)"),
    ("does not exist", "check the path"),
    (
        "not reachable",
        "start the tracking server (`geograph ui`) or fix --tracking-uri / MLFLOW_TRACKING_URI",
    ),
    ("refusing to bind", "keep the default 127.0.0.1, or pass --allow-remote behind an authenticating proxy"),
    ("already in use", "pick another --port"),
    ("port must be", "use a port in 1..65535"),
    ("no experiment named", "check the experiment name (the message lists the known ones)"),
    ("no finished run", "check --metric (the message lists the logged metrics) or finish a run first"),
    ("no run", "check the run id (`geograph compare` or the MLflow UI lists them)"),
    ("does not exist in", "check the run id and the tracking store"),
    ("needs a model", "pass --run-id or --model-uri of a `geograph train covisit` run"),
    ("needs a trained model", "pass --run-id or --model-uri of a `geograph train covisit` run"),
    ("not installed", "install the optional package as the message says"),
    ("is missing", "reinstall the package the message names"),
    ("split left no training pairs", "lower split.val_frac / split.test_frac, or give more co-visit rows"),
    ("needs at least 3 groups", "use the 'edges' protocol, or a world with more states / cells"),
    ("suite", "fix the suite file as the message says"),
    ("mixed-type", "give each pandas column one type (e.g. df[c] = df[c].astype(str)) before reading"),
    ("lazyframe", "collect the LazyFrame yourself to see polars' own error, fix it, then read again"),
    (
        "column (first value",
        "the column has the wrong type: convert it (e.g. strings to numbers) before reading",
    ),
    ("got a ", "the column has the wrong type: convert it before reading"),
    ("no pois", "pick states that have POIs in this world"),
    ("needs", "as the message says"),
    ("must be", "give a value of the kind / range the message states"),
    ("alias", "aliases are letters, digits, '_' or '-', not like 'v1'"),
    ("model URI", "use runs:/RUN_ID/model, models:/NAME/VERSION or models:/NAME@ALIAS"),
]


def _template(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            else:
                expr = ast.unparse(part.value)
                name = expr.split("(")[-1].split("[")[0].strip(")").split(".")[-1] or "value"
                if expr.startswith("_show(") or "[i]" in expr or "[row]" in expr:
                    name = "value"
                if " if " in expr:
                    name = "kind"
                out.append(f"<{name}>")
        return "".join(out)
    if isinstance(node, ast.BinOp):
        left, right = _template(node.left), _template(node.right)
        return (left or "") + (right or "<…>")
    return None


def collect() -> list[tuple[str, str, str]]:
    """``(area, message template, location)`` of every geograph error raised in the package."""
    rows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            f = node.exc.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name not in ERRORS:
                continue
            msg = _template(node.exc.args[0])
            if msg is None:
                continue
            if name == "unknown_value_error":
                msg = f"unknown {msg} <value>; did you mean <close matches>?"
            area = (
                next(a for prefix, a in AREAS if rel.startswith(prefix) or prefix in rel)
                if any(rel.startswith(p) or p in rel for p, _ in AREAS)
                else "Other"
            )
            rows.append((area, msg, f"{rel}:{node.lineno}"))
    return rows


def advice(msg: str) -> str:
    low = msg.lower()
    for key, text in ADVICE:
        if key.lower() in low:
            return text
    if any(w in low for w in ("; expected", "use ", "pass ", "set ", "give ", "install", "pick ", "remove ")):
        return "as the message says"
    return "change the value or argument the message names"


def main() -> None:
    rows = collect()
    order = {a: i for i, (_, a) in enumerate(AREAS)}
    seen: set[tuple[str, str]] = set()
    print(
        f"{len(rows)} raise sites. Every message starts `file <path>, row <n>, field '<name>': ` when a file, "
        "row or field is to blame; the CLI prints it after `geograph: error: ` and exits with code 2.\n"
    )
    current = None
    for area, msg, where in sorted(rows, key=lambda r: (order.get(r[0], 99), r[2])):
        if (area, msg) in seen:
            continue
        seen.add((area, msg))
        if area != current:
            print(f"\n**{area}**\n\n| Message | Raised at | What to do |\n|---|---|---|")
            current = area
        text = " ".join(msg.split()).replace("|", "\\|")
        shown = f"`` {text} ``" if "`" in text else f"`{text}`"  # a code span: <col> stays visible
        print(f"| {shown} | `{where}` | {advice(msg)} |")


if __name__ == "__main__":
    main()
