"""Suite files: the YAML that names the configs and seeds of an experiment suite, parsed and checked.

A suite is a YAML file::

    name: covisit_suite            # parent run name; also names the report folder
    experiment: covisit            # MLflow experiment every run of the suite goes to
    task: covisit                  # default task (geograph.experiments.registry) for every config
    metric: test_r2                # ranking metric of the final comparison (default test_r2)
    seeds: [0, 1, 2]               # every config runs once per seed
    configs:                       # a path, or a mapping with path / config, name, task, overrides
      - experiments/covisit_naics_sage.yaml
      - path: experiments/covisit_gbt.yaml
        name: gbt                  # label in the comparison (default: the config's name, else the file stem)
        overrides: {train.epochs: 5}   # dotted keys set on the loaded config
      - name: inline_example
        config: {model: {name: mlp}}   # a config written inline
    # optional
    seed_key: seed                 # dotted key the seed is written to in each config (default seed)
    higher_is_better: null         # ranking direction (default: from the metric name)
    data: [data/world]             # files / folders to fingerprint (default: every existing path
                                   #   named in a config, except under output-like keys)
    report_dir: mlruns/reports/covisit_suite   # default mlruns/reports/<name>

Relative config paths are looked up from the working directory, then beside the suite file.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from geograph.errors import ConfigError
from geograph.experiments.grouping import DEFAULT_METRIC
from geograph.metrics.covisit import covisit_metric_names

COVISIT_TASK = "covisit"

SUITE_KEYS = {
    "name",
    "experiment",
    "task",
    "metric",
    "seeds",
    "configs",
    "seed_key",
    "higher_is_better",
    "data",
    "report_dir",
}
ENTRY_KEYS = {"path", "config", "name", "task", "overrides"}


@dataclass(frozen=True)
class SuiteEntry:
    """One config of a suite.

    Attributes:
        name: Label (the ``geograph.config_name`` tag, the row name in the comparison).
        task: Task registry name.
        config: The loaded config with overrides applied, without the seed.
        path: The config file, None for an inline config.
    """

    name: str
    task: str
    config: dict[str, Any]
    path: Path | None = None


@dataclass(frozen=True)
class Suite:
    """A parsed suite file (see the module docstring for the YAML keys)."""

    name: str
    experiment: str
    entries: tuple[SuiteEntry, ...]
    seeds: tuple[int, ...]
    metric: str = DEFAULT_METRIC
    seed_key: str = "seed"
    higher_is_better: bool | None = None
    data: tuple[Path, ...] | None = None
    report_dir: Path | None = None
    path: Path | None = None


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``key="a.b"``, creating mappings on the way."""
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _find(path_str: str, base: Path | None, what: str) -> Path:
    p = Path(path_str)
    candidates = [p] if p.is_absolute() else [p, *([base / p] if base is not None else [])]
    for c in candidates:
        if c.exists():
            return c
    where = " and ".join(str(c) for c in candidates)
    raise ConfigError(f"{what} {path_str!r} not found (looked at {where})")


def _check_covisit_metric(metric: str, src: str) -> None:
    """Fail before any run when a co-visitation suite ranks by a metric no run logs."""
    known = covisit_metric_names()
    if metric in known:
        return
    # a name the metric begins (test_observed_r2 -> test_observed_r2_log1p) first, then look-alikes
    extended = [k for k in known if k.startswith(metric)]
    close = list(dict.fromkeys([*extended, *difflib.get_close_matches(metric, known, n=3)]))[:3]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known: {list(known)}"
    raise ConfigError(f"{src}: 'metric' {metric!r} is not a metric a covisit run logs; {hint}")


