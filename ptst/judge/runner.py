"""The judge stage: generations JSONL in, judgements JSONL out, appended as they come and resumable."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import JsonlAppender, iter_jsonl, repair_jsonl
from ptst.judge.base import Judge, JudgeConfig, JudgeInterrupted, build_judge, judge_key
from ptst.records import Generation, Judgement


def read_generations(path: str | Path) -> list[Generation]:
    """Generation records with `id`, `prompt` and `answer` checked; a bad line is one error naming file:line."""
    path = Path(path)
    if not path.exists():
        raise PtstError(f"generations file not found: {path}")
    gens: list[Generation] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PtstError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
            gens.append(_generation(row, f"{path}:{lineno}"))
            gid = gens[-1].id
            if gid in seen:
                raise PtstError(f"{path}:{lineno}: duplicate id {gid!r} (first on line {seen[gid]})")
            seen[gid] = lineno
    return gens


def _generation(row: Any, where: str) -> Generation:
    if not isinstance(row, dict):
        raise PtstError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("id", "prompt", "answer") if k not in row]
    if missing:
        raise PtstError(f"{where}: generation record lacks {', '.join(repr(k) for k in missing)} "
                        "(need id, prompt, answer)")
    for k in ("prompt", "answer"):
        if not isinstance(row[k], str):
            raise PtstError(f"{where}: {k!r} must be a string, got {type(row[k]).__name__}")
    if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or row["id"] == "":
        raise PtstError(f"{where}: 'id' must be a non-empty string or an integer")
    d = {"template": "", "template_fingerprint": "", "model": "", **row, "id": str(row["id"])}
    try:
        return Generation.from_dict(d)
    except TypeError as e:
        raise PtstError(f"{where}: not a generation record ({e})") from None


def read_judgements(path: str | Path) -> list[Judgement]:
    out = []
    for row in iter_jsonl(path):
        try:
            out.append(Judgement.from_dict(row))
        except TypeError as e:
            raise PtstError(f"{path}: not a judgement record ({e})") from None
    return out


def default_out(generations_path: str | Path, judge: str) -> Path:
    """runs/<exp>/<cell>/generations/<eval>.jsonl -> runs/<exp>/<cell>/judgements/<eval>.<judge>.jsonl;
    any other path: <stem>.<judge>.jsonl beside it."""
    p = Path(generations_path)
    if p.parent.name == "generations":
        return p.parent.parent / "judgements" / f"{p.stem}.{judge}.jsonl"
    return p.with_name(f"{p.stem}.{judge}.jsonl")


def _done_ids(out: Path, key: str) -> set[str]:
    """Ids already judged in `out` by this very judge; a file written by another judge is an error."""
    if not out.exists():
        return set()
    repair_jsonl(out)  # a run killed mid-write leaves a partial last line; drop it before reading
    done = set()
    for row in iter_jsonl(out):
        other = (row.get("meta") or {}).get("judge_key")
        if other != key:
            raise PtstError(f"{out} holds judgements from another judge or setting ({row.get('judge')} "
                            f"{row.get('judge_version')}, key {other}, this run {key}); use another --out")
        done.add(str(row["id"]))
    return done


def _chunks(items: Sequence[Generation], size: int) -> Iterator[Sequence[Generation]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def run(cfg: JudgeConfig, generations_path: str | Path, out_path: str | Path | None = None,
        judge: Judge | None = None) -> Path:
    """Judge every generation not yet in `out_path`; each chunk's judgements are appended and fsynced."""
    gens = read_generations(generations_path)
    judge = judge or build_judge(cfg)
    out = Path(out_path) if out_path else default_out(generations_path, judge.name)
    key = judge_key(judge)
    todo = [g for g in gens if g.id not in _done_ids(out, key)]
    with JsonlAppender(out) as w:
        for chunk in _chunks(todo, int(getattr(judge, "chunk_size", 64))):
            try:
                judged = judge.judge(chunk)
            except JudgeInterrupted as e:
                for j in e.done:
                    w.write(_stamp(j, key))
                raise PtstError(f"{e} — {len(e.done)} new judgements saved to {out}; rerun to resume") from None
            if len(judged) != len(chunk) or any(j.id != g.id for j, g in zip(judged, chunk, strict=True)):
                raise PtstError(f"judge {judge.name} returned judgements that do not match its inputs")
            for j in judged:
                w.write(_stamp(j, key))
    return out


def _stamp(j: Judgement, key: str) -> dict[str, Any]:
    d = j.to_dict()
    d["meta"] = {**d.get("meta", {}), "judge_key": key}
    return d
