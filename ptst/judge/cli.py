"""`ptst judge`: judge a generations file with one registered judge and print its ASR."""

from __future__ import annotations

import argparse

from ptst import metrics
from ptst.errors import PtstError
from ptst.judge.base import JUDGES, JudgeConfig, judge_names
from ptst.judge.options import add_judge_options, judge_overrides  # `ptst eval` imports both from here too
from ptst.judge.runner import run
from ptst.judge.validate_cli import cli as validate
from ptst.judge.validate_cli import configure as configure_validate
from ptst.records import read_generations, read_judgements


def configure(p: argparse.ArgumentParser) -> None:
    p.description = (f"{p.description or ''} `ptst judge --generations F --judge NAME` judges a file; "
                     "`ptst judge validate --judge NAME ...` measures judges against human labels.")
    p.add_argument("--generations", metavar="FILE",
                   help="generations JSONL (id, prompt, answer; rows without any id are numbered 0, 1, ...)")
    p.add_argument("--judge", metavar="NAME", help=f"judge name: {', '.join(judge_names())}")
    p.add_argument("--out", metavar="FILE", help="judgements JSONL (default: judgements/<eval>.<judge>.jsonl)")
    add_judge_options(p)

    sub = p.add_subparsers(dest="judge_action", metavar="ACTION")
    configure_validate(sub.add_parser(
        "validate", help="measure judges against human labels (XSTest completions, JBB judge_comparison)",
        description="Run each judge on human-labelled answers and print n, rates, agreement, Cohen's kappa, "
                    "false-positive and false-negative rates with 95% intervals, per subset."))


def config_from_args(args: argparse.Namespace) -> JudgeConfig:
    return JudgeConfig(judge=args.judge, **judge_overrides(args))


def cli(args: argparse.Namespace) -> int:
    if getattr(args, "judge_action", None) == "validate":
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
