"""The one config system: YAML files, ``--set`` overrides, one validator, one hash.

A task's config is a tree of plain dataclasses (every default visible there and logged whole
to MLflow). This module reads it and checks it for every task:

* :func:`load_config_file` reads a YAML file (safe loader, alias bombs refused);
  :func:`apply_overrides` applies ``--set section.key=value`` strings (values parsed as YAML).
  Keys with dots in a file (``train.epochs: 3``) are sections written inline (:func:`undot`).
* :func:`from_dict` builds any config dataclass from a dict. The types are checked by pydantic
  (strict mode, unknown keys forbidden) against a schema derived from the dataclass
  annotations; the dataclasses' own ``__post_init__`` range checks then run. Every problem
  is a :class:`~geograph.errors.ConfigError` naming the file, the key path and, for an
  unknown key, the nearest valid key::

      experiments/x.yaml: unknown key 'train.epoch'; did you mean 'train.epochs'?
      experiments/x.yaml: train.lr must be of type float, got 'abc'

* :func:`config_hash` is the hash that names checkpoints, caches and suite runs.
* :func:`defaults` / :func:`describe` give the whole default config (``geograph config show``).

Rules pydantic's strict mode does not have are small steps here: float fields also take
numeric text (YAML 1.1 reads ``1e-3`` as a string) but not NaN; list fields take tuples; a
missing or empty section is its defaults; a section's keys are merged over its field default
(``CovisitConfig.graph`` defaults to ``include_images=False``); a top-level ``name`` given as
a number (``name: 2024``) becomes text.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import difflib
import functools
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml

from geograph.errors import ConfigError

T = TypeVar("T")

MAX_CONFIG_VALUES = 100_000
"""More values than this in one config (e.g. an alias bomb) is a ConfigError."""
SAFE_NAME = re.compile(r"^[^./\\\x00][^/\\\x00]{0,199}$")
"""A config ``name`` that names a folder: no separators, no leading dot, at most 200 characters."""
OVERRIDE_SOURCE = "--set"
"""How an error names a bad key that came from a ``--set`` override (see :func:`read_config`)."""


# ----------------------------------------------------------------------------------------
# reading: files, overrides, dotted keys
# ----------------------------------------------------------------------------------------


def _plain(value: Any, where: str, budget: list[int]) -> Any:
    """A JSON-plain copy of a YAML value: dates become ISO text; other types, keys that are not
    text, and more than ``MAX_CONFIG_VALUES`` values (YAML aliases expand) are ConfigErrors."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{where} holds more than {MAX_CONFIG_VALUES} values (nested YAML aliases?)")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where, budget) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be text, got {k!r:.80}")
            out[k] = _plain(v, where, budget)
        return out
    raise ConfigError(f"{where}: values must be numbers, text, lists or mappings, got {type(value).__name__}")


