"""The evaluation stage's config: EvalSpec (one evaluation set) and EvalConfig (one cell: a model under one test
template on several sets, with its decoding, generation and judge sections)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptst.config import check_section
from ptst.data.catalog import eval_defaults
from ptst.errors import PtstError
from ptst.specs.decoding import Decoding
from ptst.specs.generate import GenerateConfig
from ptst.specs.judge import JudgeConfig

KINDS = ("safety", "helpfulness", "over-refusal")

# what an evaluation cell sets in its GenerateConfig itself (`decoding` has its own section)
CELL_KEYS = ("data", "template", "model", "adapter", "split", "limit", "seed", "data_dir", "decoding")



@dataclass(frozen=True)
class EvalSpec:
    """One evaluation set. `kind` decides what is computed: safety → judges (ASR, refusal); helpfulness →
    `scorer` (a registered one: gsm8k, arc, chatdoctor, ...); over-refusal → refusal rate on benign prompts
    (xstest). Both are inferred from the data set's registry entry when left out (`resolved()`)."""

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
        """Fill kind, scorer and split from the data set's registry entry (gsm8k → helpfulness, scorer gsm8k, on
        its test split; advbench → safety; xstest → over-refusal): `ptst.data.eval_defaults`."""
        from dataclasses import replace

        known = eval_defaults(self.data)
        scorer = self.scorer or known.scorer
        kind = self.kind or ("helpfulness" if scorer else known.kind)
        if kind is None:
            raise PtstError(f"eval {self.data!r}: cannot infer its kind; set kind: safety|helpfulness|over-refusal")
        if kind == "helpfulness" and not scorer:
            raise PtstError(f"eval {self.data!r}: a helpfulness eval needs a scorer (`ptst score --help` lists them)")
        split = self.split or (known.split if kind == "helpfulness" and known.scorer else None)
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
            raise PtstError("no judges given (`ptst judge --help` lists the registered judges)")
        # the same checks a grid's YAML sections get: unknown keys ("did you mean"), types, `7e-1` read as 0.7
        for name, schema, exclude in (("judge", JudgeConfig, ("judge",)), ("decoding", Decoding, ()),
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

    def judge_config(self, name: str) -> JudgeConfig:
        """The JudgeConfig of judge `name` with this cell's judge settings."""
        try:
            return JudgeConfig(judge=name, **self.judge)
        except TypeError as e:
            raise PtstError(f"judge: {e}") from None


