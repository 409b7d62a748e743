"""geograph.config: one reader, one ``--set`` path, one validator, one hash, one place for defaults."""

from __future__ import annotations

import ast
import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import yaml

from geograph.cli.main import main
from geograph.config import (
    apply_overrides,
    config_hash,
    defaults,
    describe,
    from_dict,
    load_config_file,
    read_config,
    undot,
)
from geograph.covisit.config import CovisitConfig
from geograph.errors import ConfigError
from geograph.graph.config import GraphConfig
from geograph.nn.covisit_model import ModelConfig
from geograph.tracking.tags import config_hash as tags_config_hash

with warnings.catch_warnings():  # MLflow's note on the pyfunc model's type hints, at import
    warnings.simplefilter("ignore")
    from geograph.geolocate.config import GeolocateConfig

ROOT = Path(__file__).parents[1]


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- errors: file, key path, nearest key --------------------------------------------------


def test_unknown_key_names_the_file_the_key_path_and_the_nearest_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as ei:
        CovisitConfig.from_dict(load_config_file(path), source=str(path))
    assert str(ei.value) == f"{path}: unknown key 'train.epoch'; did you mean 'train.epochs'?"
    assert ei.value.key == "train.epoch"
    with pytest.raises(ConfigError, match=r"unknown top-level config key 'trian'; did you mean 'train'\?"):
        GeolocateConfig.from_dict({"trian": {}})
    with pytest.raises(ConfigError, match=r"unknown key 'predict.fusion_wieght'; did you mean 'predict.fusion_weight'"):
        GeolocateConfig.from_dict({"predict.fusion_wieght": 0.5})  # a dotted key
    with pytest.raises(ConfigError, match=r"unknown key 'train.zzz'; known keys of 'train': batch_size, "):
        GeolocateConfig.from_dict({"train": {"zzz": 1}})  # nothing close: the known keys
    # a section class on its own names its keys under its section
    with pytest.raises(ConfigError, match=r"unknown graph config key 'graph.cell_res'; did you mean 'graph.cell_resolution'"):
        GraphConfig.from_dict({"cell_res": 7})
    with pytest.raises(ConfigError, match=r"unknown model config key 'model.hiden'; did you mean 'model.hidden'"):
        ModelConfig.from_dict({"hiden": 3})


def test_wrong_type_names_the_key_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  lr: abc\n")
    with pytest.raises(ConfigError) as ei:
        CovisitConfig.from_dict(load_config_file(path), source=str(path))
    assert str(ei.value) == f"{path}: train.lr must be of type float, got 'abc'"
    bad = [
        ({"tracking": {"log_model": "yes"}}, "tracking.log_model must be of type bool, got 'yes'"),
        ({"train": {"epochs": 2.5}}, "train.epochs must be of type int, got 2.5"),
        ({"train": {"epochs": "3"}}, "train.epochs must be of type int, got '3'"),
        ({"train": {"epochs": True}}, "train.epochs must be of type int, got True"),
        ({"train": {"lr": math.nan}}, "train.lr must be of type float, got nan"),
        ({"train": {"lr": "nan"}}, "train.lr must be of type float, got 'nan'"),
        ({"train": {"seed": None}}, "train.seed must be of type int, got None"),
        ({"model": {"relations": ["near", 1]}}, "model.relations must be of type list[str], got ['near', 1]"),
        ({"graph": {"near_k": [1]}}, "graph.near_k must be of type int, got [1]"),
        ({"train": [1, 2]}, "section 'train' must be a mapping of key: value, got list [1, 2]"),
    ]
    for d, message in bad:
        with pytest.raises(ConfigError) as ei:
            CovisitConfig.from_dict(d)
        assert str(ei.value) == message
    with pytest.raises(ConfigError, match=r"^a config must be a mapping"):
        CovisitConfig.from_dict([1])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"encoder.finetune must be of type bool \| str, got 3$"):
        GeolocateConfig.from_dict({"encoder": {"finetune": 3}})  # one problem, not one per union member