def undot(d: Mapping[str, Any]) -> dict:
    """``{"train.epochs": 3}`` -> ``{"train": {"epochs": 3}}`` (top-level keys; values copied).

    A dotted key and its section may both appear; later keys win.

    Raises:
        ConfigError: a dotted key goes through a value that is not a section.
    """
    out: dict = {}
    for k, v in d.items():
        if isinstance(k, str) and "." in k:
            sec, key = k.split(".", 1)
            node = out.setdefault(sec, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key {k!r}: '{sec}' is not a section")
            node.update(undot({key: v}))
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _override_key(item: str) -> str:
    return ".".join(p.strip() for p in item.split("=", 1)[0].split("."))


def apply_overrides(d: dict, overrides: list[str] | None) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config dict.

    This is the one ``--set`` path of every command. The result is a new dict; dotted keys
    of ``d`` are first made sections (:func:`undot`).

    Raises:
        ConfigError: an override that is not ``key=value``, a value that is not YAML, or a key
            that goes through a value that is not a section.
    """
    out = undot(_plain(d, "config", [MAX_CONFIG_VALUES]))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override must look like section.key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value: Any = _plain(yaml.safe_load(raw), f"override {item!r}", [MAX_CONFIG_VALUES])
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        node = out
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"override {item!r}: key must look like section.key, got {key!r}")
        parts = [p.strip() for p in parts]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config with ``yaml.safe_load``; errors name the file.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8, not YAML, empty, not a
            mapping, or holds values that are not plain YAML data.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if d is None:
        raise ConfigError(f"config file {path} is empty")
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(d).__name__}")
    return _plain(d, f"config file {path}", [MAX_CONFIG_VALUES])


def read_config(path: str | Path | None, overrides: list[str] | None = None, cls: type | None = None) -> dict:
    """:func:`load_config_file` (or ``{}``) with ``overrides`` applied; checked against ``cls``.

    With ``cls``, the result is validated now (:func:`from_dict`), so that an unknown or
    mistyped key names the file it came from, or ``--set`` when an override set it.

    Returns:
        The config dict (not the dataclass: task runners take dicts).
    """
    d = apply_overrides(load_config_file(path) if path else {}, overrides)
    if cls is not None:
        try:
            from_dict(cls, d, source=str(path) if path else None)
        except ConfigError as exc:
            detail, key = getattr(exc, "detail", str(exc)), getattr(exc, "key", None)
            hits = [o for o in overrides or [] if _blames(_override_key(o), key, detail)]
            if not hits:
                raise
            raise _error(detail, f"{OVERRIDE_SOURCE} {hits[-1]}", key) from None
    return d


def _blames(override: str, key: str | None, detail: str) -> bool:
    """Whether the override of key path ``override`` set the value an error is about: the
    error's key path, a key under it or a section above it; or, for a range check (no key
    path), the key the message names."""
    if key is None:
        return re.search(rf"(?<![\w.]){re.escape(override)}(?![\w.])", detail) is not None
    return override == key or override.startswith(key + ".") or key.startswith(override + ".")


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _error(detail: str, source: str | None, key: str | None = None) -> ConfigError:
    """A ConfigError ``"<source>: <detail>"`` that remembers its key path (``exc.key``)."""
    exc = ConfigError(f"{source}: {detail}" if source else detail)
    exc.key = key  # type: ignore[attr-defined]
    exc.detail = detail  # type: ignore[attr-defined]
    return exc


def _section_class(hint: Any) -> type | None:
    """The dataclass a field's annotation names (a config section), else None."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _float_text(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as text: numeric text becomes a float."""
    if isinstance(value, str):
        return float(value)  # a ValueError is reported as a wrong type
    return value


def _not_nan(value: float) -> float:
    if math.isnan(value):
        raise ValueError("NaN is not a value")
    return value


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _as_section(value: Any) -> Any:
    return {} if value is None else value


_STRICT = pydantic.ConfigDict(strict=True, extra="forbid")


def _schema_type(hint: Any) -> Any:
    """The pydantic type checking a value of the dataclass annotation ``hint``."""
    sub = _section_class(hint)
    if sub is not None:
        return Annotated[_schema(sub), pydantic.BeforeValidator(_as_section)]
    if hint is float:
        return Annotated[float, pydantic.BeforeValidator(_float_text), pydantic.AfterValidator(_not_nan)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_schema_type(a) for a in typing.get_args(hint))]  # noqa: UP007
    if origin in (list, tuple) or hint in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = _schema_type(args[0]) if args else Any
        return Annotated[list[item], pydantic.BeforeValidator(_as_list)]  # lists for tuple fields too
    if hint is dict:
        return dict[Any, Any]
    return hint


@functools.cache
def _schema(cls: type) -> type[pydantic.BaseModel]:
    """A strict pydantic model of ``cls``'s fields, all optional (a missing key keeps the
    dataclass default). Fields are aliased, so no config key can clash with a BaseModel name."""
    hints = _hints(cls)
    specs = {
        f"f{i}": (_schema_type(hints[f.name]), pydantic.Field(None, alias=f.name))
        for i, f in enumerate(dataclasses.fields(cls))
    }
    return pydantic.create_model(f"{cls.__name__}Schema", __config__=_STRICT, **specs)


