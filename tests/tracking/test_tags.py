"""Run tags: config hashes, data fingerprints, provenance."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from geograph.errors import ConfigError
from geograph.experiments.registry import TASKS, get_task, register_task, unregister_task
from geograph.tracking.tags import (
    NO_DATA,
    TAG_DATA_FINGERPRINT,
    config_hash,
    data_fingerprint,
    data_paths_in,
    default_tags,
    run_tags,
)


def test_config_hash_ignores_key_order() -> None:
    a = {"model": {"hidden": 32, "name": "sage"}, "seed": 0}
    b = {"seed": 0, "model": {"name": "sage", "hidden": 32}}
    assert config_hash(a) == config_hash(b)
    assert len(config_hash(a)) == 16
    assert config_hash(a) != config_hash({**a, "seed": 1})


def test_data_fingerprint_follows_content(tmp_path: Path) -> None:
    d = tmp_path / "world"
    d.mkdir()
    (d / "pois.csv").write_text("id\n1\n")
    first = data_fingerprint(d)
    assert data_fingerprint(d) == first
    (d / "pois.csv").write_text("id\n2\n")
    assert data_fingerprint(d) != first
    assert data_fingerprint() == NO_DATA
    df = pl.DataFrame({"a": [1, 2]})
    assert data_fingerprint(df) == data_fingerprint(pl.DataFrame({"a": [1, 2]}))
    assert data_fingerprint(df) != data_fingerprint(pl.DataFrame({"a": [1, 3]}))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_fingerprint(tmp_path / "missing")


def test_data_paths_in_skips_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("world", "cache", "ckpt"):
        (tmp_path / name).mkdir()
    cfg = {
        "data": {"world_dir": "world", "cache_dir": "cache", "n_pois": 10},
        "train": {"checkpoint_dir": "ckpt", "loss": "mse"},
        "tracking": {"experiment": "world"},
    }
    assert data_paths_in(cfg) == [Path("world")]


def test_default_and_run_tags() -> None:
    tags = default_tags()
    assert {"geograph.device", "geograph.git_commit", "geograph.version.mlflow"} <= set(tags)
    assert tags["geograph.malloc"] in ("glibc", "tcmalloc", "system")
    assert all(isinstance(v, str) for v in tags.values())
    assert run_tags(data_fingerprint="abc")[TAG_DATA_FINGERPRINT] == "abc"


def test_task_registry() -> None:
    assert TASKS["covisit"] == "geograph.covisit:run_from_config"
    assert TASKS["geolocate"] == "geograph.geolocate:run_from_config"

    def fn(config, *, tracking_uri=None, fast=False):
        return {"run_id": "r", "metrics": {}}

    register_task("unit_fn", fn)
    try:
        assert get_task("unit_fn") is fn
        with pytest.raises(ConfigError, match="already registered"):
            register_task("unit_fn", fn)
    finally:
        unregister_task("unit_fn")
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        get_task("nope")
    assert get_task("geograph.experiments.registry:available_tasks")() == sorted(TASKS)
    register_task("unit_path", "geograph.no_such_module:run", overwrite=True)
    try:
        with pytest.raises(ConfigError, match="cannot import 'geograph.no_such_module'"):
            get_task("unit_path")
    finally:
        unregister_task("unit_path")
    assert "unit_path" not in TASKS