def test_values_get_their_declared_types() -> None:
    cfg = CovisitConfig.from_dict(
        {
            "name": 2024,  # YAML reads it as a number; it names a folder
            "train": {"lr": "1e-3", "grad_clip": 2, "checkpoint_dir": None},  # YAML 1.1 reads 1e-3 as text
            "model": {"relations": ("covisits", "near"), "head_hidden": (8,)},  # tuples for lists
            "data": None,  # an empty section is its defaults
        }
    )
    assert cfg.name == "2024"
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)
    assert cfg.train.grad_clip == 2.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.model.relations == ["covisits", "near"] and cfg.model.head_hidden == [8]
    assert cfg.data == CovisitConfig().data
    # a section given in part keeps its field default for the rest (graph: no images)
    assert CovisitConfig.from_dict({"graph": {"near_k": 3}}).graph == dataclasses.replace(
        CovisitConfig().graph, near_k=3
    )
    assert CovisitConfig.from_dict({"graph": {"near_k": 3}}).graph.include_images is False
    # range checks still run and raise ConfigError
    with pytest.raises(ConfigError, match="train.loss must be mse, huber or poisson"):
        CovisitConfig.from_dict({"train": {"loss": "l7"}})
    with pytest.raises(ConfigError, match="name must be a plain folder name"):
        CovisitConfig.from_dict({"name": "../x"})
    with pytest.raises(ConfigError, match="method must be one of"):
        GeolocateConfig.from_dict({"method": "oracle"})
    with pytest.raises(ConfigError, match="task must be 'geolocate'"):
        GeolocateConfig.from_dict({"task": "covisit"})


def test_range_check_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=rf"^{path}: train.epochs must be >= 1, got 0$"):
        read_config(path, [], CovisitConfig)


# --- one --set path ------------------------------------------------------------------------


def test_set_overrides_nested_and_dotted_keys() -> None:
    d = apply_overrides(
        {"train.epochs": 3, "model": {"hidden": 8}},  # a dotted key, as a file may hold
        ["train.lr=0.1", "model.relations=[covisits, near]", " graph . near_k = 4", "train.epochs=5"],
    )
    assert d == {
        "train": {"epochs": 5, "lr": 0.1},
        "model": {"hidden": 8, "relations": ["covisits", "near"]},
        "graph": {"near_k": 4},
    }
    cfg = CovisitConfig.from_dict(d)
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.hidden, cfg.graph.near_k) == (5, 0.1, 8, 4)
    assert undot({"a.b.c": 1, "a": {"d": 2}}) == {"a": {"b": {"c": 1}, "d": 2}}
    with pytest.raises(ConfigError, match="'train' is not a section"):
        undot({"train": 5, "train.lr": 1})
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["model.hidden"])


def test_errors_name_the_override_that_set_the_bad_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"^--set train.epoch=4: unknown key 'train.epoch'; did you mean"):
        read_config(path, ["train.epoch=4"], CovisitConfig)
    with pytest.raises(ConfigError, match=r"^--set train.epochs=0: train.epochs must be >= 1, got 0$"):
        read_config(path, ["train.epochs=0"], CovisitConfig)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'y.yaml'}: train.lr must be of type float"):
        read_config(_write(tmp_path, "train: {lr: abc}\n", "y.yaml"), ["train.epochs=2"], CovisitConfig)
    assert read_config(path, ["train.lr=0.5"], CovisitConfig) == {"name": "x", "train": {"epochs": 3, "lr": 0.5}}


# --- one hash ------------------------------------------------------------------------------

# Computed with the code before geograph.config existed: checkpoints and caches are keyed by them.
# Co-visitation configs with the defaults of then (train.monitor=val_r2, split.neg_ratio=1,
# split.rank_negatives=20) keep those hashes.
COVISIT_DEFAULT_HASH = "44674132d7e35f25"
COVISIT_STATES_HASH = "43fe677869703686"
COVISIT_OBSERVED_DEFAULT_HASH = "44c353477ebd7ccc"  # the defaults since observed-pair selection
OLD_DEFAULTS = {"neg_ratio": 1.0, "rank_negatives": 20}
GEOLOCATE_DEFAULT_KEY = "654cf4c396da"
GEOLOCATE_OTHER_KEY = "363f901e17ff"
TAGS_HASH = "316fd28b52aed1a5"