@functools.cache
def _field_default_overrides(cls: type, name: str) -> dict[str, Any]:
    """Keys where a section field's default differs from its class's defaults
    (``graph: GraphConfig(include_images=False)`` -> ``{"include_images": False}``)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    sub = _section_class(_hints(cls)[name])
    if f.default_factory is dataclasses.MISSING or sub is None:
        return {}
    given, plain = f.default_factory(), sub()
    return {
        g.name: getattr(given, g.name)
        for g in dataclasses.fields(sub)
        if getattr(given, g.name) != getattr(plain, g.name)
    }


def _build(cls: type[T], given: dict) -> T:
    """``cls(**given)``, sections built first; ``given`` is already type-checked."""
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in given:
            continue
        value = given[f.name]
        sub = _section_class(hints[f.name])
        if sub is not None:
            value = _build(sub, {**copy.deepcopy(_field_default_overrides(cls, f.name)), **value})
        kwargs[f.name] = value
    return cls(**kwargs)


def _nearest(key: str, names: list[str]) -> list[str]:
    """The valid key a mistyped ``key`` most likely meant: one it abbreviates, else the closest."""
    starts = [n for n in names if len(key) >= 3 and n.startswith(key)]
    return starts[:1] if len(starts) == 1 else difflib.get_close_matches(key, names, n=1, cutoff=0.6)


def _describe_error(cls: type, d: dict, err: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    """``(key path, message)`` for one pydantic error, in the words of the dataclass fields."""
    node: Any = d
    cur: type | None = cls
    parts: list[str] = []
    hint: Any = cls
    loc = list(err["loc"])
    for i, el in enumerate(loc):
        if cur is None:
            break
        names = [f.name for f in dataclasses.fields(cur)]
        if el in names:
            parts.append(str(el))
            node = node.get(el) if isinstance(node, dict) else None
            hint = _hints(cur)[el]
            cur = _section_class(hint)
            continue
        if i == len(loc) - 1 and err["type"] in ("extra_forbidden", "invalid_key"):  # an unknown key
            path = prefix + ".".join([*parts, str(el)])
            near = _nearest(str(el), names)
            section = prefix + ".".join(parts) if parts else prefix.rstrip(".")
            if parts:
                what = "key"
            elif prefix:
                what = f"{prefix.rstrip('.')} config key"
            else:
                what = "top-level config key"
            if near:
                hint_text = f"did you mean '{section + '.' if section else ''}{near[0]}'?"
            else:
                hint_text = f"known keys{f' of {section!r}' if section else ''}: {', '.join(sorted(names))}"
            return path, f"unknown {what} '{path}'; {hint_text}"
    path = prefix + ".".join(parts)
    if cur is not None and path:  # a section that is not a mapping
        return path, (
            f"section '{path}' must be a mapping of key: value, got {type(node).__name__} {node!r:.80}"
        )
    return path, f"{path} must be of type {_type_name(hint)}, got {node!r:.80}"


def from_dict(cls: type[T], d: Mapping[str, Any] | None, *, source: str | None = None,
              section: str | None = None) -> T:
    """Build the config dataclass ``cls`` (sections included) from a (YAML) dict.

    Missing keys keep their defaults. After this every field has its declared type: bool
    fields take only booleans (``"yes"`` is an error), int fields only integers (not ``2.5``,
    ``"3"`` or ``true``), float fields numbers or numeric text (``"1e-3"``) but not NaN, list
    fields lists (or tuples), and None only where the annotation allows it.

    Args:
        cls: A dataclass whose fields are plain values or other such dataclasses (sections).
        d: The dict; None means all defaults. Dotted top-level keys are sections (:func:`undot`).
        source: Where ``d`` came from (a file name), put at the front of every error.
        section: The key ``cls`` has inside a larger config (``"graph"``): errors then name
            ``graph.near_k`` rather than ``near_k``.

    Raises:
        ConfigError: an unknown key (with the nearest valid one), a value of the wrong type
            (named by its key path, e.g. ``train.lr``), or a value the dataclasses' own
            checks refuse. ``exc.key`` holds the key path when one is to blame.
    """
    prefix = f"{section}." if section else ""
    if d is None:
        d = {}
    if not isinstance(d, Mapping):
        what = f"section '{section}'" if section else "a config"
        raise _error(f"{what} must be a mapping of key: value, got {type(d).__name__} {d!r:.80}", source, section)
    d = undot(d)
    name = d.get("name")
    if isinstance(name, int) and not isinstance(name, bool) and _hints(cls).get("name") is str:
        d["name"] = str(name)  # YAML reads `name: 2024` as a number
    try:
        checked = _schema(cls).model_validate(d)
    except pydantic.ValidationError as exc:
        found = [_describe_error(cls, d, e, prefix) for e in exc.errors()]
        key, detail = found[0]
        more = list(dict.fromkeys(k for k, _ in found if k != key))  # one per key, not per union member
        if more:
            detail += f" (also wrong: {', '.join(more[:5])}{', ...' if len(more) > 5 else ''})"
        raise _error(detail, source, key) from None
    try:
        return _build(cls, checked.model_dump(by_alias=True, exclude_unset=True))
    except ConfigError as exc:  # a __post_init__ check
        if not source:
            raise
        raise _error(str(exc), source) from exc
    except (TypeError, ValueError) as exc:  # a range check that met a value it cannot compare
        raise _error(f"invalid config value: {exc}", source) from exc


# ----------------------------------------------------------------------------------------
# hashing and describing
# ----------------------------------------------------------------------------------------


def to_dict(config: Any) -> Any:
    """A config dataclass as a nested dict (other values are returned as they are)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def _without(d: Mapping[str, Any], paths: Iterable[str]) -> dict:
    out = copy.deepcopy(dict(d))
    for path in paths:
        *parents, last = path.split(".")
        node: Any = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def config_hash(config: Any, exclude: Iterable[str] = (), *, length: int = 16,
                default: Callable[[Any], Any] | None = None, compact: bool = False) -> str:
    """The hash of a config: sha256 of its JSON with sorted keys, first ``length`` hex digits.

    It names checkpoint folders and cached artifacts, so its value for a given config must
    never change: the parameters only reproduce the existing variants.

    Args:
        config: A config dataclass or a mapping.
        exclude: Dotted key paths left out (``"train.resume"``); missing ones are ignored.
        length: Hex digits kept.
        default: ``json.dumps``'s ``default`` (``str`` for values JSON cannot write).
        compact: No spaces after ``,`` and ``:`` in the JSON.
    """
    d = to_dict(config)
    if exclude:
        d = _without(d, exclude)
    text = json.dumps(d, sort_keys=True, default=default, separators=(",", ":") if compact else None)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def defaults(cls: type) -> dict:
    """Every default of the config dataclass ``cls`` as a nested dict."""
    return dataclasses.asdict(cls())


