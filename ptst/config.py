"""YAML configs into typed frozen dataclasses, with `key.sub=value` overrides and "did you mean" on typos."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ptst.errors import PtstError
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
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise PtstError(f"{path}:{where} malformed YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(doc, dict):
        raise PtstError(f"{path}: the top level must be a mapping")
    return doc


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where) if len(inner) == 1 else value
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise PtstError(f"{where}: expected a mapping")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        items = value if isinstance(value, list | tuple) else [value]
        sub = args[0] if args else Any
        vals = [_coerce(sub, v, f"{where}[{i}]") for i, v in enumerate(items)]
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
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise PtstError(f"{where}: unknown key {key!r}{did_you_mean(str(key), list(fields))}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise PtstError(f"{where}: {e}") from None


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
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
