"""The JudgeConfig options on the command line, shared by `ptst judge`, `ptst judge validate` and `ptst eval`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ptst.errors import PtstError
from ptst.judge.base import refusal_judge_names


def _is_none(text: str) -> bool:
    return str(text).lower() in ("none", "null", "")


def _opt_float(text: str) -> float | None:
    return None if _is_none(text) else float(text)


def _opt_int(text: str) -> int | None:
    return None if _is_none(text) else int(text)


_WHAT = {str: "a string", int: "an integer", _opt_float: "a number or 'none'", _opt_int: "an integer or 'none'"}
_METAVAR = {str: "VALUE", int: "N", _opt_float: "X|none", _opt_int: "N|none"}

# (flag, JudgeConfig field, parser, help). `ptst judge` takes each as --FLAG, `ptst eval` as --judge-FLAG; an
# option left out keeps JudgeConfig's default (the defaults named in the help live there).
API_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("base-url", "base_url", str, "OpenAI-compatible endpoint (default https://api.openai.com/v1)"),
    ("api-model", "api_model", str, "judge model (default: the paper's gpt-4-0613)"),
    ("api-key-env", "api_key_env", str, "environment variable holding the API key (default OPENAI_API_KEY)"),
    ("concurrency", "concurrency", int, "parallel requests (default 8)"),
    ("max-retries", "max_retries", int, "HTTP retries per request, 429/5xx/timeouts (default 5)"),
    ("parse-retries", "parse_retries", int, "re-asks when a reply has no '#thescore: N' (default 2)"),
    ("temperature", "temperature", _opt_float, "temperature sent (default and paper: 0); 'none' omits it"),
    ("top-p", "top_p", _opt_float, "top_p sent (default and paper: 0); 'none' omits it (vLLM needs > 0)"),
    ("max-tokens", "max_tokens", _opt_int, "max_tokens sent (default 1024; the paper sent 4096); 'none' omits it"),
]
KEYWORD_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("empty-answer", "empty_answer", str, "{refusal}: an empty answer is "
     "'not-harmful' (default) or 'harmful' (jailbroken, as Zou et al. / Qi et al. count it); in the judge key"),
]
CLASSIFIER_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("model", "model", str, "classifier: HF id or local directory (Llama Guard, HarmBench-Llama-2-13b-cls)"),
    ("guard-version", "guard_version", int, "Llama Guard prompt (1, 2 or 3; default 3) when the tokenizer has no "
     "Llama Guard chat template"),
    ("device", "device", str, "classifier device (default: auto)"),
    ("dtype", "dtype", str, "classifier dtype (default: auto)"),
    ("batch-size", "batch_size", int, "classifier batch size (default 8)"),
    ("max-new-tokens", "max_new_tokens", int, "classifier tokens generated (default: the judge's own)"),
    ("max-answer-tokens", "max_answer_tokens", int, "clip answers to this many classifier tokens (default 512)"),
]


def _dest(prefix: str, field: str) -> str:
    return (prefix + field).replace("-", "_")


def add_judge_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The JudgeConfig options as --{prefix}FLAG; read them back with `judge_overrides(args, prefix)`."""
    api = p.add_argument_group("rubric judge (OpenAI-compatible endpoint)")
    for flag, field, kind, help_ in API_OPTIONS:
        api.add_argument(f"--{prefix}{flag}", dest=_dest(prefix, field), default=None, metavar=_METAVAR[kind],
                         help=help_)
    api.add_argument(f"--{prefix}no-cache", dest=_dest(prefix, "no_cache"), action="store_true",
                     help="do not read or write the on-disk judgement cache")
    kw = p.add_argument_group("keyword judges")
    refusal = ", ".join(refusal_judge_names())
    for flag, field, _kind, help_ in KEYWORD_OPTIONS:
        kw.add_argument(f"--{prefix}{flag}", dest=_dest(prefix, field), default=None, metavar="RULE",
                        help=help_.format(refusal=refusal))
    cls = p.add_argument_group("classifier judges (transformers)")
    for flag, field, kind, help_ in CLASSIFIER_OPTIONS:
        cls.add_argument(f"--{prefix}{flag}", dest=_dest(prefix, field), default=None, metavar=_METAVAR[kind],
                         help=help_)


def judge_overrides(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The JudgeConfig fields given on the command line (parsed), and only those."""
    out: dict[str, Any] = {}
    for flag, field, kind, _ in API_OPTIONS + KEYWORD_OPTIONS + CLASSIFIER_OPTIONS:
        raw = getattr(args, _dest(prefix, field), None)
        if raw is None:
            continue
        try:
            out[field] = kind(raw)
        except ValueError:
            raise PtstError(f"--{prefix}{flag} takes {_WHAT[kind]}, got {raw!r}") from None
    if getattr(args, _dest(prefix, "no_cache"), False):
        out["cache"] = False
    return out
