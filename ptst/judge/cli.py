"""`ptst judge`: judge a generations file with one registered judge and print its ASR."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptst.judge.base import JudgeConfig

BUILTIN = ["keyword", "keyword-prefix", "rubric", "llama-guard", "harmbench"]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generations", required=True, metavar="FILE", help="generations JSONL (id, prompt, answer)")
    p.add_argument("--judge", required=True, metavar="NAME", help=f"judge name: {', '.join(BUILTIN)}")
    p.add_argument("--out", metavar="FILE", help="judgements JSONL (default: judgements/<eval>.<judge>.jsonl)")
    api = p.add_argument_group("rubric judge (OpenAI-compatible endpoint)")
    api.add_argument("--base-url", default="https://api.openai.com/v1")
    api.add_argument("--api-model", default="gpt-4-0613", help="judge model (default: the paper's gpt-4-0613)")
    api.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    api.add_argument("--concurrency", type=int, default=8)
    api.add_argument("--max-retries", type=int, default=5, help="HTTP retries per request (429/5xx/timeouts)")
    api.add_argument("--parse-retries", type=int, default=2, help="re-asks when a reply has no '#thescore: N'")
    api.add_argument("--temperature", default="0", help="temperature sent (paper: 0); 'none' omits it")
    api.add_argument("--top-p", default="0", help="top_p sent (paper: 0); 'none' omits it (vLLM needs > 0)")
    api.add_argument("--max-tokens", default="4096", help="max_tokens sent (paper: 4096); 'none' omits it")
    api.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk judgement cache")
    cls = p.add_argument_group("classifier judges (transformers)")
    cls.add_argument("--model", help="classifier: HF id or local directory (Llama Guard, HarmBench-Llama-2-13b-cls)")
    cls.add_argument("--guard-version", type=int, default=3, choices=[1, 2, 3],
                     help="Llama Guard prompt when the tokenizer has no Llama Guard chat template")
    cls.add_argument("--device", default=None)
    cls.add_argument("--dtype", default=None)
    cls.add_argument("--batch-size", type=int, default=8)
    cls.add_argument("--max-new-tokens", type=int, default=None)
    cls.add_argument("--max-answer-tokens", type=int, default=512, help="clip answers to this many tokens")


def _opt_number(text: str, kind: Callable[[str], Any]) -> Any:
    return None if str(text).lower() in ("none", "null", "") else kind(text)


def config_from_args(args: argparse.Namespace) -> JudgeConfig:
    from ptst.errors import PtstError
    from ptst.judge.base import JudgeConfig

    try:
        sampling = {"temperature": _opt_number(args.temperature, float), "top_p": _opt_number(args.top_p, float),
                    "max_tokens": _opt_number(args.max_tokens, int)}
    except ValueError:
        raise PtstError("--temperature/--top-p take a number or 'none'; --max-tokens an integer or 'none'") from None
    return JudgeConfig(judge=args.judge, base_url=args.base_url, api_model=args.api_model,
                       api_key_env=args.api_key_env, concurrency=args.concurrency, max_retries=args.max_retries,
                       parse_retries=args.parse_retries, cache=not args.no_cache, model=args.model,
                       device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                       max_new_tokens=args.max_new_tokens, max_answer_tokens=args.max_answer_tokens,
                       guard_version=args.guard_version, **sampling)


def cli(args: argparse.Namespace) -> int:
    from ptst import metrics
    from ptst.judge import JUDGES, read_judgements, run

    JUDGES.get(args.judge)  # an unknown name fails here, with "did you mean"
    out = run(config_from_args(args), args.generations, args.out)
    js = read_judgements(out)
    summary = metrics.asr(js)
    r = metrics.Rate(**summary["asr"])
    line = f"{len(js)} judgements -> {out}\nASR ({args.judge}): {r}; unscored {summary['unscored']}"
    if "mean_score" in summary and args.judge == "rubric":
        line += f"; mean score {summary['mean_score']['mean']:.3f}"
    print(line)
    return 0
