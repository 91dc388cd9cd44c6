"""The record types that flow between stages: Example -> Generation -> Judgement."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