def _attribute_docs(cls: type) -> dict[str, str]:
    """``name -> text`` from the ``Attributes:`` section of ``cls``'s Google-style docstring."""
    lines = (cls.__doc__ or "").expandtabs().splitlines()
    out: dict[str, str] = {}
    inside, indent, names = False, None, []
    for line in lines:
        text = line.strip()
        if text == "Attributes:":
            inside, indent = True, None
            continue
        if not inside or not text:
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        head, sep, rest = text.partition(":")
        if depth == indent and sep and re.fullmatch(r"[\w /]+", head):
            names = [n.strip() for n in head.split("/")]
            for n in names:
                out[n] = rest.strip()
        else:
            for n in names:
                out[n] = f"{out[n]} {text}".strip()
    return out


def describe(cls: type) -> dict:
    """Every key of the config dataclass ``cls``: ``{"default", "type", "doc"}`` per key,
    nested like the config (sections are dicts of keys)."""
    inst = cls()
    hints, docs = _hints(cls), _attribute_docs(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(inst, f.name)
        if dataclasses.is_dataclass(value):
            sub = describe(type(value))
            for k, v in dataclasses.asdict(value).items():  # a field default such as graph's
                sub[k]["default"] = v
            out[f.name] = sub
        else:
            out[f.name] = {"default": value, "type": _type_name(hints[f.name]), "doc": docs.get(f.name, "")}
    return out


__all__ = [
    "MAX_CONFIG_VALUES",
    "OVERRIDE_SOURCE",
    "SAFE_NAME",
    "apply_overrides",
    "config_hash",
    "defaults",
    "describe",
    "from_dict",
    "load_config_file",
    "read_config",
    "to_dict",
    "undot",
]
