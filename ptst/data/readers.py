"""Readers for the formats data ships in (JSONL, JSON, CSV, Parquet), each error naming file and line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import iter_jsonl_numbered as io_jsonl_numbered
from ptst.io import not_utf8, read_json

__all__ = ["iter_jsonl_numbered", "json_list", "not_utf8", "read_csv", "read_csv_rows", "read_json", "read_parquet",
           "require"]


def iter_jsonl_numbered(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of a data file (a BOM allowed): `ptst.io.iter_jsonl_numbered`."""
    return io_jsonl_numbered(path, encoding="utf-8-sig")


def read_csv(path: Path, encoding: str = "utf-8-sig") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number where the record starts, row dict) per CSV record. Handles CRLF, a BOM and quoted
    fields spanning lines; a record with more fields than the header is an error, and one with fewer lacks the
    trailing columns (so a needed one is a "missing field" error naming the line, never a silent ""). A file not in
    `encoding` raises UnicodeDecodeError, for callers that try another encoding; the others turn it into
    `not_utf8(path)`."""
    csv.field_size_limit(1 << 24)  # HarmBench context strings are long; the default limit is 128 KiB
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(f, strict=True)  # an unclosed quote is an error, not the rest of the file as one field
        try:
            header = next(reader)
        except StopIteration:
            raise PtstError(f"{path}: empty CSV file (no header)") from None
        except csv.Error as e:
            raise PtstError(f"{path}:1: malformed CSV header ({e})") from None
        start = reader.line_num + 1
        while True:
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise PtstError(f"{path}:{start}: malformed CSV record ({e})") from None
            if len(rec) > len(header):
                raise PtstError(f"{path}:{start}: {len(rec)} fields but the header has {len(header)}")
            if rec:
                yield start, dict(zip(header[: len(rec)], rec, strict=True))
            start = reader.line_num + 1


def read_csv_rows(path: Path) -> list[list[str]]:
    """All records of a header-less CSV."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            return [r for r in csv.reader(f) if r]
        except csv.Error as e:
            raise PtstError(f"{path}: malformed CSV ({e})") from None
        except UnicodeDecodeError:
            raise not_utf8(path) from None


def read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise PtstError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises its own ArrowInvalid etc.
        raise PtstError(f"{path}: unreadable Parquet file ({type(e).__name__}: {e})") from None


def require(row: dict[str, Any], key: str, path: Path, where: int | str) -> Any:
    """row[key] for a registered set's loader, or one clear error if the source changed shape."""
    if key not in row:
        raise PtstError(f"{path}:{where}: missing field {key!r} (fields: {', '.join(map(str, row))})")
    return row[key]


def json_list(path: Path, key: str | None = None) -> list[Any]:
    """A JSON array, or the array under `key` of a JSON object."""
    data = read_json(path)
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise PtstError(f"{path}: expected a JSON object with a {key!r} list")
        data = data[key]
    if not isinstance(data, list):
        raise PtstError(f"{path}: expected a JSON array, got {type(data).__name__}")
    return data
