"""A generations file and its FILE.meta.json sidecar: the run key, resume, refusal of a foreign file, final order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import iter_jsonl, read_json, repair_jsonl, stable_hash, write_json_atomic, write_jsonl_atomic

FORMAT = "ptst.generations/1"


@dataclass(frozen=True)
class GenerationsFile:
    """What the generation stage made: the JSONL file, the key its answers were made under, how many it holds."""

    path: Path
    key: dict[str, Any]
    n_records: int

    @property
    def key_sha256(self) -> str:
        return stable_hash(self.key)


def meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return s[:16] + "…" if len(s) > 19 else s


def key_diff(want: dict[str, Any], have: dict[str, Any]) -> str:
    """'template_fingerprint 3fa1… here vs 77b0… in the file; ...' for the fields that differ."""
    parts = []
    for k in sorted(set(want) | set(have)):
        if want.get(k) != have.get(k):
            parts.append(f"{k} {_short(want.get(k))} here vs {_short(have.get(k))} in the file")
    return "; ".join(parts)


def open_for_resume(out: Path, key: dict[str, Any], info: dict[str, Any]) -> tuple[set[str], dict[str, Any]]:
    """Ids already generated in `out` under the same key (after cutting a truncated last line), and the sidecar
    info to write from now on: `info`, plus the stored throughput record of the answers already there.

    A file written under another key, or one without a sidecar, is refused: mixing answers from two models,
    adapters, templates, decodings or data versions in one file would silently corrupt every metric downstream.
    """
    meta = meta_path(out)
    has_rows = out.exists() and out.stat().st_size > 0
    if has_rows:
        if not meta.exists():
            raise PtstError(f"{out} exists but has no {meta.name}: it was not written by `ptst generate` (or its "
                            "sidecar was removed); use another --out or move the file away")
        stored = read_json(meta)
        if stored.get("key") != key:
            raise PtstError(f"{out} holds generations for a different config ({key_diff(key, stored.get('key') or {})}"
                            f"); use another --out, or delete {out.name} and {meta.name} to regenerate")
        repair_jsonl(out)
        if isinstance(stored.get("throughput"), dict):  # how the answers already there were made
            info = {**info, "throughput": stored["throughput"]}
    done = {str(r["id"]) for r in iter_jsonl(out)} if has_rows else set()
    write_meta(out, key, info, complete=False, n_records=len(done))
    return done, info


def write_meta(out: Path, key: dict[str, Any], info: dict[str, Any], *, complete: bool, n_records: int) -> None:
    write_json_atomic(meta_path(out), {"format": FORMAT, "key_sha256": stable_hash(key), "key": key, **info,
                                       "complete": complete, "n_records": n_records})


def finalize(out: Path, ids: Sequence[str]) -> int:
    """Rewrite `out` (atomically) in data-set order once every id is there; records for ids outside `ids`
    (an earlier run with a larger limit) keep their place after them. Returns the record count."""
    rows = list(iter_jsonl(out)) if out.exists() else []
    by_id: dict[str, dict[str, Any]] = {}
    for r in rows:
        by_id.setdefault(str(r["id"]), r)  # a duplicate (two writers on one file) keeps the first answer
    wanted = set(ids)
    ordered = [by_id[i] for i in ids if i in by_id] + [r for i, r in by_id.items() if i not in wanted]
    if [str(r["id"]) for r in ordered] != [str(r["id"]) for r in rows]:
        write_jsonl_atomic(out, ordered)
    return len(ordered)
