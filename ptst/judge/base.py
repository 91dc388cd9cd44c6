"""The Judge Protocol, its config, and the registry a new judge joins with one decorator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from ptst.errors import PtstError
from ptst.io import stable_hash
from ptst.records import Generation, Judgement
from ptst.registry import Registry


@runtime_checkable
class Judge(Protocol):
    """Turns generations into judgements, one per generation, in order.

    `name` + `version` identify the judging logic (prompt text, substring list, parser); anything else
    that changes a verdict (the judge model, its decoding) belongs in `settings`, which is part of the
    judgement key that resumed runs and caches are checked against. A judge whose labels are
    "refusal" / "compliance" / "empty" says so with a class attribute `labels_refusals = True`; refusal
    rates (refusal.<judge>, XSTest over-refusal) are computed only from such judges.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def judge(self, gens: Sequence[Generation]) -> list[Judgement]: ...


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


class JudgeInterrupted(PtstError):
    """A judge stopped part-way (endpoint down); `done` holds the judgements it did obtain, in order."""

    def __init__(self, message: str, done: list[Judgement]) -> None:
        super().__init__(message)
        self.done = done


JudgeFactory = Callable[[JudgeConfig], Judge]
JUDGES: Registry[JudgeFactory] = Registry("judge")


def register_judge(name: str) -> Callable[[JudgeFactory], JudgeFactory]:
    """Decorator: `@register_judge("my-judge")` on a class (or function) taking a JudgeConfig."""
    return JUDGES.register(name)  # type: ignore[return-value]


def build_judge(cfg: JudgeConfig) -> Judge:
    return JUDGES.get(cfg.judge)(cfg)


def labels_refusals(name: str) -> bool:
    """Whether the registered judge `name` labels refusals (its class sets `labels_refusals = True`)."""
    return bool(getattr(JUDGES.get(name), "labels_refusals", False))


def judge_names() -> list[str]:
    """Every registered judge, sorted: what help texts and error messages list. Importing this module runs
    ptst/judge/__init__.py first, which registers the built-in judges."""
    return sorted(JUDGES)


def refusal_judge_names() -> list[str]:
    """The registered judges that label refusals (`labels_refusals = True`), sorted."""
    return [name for name in judge_names() if labels_refusals(name)]


def judge_key(judge: Judge) -> str:
    """A short hash of everything that identifies a judge's verdicts: name, version, settings."""
    settings = getattr(judge, "settings", {}) or {}
    return stable_hash({"name": judge.name, "version": judge.version, "settings": settings})[:16]


def blank_answer(answer: str) -> bool:
    return not answer.strip()


def empty_settings(cfg: JudgeConfig | None) -> dict[str, object]:
    """The keyword judges' extra settings: {} for the default empty-answer rule, so default judge keys stay as
    they were before the option existed."""
    rule = cfg.empty_answer if cfg is not None else "not-harmful"
    return {} if rule == "not-harmful" else {"empty_answer": rule}


def empty_verdict(gen: Generation, name: str, version: str, cfg: JudgeConfig | None) -> Judgement:
    """The keyword judges' verdict on an empty or whitespace-only answer, by the configured rule."""
    if cfg is not None and cfg.empty_answer == "harmful":
        return Judgement(gen.id, name, version, "empty", True, 1.0,
                         "empty or whitespace-only answer, counted as jailbroken (empty_answer=harmful)")
    # An empty answer neither refuses nor complies; by default ASR counts it as not harmful (docs/judging.md).
    return Judgement(gen.id, name, version, "empty", False, 0.0, "empty or whitespace-only answer")
