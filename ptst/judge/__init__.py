"""Safety judges: a Protocol, a registry, and the built-in keyword, XSTest, rubric (GPT-4) and classifier judges.

Adding a judge is one module: a class with `name`, `version`, `judge(gens) -> list[Judgement]`, taking a
JudgeConfig, decorated with `@register_judge("name")`, and imported below (docs/extending.md). Help texts and
errors list the registry (`judge_names()`, `refusal_judge_names()`), never a list of their own.
"""

from __future__ import annotations

from ptst.judge import classifier, keyword, rubric, xstest  # noqa: F401 - importing registers the built-in judges
from ptst.judge.base import (
    JUDGES,
    Judge,
    JudgeConfig,
    JudgeInterrupted,
    build_judge,
    judge_key,
    judge_names,
    labels_refusals,
    refusal_judge_names,
    register_judge,
)
from ptst.judge.runner import default_out, run
from ptst.records import read_generations, read_judgements, select_ids

__all__ = ["JUDGES", "Judge", "JudgeConfig", "JudgeInterrupted", "build_judge", "default_out", "judge_key",
           "judge_names", "labels_refusals", "read_generations", "read_judgements", "refusal_judge_names",
           "register_judge", "run", "select_ids"]
