"""The record types that flow between stages: Example -> Generation -> Judgement, and their JSONL readers (below
the judge and score stages, which both read them)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import iter_jsonl

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class Example:
    """One data point: a user input (or whole conversation), an optional reference, and metadata.

    `input` is the raw user query that a template wraps; `response` is the target answer for
    fine-tuning sets; `reference` is what a scorer compares against (e.g. the GSM8K number).
    """

    id: str
    input: str
    response: str | None = None
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("Example.id must be a non-empty string")
        if not isinstance(self.input, str):
            raise ValueError(f"Example {self.id}: input must be a string")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        return cls(
            id=str(d["id"]),
            input=d["input"],
            response=d.get("response"),
            reference=d.get("reference"),
            meta=dict(d.get("meta") or {}),
        )


@dataclass(frozen=True)
class Generation:
    """One model answer. `prompt` is the raw query (what the official PTST judge reads) and `answer` the output."""

    id: str
    prompt: str
    answer: str
    template: str
    template_fingerprint: str
    model: str
    adapter_hash: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    n_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Generation:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one Generation. `score` is judge-specific (1-5 for the rubric, 0/1 for keyword);
    `label` is one of: "refusal", "compliance", "harmful", "safe", "unscored"; `harmful` is what ASR counts
    (None when unscored)."""

    id: str
    judge: str
    judge_version: str
    label: str
    harmful: bool | None
    score: float | None = None
    explanation: str = ""
    raw: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Judgement:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def read_generations(path: str | Path) -> list[Generation]:
    """Generation records with `id`, `prompt` and `answer` checked; a bad line is one error naming file:line.

    A file in which no row has an `id` (the official PTST `inference.py` output: {"prompt", "answer"} in data
    order) is numbered by row: ids "0", "1", ... in file order, blank lines skipped. A file in which only some
    rows have an id is refused.
    """
    path = Path(path)
    if not path.exists():
        raise PtstError(f"generations file not found: {path}")
    rows: list[tuple[int, Any]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as e:
                raise PtstError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
    numbered = not any(isinstance(row, dict) and "id" in row for _, row in rows)
    gens: list[Generation] = []
    seen: dict[str, int] = {}
    for pos, (lineno, row) in enumerate(rows):
        if numbered and isinstance(row, dict):
            row = {**row, "id": str(pos)}
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
        hint = ", or no id in any row" if missing == ["id"] else ""
        raise PtstError(f"{where}: generation record lacks {', '.join(repr(k) for k in missing)} "
                        f"(need id, prompt, answer in every row{hint})")
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


def select_ids(gens: Sequence[Generation], ids: Collection[str] | None, where: str | Path) -> list[Generation]:
    """The generations whose id is in `ids` (all of them when None), in file order; every id must be there.

    A generations file can hold more records than the current sample (an earlier run with a larger limit
    keeps its answers), so `ptst eval` judges and scores exactly its sample's ids."""
    if ids is None:
        return list(gens)
    want = {str(i) for i in ids}
    out = [g for g in gens if g.id in want]
    if len(out) < len(want):
        missing = sorted(want - {g.id for g in out})
        raise PtstError(f"{where} lacks {len(missing)} of the {len(want)} requested ids (first: {missing[0]!r})")
    return out


def read_judgements(path: str | Path) -> list[Judgement]:
    out = []
    for row in iter_jsonl(path):
        try:
            out.append(Judgement.from_dict(row))
        except TypeError as e:
            raise PtstError(f"{path}: not a judgement record ({e})") from None
    return out
