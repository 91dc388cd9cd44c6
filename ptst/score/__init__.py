"""The score stage: helpfulness (GSM8K, ARC, ChatDoctor), over-refusal (XSTest) and ASR into a metrics JSON.

Adding a scorer is one registration: a `(gens, cfg) -> dict` function decorated with
`@register_scorer(name, version, kind=..., metrics=...)` in a module imported below (docs/extending.md).
"""

from __future__ import annotations

from ptst.score import helpfulness, safety  # noqa: F401 - importing registers the built-in scorers
from ptst.score.base import (
    EVAL_KINDS,
    SCORERS,
    ScoreConfig,
    Scorer,
    ScorerSpec,
    helpfulness_metrics,
    register_scorer,
    scorer_names,
)
from ptst.score.command import cli, configure
from ptst.score.helpfulness import arc_choices, extract_choice, gsm8k_flexible, gsm8k_strict, normalize_number
from ptst.score.stage import default_out, run

__all__ = [
    "EVAL_KINDS", "SCORERS", "ScoreConfig", "Scorer", "ScorerSpec", "arc_choices", "cli", "configure",
    "default_out", "extract_choice", "gsm8k_flexible", "gsm8k_strict", "helpfulness_metrics", "normalize_number",
    "register_scorer", "run", "scorer_names",
]