def test_hashes_are_unchanged() -> None:
    assert CovisitConfig().hash() == CovisitConfig.from_dict({}).hash() == COVISIT_OBSERVED_DEFAULT_HASH
    old = {"split": OLD_DEFAULTS, "train": {"monitor": "val_r2"}}
    assert CovisitConfig.from_dict(old).hash() == COVISIT_DEFAULT_HASH
    states = {"split": {"protocol": "states", **OLD_DEFAULTS}, "data": {"loading": "per_state"},
              "train": {"lr": "1e-3", "monitor": "val_r2"}}
    assert CovisitConfig.from_dict(states).hash() == COVISIT_STATES_HASH
    # model.mass_feature "auto" (the default since it exists) hashes as "visits", the default before
    visits = CovisitConfig.from_dict({"model": {"mass_feature": "visits"}})
    assert visits.hash() == COVISIT_OBSERVED_DEFAULT_HASH
    other_mass = CovisitConfig.from_dict({"model": {"mass_feature": "raw_visitor_counts"}})
    assert other_mass.hash() != COVISIT_OBSERVED_DEFAULT_HASH
    assert GeolocateConfig().training_key() == GEOLOCATE_DEFAULT_KEY
    other = {
        "encoder": {"name": "sinusoidal", "pretrained": False, "finetune": True},
        "train.epochs": 3,
        "head": {"geo_smoothing_km": 50},
    }
    assert GeolocateConfig.from_dict(other).training_key() == GEOLOCATE_OTHER_KEY
    assert tags_config_hash({"task": "covisit", "config": {"b": 1, "a": [1, 2.5, None]}, "fast": False}) == TAGS_HASH


def test_hash_leaves_out_only_what_does_not_change_results() -> None:
    base = CovisitConfig.from_dict({})
    same = CovisitConfig.from_dict(
        {"train": {"device": "cpu", "threads": 3, "checkpoint_dir": "elsewhere"}, "tracking": {"experiment": "e"}}
    )
    assert same.hash() == base.hash()
    assert CovisitConfig.from_dict({"train": {"seed": 1}}).hash() != base.hash()
    assert config_hash({"a": 1, "b": {"c": 2}}, exclude=["b.c", "x.y"]) == config_hash({"a": 1, "b": {}})
    assert len(config_hash({"a": 1}, length=12)) == 12
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})


# --- every default in one place ------------------------------------------------------------


def test_defaults_and_describe() -> None:
    d = defaults(CovisitConfig)
    assert d == CovisitConfig().to_dict() and d["graph"]["include_images"] is False
    info = describe(CovisitConfig)
    assert info["train"]["epochs"] == {"default": 80, "type": "int", "doc": "Maximum epochs."}
    assert info["graph"]["include_images"]["default"] is False  # the field default, not GraphConfig's
    assert info["data"]["world_dir"]["type"] == "str | None"
    assert describe(GeolocateConfig)["knn"]["power_grid"]["doc"].startswith("Tried on validation")


@pytest.mark.parametrize("task, cls", [("covisit", CovisitConfig), ("geolocate", GeolocateConfig)])
def test_config_show_prints_yaml_that_round_trips(task, cls, capsys, tmp_path: Path) -> None:
    path = _write(tmp_path, "train:\n  epochs: 7\n")
    assert main(["config", "show", task, "--config", str(path), "--set", "train.lr=1e-2", "--set", "train.seed=3"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    cfg = from_dict(cls, out)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.seed) == (7, 0.01, 3)
    assert cfg.to_dict() == out
    assert main(["config", "show", task]) == 0
    assert from_dict(cls, yaml.safe_load(capsys.readouterr().out)) == cls.from_dict({})
    assert main(["config", "show", task, "--set", "train.epoch=3"]) == 2
    assert "--set train.epoch=3: unknown key 'train.epoch'; did you mean 'train.epochs'?" in capsys.readouterr().err


def test_geolocate_config_does_not_import_covisit() -> None:
    tree = ast.parse((ROOT / "geograph" / "geolocate" / "config.py").read_text(encoding="utf-8"))
    names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [n for n in names if n and n.startswith("geograph.covisit")]
    tree = ast.parse((ROOT / "geograph" / "config.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m and m.startswith("geograph")} == {"geograph.errors"}
