"""The evaluation stage's config: EvalSpec (one evaluation set) and EvalConfig (one cell: a model under one test
template on several sets, with its decoding, generation and judge sections)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptst.config import check_section
from ptst.errors import PtstError
from ptst.specs.decoding import Decoding
from ptst.specs.generate import GenerateConfig

KINDS = ("safety", "helpfulness", "over-refusal")

# what an evaluation cell sets in its GenerateConfig itself (`decoding` has its own section)
CELL_KEYS = ("data", "template", "model", "adapter", "split", "limit", "seed", "data_dir", "decoding")

# Helpfulness scorers by data-set name prefix; anything else is judged by its registry kind.
_SCORER_FOR = {"gsm8k": "gsm8k", "arc-easy": "arc", "arc-challenge": "arc", "chatdoctor": "chatdoctor"}


def judge_schema() -> type:
    from ptst.judge.base import JudgeConfig

    return JudgeConfig


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation set. `kind` decides what is computed: safety → judges (ASR, refusal); helpfulness →
    `scorer` (gsm8k, arc, chatdoctor); over-refusal → refusal rate on benign prompts (xstest). Both are
    inferred from the data set when left out (`resolved()`)."""

    data: str
    kind: str | None = None
    split: str | None = None
    limit: int | None = None
    scorer: str | None = None
    max_new_tokens: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise PtstError(f"eval {self.data!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.limit is not None and self.limit < 1:
            raise PtstError(f"eval {self.data!r}: limit must be >= 1")

    def resolved(self) -> EvalSpec:
        """Fill kind, scorer and split from the data registry (gsm8k → helpfulness on its test split, ...)."""
        from dataclasses import replace

        from ptst.data import DATASETS

        scorer = self.scorer or _SCORER_FOR.get(self.data)
        kind = self.kind
        if kind is None:
            if scorer:
                kind = "helpfulness"
            elif self.data in DATASETS:
                reg = DATASETS.get(self.data).kind
                kind = "over-refusal" if reg == "over-refusal" else "safety" if reg == "safety-eval" else None
            if kind is None:
                raise PtstError(f"eval {self.data!r}: cannot infer its kind; set kind: safety|helpfulness|over-refusal")
        if kind == "helpfulness" and not scorer:
            raise PtstError(f"eval {self.data!r}: a helpfulness eval needs a scorer (gsm8k, arc, chatdoctor)")
        split = self.split or ("test" if kind == "helpfulness" and self.data in _SCORER_FOR else None)
        return replace(self, kind=kind, scorer=scorer if kind != "safety" else None, split=split)

    @property
    def label(self) -> str:
        return self.name or self.data.replace(":", "-").replace("/", "-")


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation cell: a model (+ adapter) under one test template, on several evaluation sets."""

    model: str
    template: str
    evals: list[EvalSpec]
    adapter: str | None = None
    judges: list[str] = field(default_factory=lambda: ["keyword"])
    # The sections hold keyword arguments of their spec as written (checked by `check_section`, numbers read):
    # they are part of the cell's key as written, so a ptst default that changes does not split a finished cell.
    judge: dict[str, Any] = field(default_factory=dict)  # JudgeConfig fields (endpoint of the rubric judge...)
    decoding: dict[str, Any] = field(default_factory=dict)  # Decoding fields
    generate: dict[str, Any] = field(default_factory=dict)  # GenerateConfig fields (backend, batch_size...)
    data_dir: str | None = None
    seed: int = 0
    cell: dict[str, Any] = field(default_factory=dict)  # labels copied into metrics.json

    def __post_init__(self) -> None:
        if not self.evals:
            raise PtstError("no evaluation sets given")
        if not self.judges:
            raise PtstError("no judges given (keyword, keyword-prefix, xstest-strmatch, rubric, llama-guard, "
                            "harmbench)")
        # the same checks a grid's YAML sections get: unknown keys ("did you mean"), types, `7e-1` read as 0.7
        for name, schema, exclude in (("judge", judge_schema(), ("judge",)), ("decoding", Decoding, ()),
                                      ("generate", GenerateConfig, CELL_KEYS)):
            object.__setattr__(self, name, check_section(schema, getattr(self, name), name, exclude))

    def decoding_for(self, spec: EvalSpec) -> Decoding:
        """The decoding of one set: the cell's, with the set's own `max_new_tokens`."""
        d = dict(self.decoding)
        if spec.max_new_tokens:
            d["max_new_tokens"] = spec.max_new_tokens
        stop = d.get("stop", ())
        d["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)  # `stop: END` is one stop string, not E, N, D
        try:
            return Decoding(**d)
        except TypeError as e:
            raise PtstError(f"decoding: {e}") from None

    def generate_config(self, spec: EvalSpec) -> GenerateConfig:
        """What the generation stage gets for one set (`spec` resolved)."""
        try:
            return GenerateConfig(data=spec.data, template=self.template, model=self.model, adapter=self.adapter,
                                  split=spec.split, limit=spec.limit, seed=self.seed, data_dir=self.data_dir,
                                  decoding=self.decoding_for(spec), **self.generate)
        except TypeError as e:
            raise PtstError(f"generate: {e}") from None

    def judge_config(self, name: str) -> Any:
        """The JudgeConfig of judge `name` with this cell's judge settings."""
        try:
            return judge_schema()(judge=name, **self.judge)
        except TypeError as e:
            raise PtstError(f"judge: {e}") from None


