"""Custom data files (`jsonl:PATH`, `json:PATH`, `csv:PATH`) mapped onto Example by a `fields` dict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ptst.data.readers import iter_jsonl_numbered, read_csv, read_json
from ptst.data.types import Row
from ptst.errors import PtstError
from ptst.io import not_utf8
from ptst.registry import did_you_mean

FORMATS = ("jsonl", "json", "csv")
FIELD_KEYS = ("input", "response", "reference", "id")
_MISSING = object()


def parse_custom(spec: str) -> tuple[str, Path] | None:
    """(format, path) for `FORMAT:PATH` or a bare path ending in .jsonl/.json/.csv; None for anything else."""
    fmt, sep, rest = spec.partition(":")
    if sep and fmt in FORMATS:
        if not rest:
            raise PtstError(f"{spec!r}: give a path after '{fmt}:'")
        return fmt, Path(rest).expanduser()
    p = Path(spec).expanduser()
    suffix = p.suffix.lstrip(".").lower()
    if suffix in FORMATS:
        return suffix, p
    return None


def field_mapping(fields: dict[str, str] | None) -> tuple[dict[str, str], set[str]]:
    """The full mapping (Example field -> source column) and the keys the user named (those are required)."""
    fields = dict(fields or {})
    for key, col in fields.items():
        if key not in FIELD_KEYS:
            raise PtstError(f"unknown field {key!r} in fields{did_you_mean(key, list(FIELD_KEYS))}; "
                            f"map any of: {', '.join(FIELD_KEYS)}")
        if not isinstance(col, str) or not col:
            raise PtstError(f"fields[{key!r}] must name a source column, got {col!r}")
    return {k: fields.get(k, k) for k in FIELD_KEYS}, set(fields)


def _records(fmt: str, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) pairs; `where` is what an error message names (line, item or row). A file that is not
    UTF-8 is one error naming the first bad byte."""
    try:
        yield from _parsed(fmt, path)
    except UnicodeDecodeError:
        raise not_utf8(path) from None


def _parsed(fmt: str, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if fmt == "jsonl":
        for line, rec in iter_jsonl_numbered(path):
            yield f"line {line}", rec
    elif fmt == "csv":
        for i, (line, rec) in enumerate(read_csv(path)):
            yield f"row {i + 1} (line {line})", rec
    else:
        data = read_json(path)
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise PtstError(f"{path}: expected a JSON array, or an object holding exactly one array")
            data = lists[0]
        if not isinstance(data, list):
            raise PtstError(f"{path}: expected a JSON array of objects")
        for i, rec in enumerate(data):
            if isinstance(rec, str):
                rec = {"input": rec}
            if not isinstance(rec, dict):
                raise PtstError(f"{path}: item {i}: expected an object or a string, got {type(rec).__name__}")
            yield f"item {i}", rec


def _lookup(rec: dict[str, Any], col: str) -> Any:
    """rec[col], or a dotted path into nested objects (e.g. `question.stem`)."""
    if col in rec:
        return rec[col]
    cur: Any = rec
    for part in col.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _text(value: Any, key: str, col: str, path: Path, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise PtstError(f"{path}: {where}: field {col!r} (mapped to {key}) must be text, got {type(value).__name__}")


def load_custom_rows(fmt: str, path: Path, fields: dict[str, str] | None) -> list[Row]:
    mapping, required = field_mapping(fields)
    if not path.is_file():
        raise PtstError(f"file not found: {path}")
    used = {col.split(".")[0] for col in mapping.values()} | set(mapping.values())
    rows: list[Row] = []
    for index, (where, rec) in enumerate(_records(fmt, path)):
        vals: dict[str, str | None] = {}
        for key, col in mapping.items():
            value = _lookup(rec, col)
            if value is _MISSING:
                if key == "input" or key in required:
                    raise PtstError(f"{path}: {where}: missing field {col!r} (mapped to {key}); "
                                    f"fields present: {', '.join(map(str, rec))}")
                value = None
            vals[key] = _text(value, key, col, path, where)
        if vals["input"] is None:
            raise PtstError(f"{path}: {where}: field {mapping['input']!r} (mapped to input) is null")
        meta = {k: v for k, v in rec.items() if k not in used}
        rows.append(Row(index, vals["input"], vals["response"], vals["reference"], meta, id=vals["id"] or None))
    if not rows:  # every stage needs at least one example; an empty set would only fail later, less clearly
        raise PtstError(f"{path}: no {'rows' if fmt == 'csv' else 'records'} (the data set is empty)")
    return rows
