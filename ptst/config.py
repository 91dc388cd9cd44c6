"""YAML configs into typed frozen dataclasses, with `key.sub=value` overrides and "did you mean" on typos."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ptst.errors import PtstError
from ptst.io import not_utf8
from ptst.registry import did_you_mean

T = TypeVar("T")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """['train.lr=2e-4', 'limit=8'] -> nested dict; values are parsed as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise PtstError(f"override {pair!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PtstError(f"override {pair!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise PtstError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise PtstError(f"{path}:{where} malformed YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(doc, dict):
        raise PtstError(f"{path}: the top level must be a mapping")
    return doc


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def section(schema: type | Callable[[], type], exclude: tuple[str, ...] = ()) -> Any:
    """A `dict[str, Any]` field holding keyword arguments of the dataclass `schema` (or of `schema()`, a function
    returning it, for a class imported only when a config is read). `from_dict` checks it like a typed field:
    unknown keys fail with "did you mean", values are type-checked, and numbers YAML reads as strings (`7e-1`)
    become numbers; every
    other value stays as written, so the dict that reaches a cache key is unchanged. `exclude`: fields the
    config sets itself, refused here."""
    return dataclasses.field(default_factory=dict, metadata={"section": (schema, exclude)})


def check_section(cls: type, data: Any, where: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """`data` checked as keyword arguments of dataclass `cls` (see `section`); returns it with numbers read.
    `where` names the section by its key (`train`, `align.train`), as the stage that builds `cls` later does."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PtstError(f"{where}: expected a mapping of {cls.__name__} keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in exclude]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in exclude:
            raise PtstError(f"{where}: {key!r} cannot be set here (it is set from other keys of this config)")
        if key not in names:
            raise PtstError(f"{where}: unknown key {key!r}{did_you_mean(str(key), names)}")
        out[key] = _as_written(value, _coerce(hints[key], value, f"{where}.{key}"))
    return out


def _as_written(value: Any, coerced: Any) -> Any:
    """`value` as the user wrote it, except strings that were read as numbers (recursively)."""
    if isinstance(value, dict) and dataclasses.is_dataclass(coerced):
        return {k: _as_written(v, getattr(coerced, k, v)) for k, v in value.items()}
    if isinstance(value, list | tuple) and isinstance(coerced, list | tuple) and len(value) == len(coerced):
        return type(value)(_as_written(v, c) for v, c in zip(value, coerced, strict=True))
    if isinstance(value, str) and isinstance(coerced, int | float) and not isinstance(coerced, bool):
        return coerced
    return value


def _coerce(tp: Any, value: Any, where: str, key: str = "") -> Any:
    """`value` as type `tp`. `where` names it in messages (file.key); `key` is its dotted key alone."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where, key) if len(inner) == 1 else value
    if _is_dataclass_type(tp):
        if isinstance(value, str) and callable(getattr(tp, "from_text", None)):
            return tp.from_text(value)  # e.g. a mix entry `safety:500:chat:llama`
        if not isinstance(value, dict):
            raise PtstError(f"{where}: expected a mapping, got {value!r}")
        return _build(tp, value, where, key)
    if origin is dict and not isinstance(value, dict):
        raise PtstError(f"{where}: expected a mapping, got {value!r}")
    if origin in (list, tuple):
        items = value if isinstance(value, list | tuple) else [value]
        sub = args[0] if args else Any
        vals = [_coerce(sub, v, f"{where}[{i}]", f"{key}[{i}]") for i, v in enumerate(items)]
        return tuple(vals) if origin is tuple else vals
    if tp is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise PtstError(f"{where}: expected a number, got {value!r}") from None
    if tp is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise PtstError(f"{where}: expected an integer, got {value!r}") from None
    if tp is str and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise PtstError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from `data`; unknown keys fail with a suggestion."""
    return _build(cls, data, where, "")


def _build(cls: type[T], data: dict[str, Any], where: str, key: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if name not in fields:
            raise PtstError(f"{where}: unknown key {name!r}{did_you_mean(str(name), list(fields))}")
    missing = [n for n, f in fields.items() if f.init and n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PtstError(f"{where}: missing required key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    kwargs = {k: _field(fields[k], hints[k], v, f"{where}.{k}", f"{key}.{k}" if key else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise PtstError(f"{where}: {e}") from None


def _field(f: dataclasses.Field[Any], tp: Any, value: Any, where: str, key: str) -> Any:
    if "section" in f.metadata:
        schema, exclude = f.metadata["section"]
        return check_section(schema if isinstance(schema, type) else schema(), value, key, exclude)
    return _coerce(tp, value, where, key)


def to_dict(obj: Any) -> Any:
    """A dataclass as plain data; a field with `metadata={"omit_empty": True}` is left out while empty (a key added
    after configs were written, so their resolved YAML stays byte-identical)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("omit_empty") and not getattr(obj, f.name))}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """base (e.g. CLI flags) < YAML file < key=value overrides."""
    data = dict(base or {})
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    data = deep_merge(data, parse_overrides(overrides or []))
    return from_dict(cls, data, str(path) if path else "config")


def dump_yaml(obj: Any) -> str:
    import yaml

    return str(yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True))
