"""`ptst judge`: judge a generations file with one registered judge and print its ASR."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptst.judge.base import JudgeConfig

BUILTIN = ["keyword", "keyword-prefix", "xstest-strmatch", "rubric", "llama-guard", "harmbench"]


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
    ("empty-answer", "empty_answer", str, "keyword, keyword-prefix, xstest-strmatch: an empty answer is "
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
    for flag, field, _kind, help_ in KEYWORD_OPTIONS:
        kw.add_argument(f"--{prefix}{flag}", dest=_dest(prefix, field), default=None, metavar="RULE", help=help_)
    cls = p.add_argument_group("classifier judges (transformers)")
    for flag, field, kind, help_ in CLASSIFIER_OPTIONS:
        cls.add_argument(f"--{prefix}{flag}", dest=_dest(prefix, field), default=None, metavar=_METAVAR[kind],
                         help=help_)


def judge_overrides(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The JudgeConfig fields given on the command line (parsed), and only those."""
    from ptst.errors import PtstError

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


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (f"{p.description or ''} `ptst judge --generations F --judge NAME` judges a file; "
                     "`ptst judge validate --judge NAME ...` measures judges against human labels.")
    p.add_argument("--generations", metavar="FILE",
                   help="generations JSONL (id, prompt, answer; rows without any id are numbered 0, 1, ...)")
    p.add_argument("--judge", metavar="NAME", help=f"judge name: {', '.join(BUILTIN)}")
    p.add_argument("--out", metavar="FILE", help="judgements JSONL (default: judgements/<eval>.<judge>.jsonl)")
    add_judge_options(p)
    from ptst.judge.validate_cli import configure as configure_validate

    sub = p.add_subparsers(dest="judge_action", metavar="ACTION")
    configure_validate(sub.add_parser(
        "validate", help="measure judges against human labels (XSTest completions, JBB judge_comparison)",
        description="Run each judge on human-labelled answers and print n, rates, agreement, Cohen's kappa, "
                    "false-positive and false-negative rates with 95% intervals, per subset."))


def config_from_args(args: argparse.Namespace) -> JudgeConfig:
    from ptst.judge.base import JudgeConfig

    return JudgeConfig(judge=args.judge, **judge_overrides(args))


def cli(args: argparse.Namespace) -> int:
    from ptst import metrics
    from ptst.errors import PtstError
    from ptst.judge import JUDGES, read_generations, read_judgements, run

    if getattr(args, "judge_action", None) == "validate":
        from ptst.judge.validate_cli import cli as validate

        return validate(args)
    if not args.generations or not args.judge:
        raise PtstError("ptst judge needs --generations FILE and --judge NAME (or: ptst judge validate --judge NAME)")
    JUDGES.get(args.judge)  # an unknown name fails here, with "did you mean"
    if not read_generations(args.generations):  # `run` judges an empty file to an empty result; a user means a mistake
        raise PtstError(f"{args.generations}: no generation records (the file is empty)")
    out = run(config_from_args(args), args.generations, args.out)
    js = read_judgements(out)
    summary = metrics.asr(js)
    r = metrics.Rate(**summary["asr"])
    line = f"{len(js)} judgements -> {out}\nASR ({args.judge}): {r}; unscored {summary['unscored']}"
    if "mean_score" in summary and args.judge == "rubric":
        line += f"; mean score {summary['mean_score']['mean']:.3f}"
    print(line)
    return 0
