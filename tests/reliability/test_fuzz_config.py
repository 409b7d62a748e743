"""Fuzzed configs: CovisitConfig.from_dict, load_config_file, apply_overrides (and GeolocateConfig).

A valid experiment config (experiments/covisit_naics_sage.yaml) is mutated: keys removed or
added, values replaced by any YAML value (numbers of every kind, text, lists, mappings, null),
sections replaced by scalars. The result must be a config whose every field has its declared
type, or a ConfigError; nothing else. Config *files* are fuzzed as text and bytes (invalid
YAML, non-mappings, python tags, binary, alias bombs); ``--set`` overrides as strings.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from geograph.covisit.config import CovisitConfig, apply_overrides, load_config_file
from geograph.errors import ConfigError

from .counting import bump
from .fuzzlib import time_limit
from .test_fuzz_readers import fuzz_settings

ROOT = Path(__file__).parents[2]
VALID = yaml.safe_load((ROOT / "experiments" / "covisit_naics_sage.yaml").read_text())
BUDGETS = [pytest.param(50, id="fast"), pytest.param(1000, id="slow", marks=pytest.mark.slow)]

# every value YAML can give (safe_load): scalars, lists, mappings, dates
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.dates(),
    st.sampled_from(["1e-3", "0x10", "yes", "~", "", "nan", "-1", "3", "[1, 2]", "../../etc", "a/b"]),
)
yaml_values = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the declared type ``hint`` (ints count as floats)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(conforms(v, args[0]) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint) and all_fields_typed(value)
    return True


def all_fields_typed(obj: Any) -> bool:
    hints = typing.get_type_hints(type(obj))
    bad = [f.name for f in dataclasses.fields(obj) if not conforms(getattr(obj, f.name), hints[f.name])]
    assert not bad, f"{type(obj).__name__}: fields {bad} do not have their declared types: " + ", ".join(
        f"{b}={getattr(obj, b)!r}" for b in bad
    )
    return True


@st.composite
def mutated_config(draw) -> dict:
    d = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        sections = [k for k, v in d.items() if isinstance(v, dict)]
        kind = draw(st.sampled_from(["value", "value", "value", "drop", "add", "section", "top"]))
        if kind == "top" or not sections:
            d[
                draw(st.sampled_from(["name", "task", "data", "model", "train", draw(st.text(max_size=6))]))
            ] = draw(yaml_values)
            continue
        sec = draw(st.sampled_from(sections))
        keys = list(d[sec])
        if kind == "section":
            d[sec] = draw(_scalar | st.lists(_scalar, max_size=3))
        elif kind == "drop" and keys:
            del d[sec][draw(st.sampled_from(keys))]
        elif kind == "add":
            d[sec][draw(st.text(max_size=8))] = draw(yaml_values)
        else:
            known = {
                "train": ["epochs", "lr", "seed", "patience", "loss", "resume", "checkpoint_dir"],
                "model": ["hidden", "layers", "dropout", "relations", "head_hidden", "naics", "residual"],
                "graph": ["cell_resolution", "near_k", "near_radius_km", "granularity"],
                "data": ["n_pois", "world_dir", "cache_dir"],
                "split": ["val_frac", "protocol"],
            }
            key = draw(st.sampled_from(keys + known.get(sec, ["x"])))
            d[sec][key] = draw(yaml_values)
    return d


@pytest.mark.parametrize("budget", BUDGETS)
def test_covisit_config_from_dict(budget: int) -> None:
    @fuzz_settings(budget)
    @given(d=mutated_config())
    def case(d: dict) -> None:
        bump("fuzz.config.from_dict")
        try:
            cfg = CovisitConfig.from_dict(d)
        except ConfigError:
            return
        all_fields_typed(cfg)
        cfg.hash()  # and it can be hashed / logged
        assert "/" not in cfg.name and "\\" not in cfg.name and not cfg.name.startswith(".")  # a folder name

    case()


def test_valid_configs_still_load() -> None:
    for path in sorted((ROOT / "experiments").glob("covisit_*.yaml")):
        d = load_config_file(path)
        if "configs" in d:  # a suite
            continue
        all_fields_typed(CovisitConfig.from_dict(d))
    cfg = CovisitConfig.from_dict({"train": {"lr": "1e-3"}})  # YAML 1.1 reads 1e-3 as text
    assert cfg.train.lr == pytest.approx(1e-3)


_yaml_texts = st.one_of(
    st.text(max_size=200),
    st.builds(yaml.safe_dump, yaml_values.filter(lambda v: not isinstance(v, float) or not math.isnan(v))),
    st.sampled_from(
        [
            "",
            "---",
            "~",
            "[1, 2]",
            "a: [",
            "a: {b: 1",
            "!!python/object/apply:os.system ['echo pwned']",
            "!!python/name:os.system",
            "a: !!binary aGVsbG8=",
            "a: !!set {x, y}",
            "? [a, b]\n: c",
            "name: 2024-01-01\n",
            "{1: 2, name: x}",
            "train: 5",
            "train: [1, 2]",
            "\t- a",
            "a: *x",
            "x: &a [1]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nz: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            "w: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nv: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
            "u: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\nt: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
            "s: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\nr: [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n",
        ]
    ),
)


@pytest.mark.parametrize("budget", BUDGETS)
def test_load_config_file(budget: int, tmp_path: Path) -> None:
    """A config file of any text or bytes: a mapping, or ConfigError naming the file; no hang."""
    path = tmp_path / "config.yaml"

    @fuzz_settings(budget)
    @given(
        text=_yaml_texts,
        raw=st.none() | st.binary(max_size=64),
        overrides=st.lists(st.text(max_size=20), max_size=2),
    )
    def case(text: str, raw: bytes | None, overrides: list[str]) -> None:
        bump("fuzz.config.file")
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with time_limit(30):
            try:
                d = load_config_file(path)
                d = apply_overrides(d, overrides)
                cfg = CovisitConfig.from_dict(d)
            except ConfigError as exc:
                if "override" not in str(exc) and "section" not in str(exc) and "key" not in str(exc):
                    assert str(path) in str(exc), exc
                return
        all_fields_typed(cfg)

    case()


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "missing.yaml": None,
        "binary.yaml": b"\xff\xfe\x00garbage",
        "python.yaml": b"!!python/object/apply:os.system ['touch pwned']\n",
        "list.yaml": b"- a\n- b\n",
        "empty.yaml": b"",
        "bomb.yaml": _BOMB.encode(),
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with time_limit(30), pytest.raises(ConfigError) as ei:
            CovisitConfig.from_dict(apply_overrides(load_config_file(path), []))
        assert str(path) in str(ei.value), (name, ei.value)
        bump("fuzz.config.file")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize("budget", BUDGETS)
def test_overrides(budget: int) -> None:
    """``--set`` strings of any shape: a config dict, or ConfigError naming the override."""

    @fuzz_settings(budget)
    @given(
        items=st.lists(
            st.one_of(
                st.text(max_size=30),
                st.builds(
                    lambda k, v: f"{k}={v}",
                    st.sampled_from(
                        [
                            "train.epochs",
                            "model.hidden",
                            "train",
                            "x.y.z",
                            "",
                            "train.lr",
                            "model.relations",
                            "..",
                            "name",
                            " a . b ",
                        ]
                    ),
                    st.text(max_size=15)
                    | st.sampled_from(["[1,", "{a: 1}", "!!python/name:os.system", "*x", "&a [1]"]),
                ),
            ),
            max_size=3,
        )
    )
    def case(items: list[str]) -> None:
        bump("fuzz.config.overrides")
        with time_limit(30):
            try:
                cfg = CovisitConfig.from_dict(apply_overrides(copy.deepcopy(VALID), items))
            except ConfigError:
                return
        all_fields_typed(cfg)

    case()


def test_geolocate_config_types() -> None:
    import warnings

    with warnings.catch_warnings():  # MLflow's note on the pyfunc model's type hints, at import
        warnings.simplefilter("ignore")
        from geograph.geolocate.config import GeolocateConfig

    bad = [
        ({"train": {"lr": "abc"}}, "train.lr"),
        ({"train": {"epochs": 2.5}}, "train.epochs"),
        ({"head": {"hidden": [1]}}, "head.hidden"),
        ({"train": {"seed": None}}, "train.seed"),
        ({"predict": {"kde_grid": "abc"}}, "predict.kde_grid"),
        ({"encoder": {"options": [1]}}, "encoder.options"),
        ({"tracking": {"log_model": "yes"}}, "tracking.log_model"),
    ]
    accepted, unnamed = [], []
    for d, where in bad:
        try:
            cfg = GeolocateConfig.from_dict(d)
        except ConfigError as exc:
            if where not in str(exc):
                unnamed.append((where, str(exc)))
            continue
        try:
            all_fields_typed(cfg)
        except AssertionError:
            accepted.append(d)
    assert not accepted, f"accepted with wrong types: {accepted}"
    assert not unnamed, f"errors that do not name the field: {unnamed}"
    # The shipped configs still load, and YAML 1.1's 1e-3 (text) is read as a float.
    for path in sorted((ROOT / "experiments").glob("geolocate_*.yaml")):
        all_fields_typed(GeolocateConfig.from_dict(load_config_file(path)))
    assert GeolocateConfig.from_dict({"train": {"lr": "1e-3"}}).train.lr == pytest.approx(1e-3)
