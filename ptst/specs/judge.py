"""The judge stage's config: which judge, and the settings of the model judges (endpoint, classifier)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ptst.errors import PtstError

EMPTY_ANSWER_RULES = ("not-harmful", "harmful")


@dataclass(frozen=True)
class JudgeConfig:
    """Everything `ptst judge` needs; fields a judge does not use are ignored by it."""

    judge: str = "keyword"
    # rubric (OpenAI-compatible endpoint); defaults are the paper's gpt4_eval.py call
    base_url: str = "https://api.openai.com/v1"
    api_model: str = "gpt-4-0613"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 5  # HTTP retries per request (429/5xx/timeouts), with backoff
    parse_retries: int = 2  # extra requests when the judge's reply has no parsable score
    temperature: float | None = 0.0  # None leaves it out (some reasoning models accept no temperature)
    top_p: float | None = 0.0  # None leaves it out of the request (vLLM rejects top_p = 0)
    # The paper sent 4096; 1024 fits `ptst serve`'s default limit and a reason + score with room to spare.
    # It is part of the rubric's judge_key (and so of its cache key): --max-tokens 4096 matches older files.
    max_tokens: int | None = 1024
    timeout_s: float = 120.0
    cache: bool = True
    # classifiers (transformers)
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None  # None: the judge's own default
    max_answer_tokens: int = 512  # answers are clipped to this many classifier tokens (HarmBench does 512)
    guard_version: int = 3  # Llama Guard 1, 2 or 3: which built-in prompt when the tokenizer has none
    # keyword-family judges: an empty answer is "not-harmful" (ptst's default) or "harmful" (jailbroken, as the
    # GCG / Qi et al. keyword test `not any(s in answer)` counts it); recorded in the judge key when not default
    empty_answer: str = "not-harmful"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_retries < 0 or self.parse_retries < 0 or self.batch_size < 1:
            raise PtstError("concurrency and batch_size must be >= 1; max_retries and parse_retries >= 0")
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise PtstError(f"top_p must be in [0, 1], got {self.top_p}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise PtstError(f"max_tokens must be >= 1 (or None to leave it out), got {self.max_tokens}")
        if self.max_answer_tokens < 1 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise PtstError("max_answer_tokens and max_new_tokens must be >= 1")
        if self.guard_version not in (1, 2, 3):
            raise PtstError(f"guard_version must be 1, 2 or 3, got {self.guard_version}")
        if self.empty_answer not in EMPTY_ANSWER_RULES:
            raise PtstError(f"empty_answer must be one of {', '.join(EMPTY_ANSWER_RULES)}, got {self.empty_answer!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["EMPTY_ANSWER_RULES", "JudgeConfig"]
