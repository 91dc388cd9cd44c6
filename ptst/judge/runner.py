"""The judge stage: generations JSONL in, judgements JSONL out, appended as they come and resumable."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import JsonlAppender, iter_jsonl, repair_jsonl, write_text_atomic
from ptst.judge.base import Judge, JudgeConfig, JudgeInterrupted, build_judge, judge_key
from ptst.records import Generation, Judgement, read_generations, select_ids


def default_out(generations_path: str | Path, judge: str) -> Path:
    """runs/<exp>/<cell>/generations/<eval>.jsonl -> runs/<exp>/<cell>/judgements/<eval>.<judge>.jsonl;
    any other path: <stem>.<judge>.jsonl beside it."""
    p = Path(generations_path)
    if p.parent.name == "generations":
        return p.parent.parent / "judgements" / f"{p.stem}.{judge}.jsonl"
    return p.with_name(f"{p.stem}.{judge}.jsonl")


def stamp_of(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(judge_key, generations_key) a judgement row was written under (generations_key: None in rows written
    before ptst recorded which answers a verdict is of, or by `ptst judge` on a file without a sidecar)."""
    meta = row.get("meta") or {}
    return meta.get("judge_key"), meta.get("generations_key")


def _done_ids(out: Path, key: str, upstream: str | None) -> set[str]:
    """Ids already judged in `out` by this very judge on these very answers; a file written by another judge,
    or on other answers, is an error (the evaluation stage moves such a file aside before it judges)."""
    if not out.exists():
        return set()
    repair_jsonl(out)  # a run killed mid-write leaves a partial last line; drop it before reading
    done = set()
    for row in iter_jsonl(out):
        other, answers = stamp_of(row)
        if other != key:
            raise PtstError(f"{out} holds judgements from another judge or setting ({row.get('judge')} "
                            f"{row.get('judge_version')}, key {other}, this run {key}); use another --out")
        if upstream and answers and answers != upstream:
            raise PtstError(f"{out} holds judgements of other answers (generations key {answers[:12]}…, this run "
                            f"{upstream[:12]}…); use another --out")
        done.add(str(row["id"]))
    return done


def _chunks(items: Sequence[Generation], size: int) -> Iterator[Sequence[Generation]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


class _LazyAppender:
    """A JsonlAppender opened on the first write, so a run that fails before judging anything leaves no file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._w: JsonlAppender | None = None

    def write(self, row: dict[str, Any]) -> None:
        if self._w is None:
            self._w = JsonlAppender(self.path)
        self._w.write(row)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def run(cfg: JudgeConfig, generations_path: str | Path, out_path: str | Path | None = None,
        judge: Judge | None = None, *, ids: Collection[str] | None = None, upstream: str | None = None) -> Path:
    """Judge every generation (of `ids`, when given) not yet in `out_path`; each chunk's judgements are
    appended and fsynced. The judge is built and the output checked before anything is written, and the
    output is opened only when the first judgement is ready: an early error leaves no new file behind.
    `upstream`: the generations file's key hash, stamped on every verdict so a verdict is tied to its answers."""
    gens = select_ids(read_generations(generations_path), ids, generations_path)
    judge = judge or build_judge(cfg)
    out = Path(out_path) if out_path else default_out(generations_path, judge.name)
    key = judge_key(judge)
    done = _done_ids(out, key, upstream)
    todo = [g for g in gens if g.id not in done]
    w = _LazyAppender(out)
    try:
        for chunk in _chunks(todo, int(getattr(judge, "chunk_size", 64))):
            try:
                judged = judge.judge(chunk)
            except JudgeInterrupted as e:
                for j in e.done:
                    w.write(_stamp(j, key, upstream))
                raise PtstError(f"{e} — {len(e.done)} new judgements saved to {out}; rerun to resume") from None
            if len(judged) != len(chunk) or any(j.id != g.id for j, g in zip(judged, chunk, strict=True)):
                raise PtstError(f"judge {judge.name} returned judgements that do not match its inputs")
            for j in judged:
                w.write(_stamp(j, key, upstream))
    finally:
        w.close()
    if not out.exists():  # nothing to judge (no generations): an empty file is the complete result
        write_text_atomic(out, "")
    return out


def _stamp(j: Judgement, key: str, upstream: str | None) -> dict[str, Any]:
    d = j.to_dict()
    d["meta"] = {**d.get("meta", {}), "judge_key": key}
    if upstream:
        d["meta"]["generations_key"] = upstream
    return d