def parse_suite(raw: Mapping[str, Any], path: Path | None = None) -> Suite:
    """Build a :class:`Suite` from its YAML mapping.

    Raises:
        ConfigError: a key is unknown, missing or of the wrong type; a config file is missing;
            every config is a ``covisit`` task and ``metric`` is not one of
            :func:`~geograph.metrics.covisit.covisit_metric_names`.
    """
    src = str(path) if path is not None else "suite"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{src}: a suite must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{src}: unknown key(s) {unknown}; expected some of {sorted(SUITE_KEYS)}")
    name = raw.get("name") or (path.stem if path is not None else None)
    if not name or not isinstance(name, str):
        raise ConfigError(f"{src}: 'name' must be a non-empty string")
    experiment = raw.get("experiment") or name
    if not isinstance(experiment, str):
        raise ConfigError(f"{src}: 'experiment' must be a string, got {experiment!r}")
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{src}: 'seeds' must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{src}: 'seeds' has duplicates: {seeds}")
    configs = raw.get("configs")
    if not isinstance(configs, list) or not configs:
        raise ConfigError(f"{src}: 'configs' must be a non-empty list of config paths or mappings")
    default_task = raw.get("task")
    base = path.parent if path is not None else None

    entries: list[SuiteEntry] = []
    for i, item in enumerate(configs):
        where = f"{src}: configs[{i}]"
        spec: Mapping[str, Any] = {"path": item} if isinstance(item, str) else item
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a path or a mapping, got {type(item).__name__}")
        bad = sorted(set(spec) - ENTRY_KEYS)
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {bad}; expected some of {sorted(ENTRY_KEYS)}")
        if ("path" in spec) == ("config" in spec):
            raise ConfigError(f"{where}: give exactly one of 'path' or 'config'")
        cfg_path: Path | None = None
        if "path" in spec:
            cfg_path = _find(str(spec["path"]), base, f"{where}: config file")
            cfg = _read_yaml(cfg_path)
            label = (
                spec.get("name") or (cfg.get("name") if isinstance(cfg, Mapping) else None) or cfg_path.stem
            )
        else:
            cfg = spec["config"]
            label = spec.get("name")
            if not label:
                raise ConfigError(f"{where}: an inline config needs a 'name'")
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"{where}: the config must be a mapping, got {type(cfg).__name__}")
        cfg = copy.deepcopy(dict(cfg))
        overrides = spec.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{where}: 'overrides' must be a mapping of dotted keys to values")
        for k, v in overrides.items():
            set_dotted(cfg, str(k), v)
        task = spec.get("task") or default_task or cfg.get("task")
        if not task or not isinstance(task, str):
            raise ConfigError(f"{where}: no task; set 'task' in the suite, the entry or the config")
        if any(e.name == label for e in entries):
            raise ConfigError(f"{where}: duplicate config name {label!r}; give each entry a distinct 'name'")
        entries.append(SuiteEntry(name=str(label), task=task, config=cfg, path=cfg_path))

    data = raw.get("data")
    data_paths: tuple[Path, ...] | None = None
    if data is not None:
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, list):
            raise ConfigError(f"{src}: 'data' must be a list of paths, got {data!r}")
        data_paths = tuple(_find(str(d), base, f"{src}: data path") for d in data)
    hib = raw.get("higher_is_better")
    if hib is not None and not isinstance(hib, bool):
        raise ConfigError(f"{src}: 'higher_is_better' must be true, false or null, got {hib!r}")
    metric = raw.get("metric", DEFAULT_METRIC)
    seed_key = raw.get("seed_key", "seed")
    if not isinstance(metric, str) or not isinstance(seed_key, str):
        raise ConfigError(f"{src}: 'metric' and 'seed_key' must be strings")
    if all(e.task == COVISIT_TASK for e in entries):
        _check_covisit_metric(metric, src)
    report_dir = raw.get("report_dir")
    return Suite(
        name=name,
        experiment=experiment,
        entries=tuple(entries),
        seeds=tuple(seeds),
        metric=metric,
        seed_key=seed_key,
        higher_is_better=hib,
        data=data_paths,
        report_dir=Path(report_dir) if report_dir else None,
        path=path,
    )


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file {p} not found")
    return parse_suite(_read_yaml(p), p)


def run_config(entry: SuiteEntry, seed: int, seed_key: str) -> dict[str, Any]:
    """The config one run of ``entry`` gets: a copy with the seed written at ``seed_key``."""
    cfg = copy.deepcopy(entry.config)
    set_dotted(cfg, seed_key, seed)
    return cfg
