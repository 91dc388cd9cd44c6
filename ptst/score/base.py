"""The scorer registry: each scorer registered once with its version, the eval kind it serves and, for
helpfulness, how its metrics JSON maps onto a cell's metrics.json; and ScoreConfig, what every scorer is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ptst.errors import PtstError
from ptst.records import Generation
from ptst.registry import Registry

Scorer = Callable[[Sequence[Generation], "ScoreConfig"], dict[str, Any]]
MetricsMap = Callable[[dict[str, Any]], dict[str, Any]]
EVAL_KINDS = ("helpfulness", "over-refusal", "safety")  # the kinds of `ptst eval` / EvalSpec


@dataclass(frozen=True)
class ScoreConfig:
    scorer: str
    judgements: str | None = None  # asr (required), xstest (optional: refusal labels from this file)
    baseline: str | None = None  # asr: another cell's judgements on the same ids, for the paired test
    allow_partial: bool = False  # asr: accept judgements that cover only part of the generations
    arc_mode: str = "letter"  # "letter": extract from the generation; "loglik": score each choice with --model
    arc_choice: str = "text"  # loglik continuation: the choice "text" or its "label"
    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.arc_mode not in ("letter", "loglik") or self.arc_choice not in ("text", "label"):
            raise PtstError("arc_mode must be letter or loglik; arc_choice text or label")
        if self.batch_size < 1:
            raise PtstError("batch_size must be >= 1")


@dataclass(frozen=True)
class ScorerSpec:
    """A registered scorer.

    `version` goes into every metrics JSON the scorer writes (bump it when its logic changes). `kind` is the
    `ptst eval` kind it serves. `metrics` maps its metrics JSON to the entries of a cell's metrics.json
    (`evals.<label>.metrics`); helpfulness scorers need one, while the over-refusal and safety kinds key their
    entries by judge (ptst/evaluate.py)."""

    name: str
    version: str
    fn: Scorer
    kind: str
    metrics: MetricsMap | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVAL_KINDS:
            raise ValueError(f"scorer {self.name}: kind {self.kind!r} is not one of {EVAL_KINDS}")
        if self.kind == "helpfulness" and self.metrics is None:
            raise ValueError(f"scorer {self.name}: a helpfulness scorer needs metrics= (its metrics.json entries)")


SCORERS: Registry[ScorerSpec] = Registry("scorer")


def register_scorer(name: str, version: str, *, kind: str,
                    metrics: MetricsMap | None = None) -> Callable[[Scorer], Scorer]:
    """Decorator on a `(gens, cfg) -> dict` function: `@register_scorer("my-metric", "my-metric-v1",
    kind="helpfulness", metrics=lambda doc: {"accuracy": doc["accuracy"]})`."""
    def add(fn: Scorer) -> Scorer:
        SCORERS.register(name, ScorerSpec(name=name, version=version, fn=fn, kind=kind, metrics=metrics))
        return fn

    return add


def scorer_names(kind: str | None = None) -> list[str]:
    """The registered scorers (of one eval kind, when given), in registration order: what help texts list."""
    return [name for name, spec in SCORERS.items() if kind is None or spec.kind == kind]


def helpfulness_metrics(scorer: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A helpfulness scorer's metrics JSON (`doc`) as the entries of a cell's metrics.json `metrics`."""
    spec = SCORERS.get(scorer)
    if spec.metrics is None or spec.kind != "helpfulness":
        raise PtstError(f"scorer {scorer!r} serves {spec.kind} evals, not helpfulness; helpfulness scorers: "
                        f"{', '.join(scorer_names('helpfulness'))}")
    return spec.metrics(doc)
