"""The thin `ptst` command line: each verb lives in its stage's `cli` module (configure + cli)."""

from __future__ import annotations

import argparse
import importlib
import sys

from ptst import __version__
from ptst.errors import PtstError
from ptst.runtime import threads

# verb -> (module, one-line help). Modules import nothing heavy at top level, so --help stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "templates": ("ptst.templates_cli", "list and show prompt templates rendered for a model"),
    "generate": ("ptst.generate.cli", "answer a data set with a model under a test template (resumable JSONL)"),
    "train": ("ptst.train.cli", "fine-tune a model (LoRA or full) under one prompt template; response-only loss"),
    "export": ("ptst.train.export", "export a fine-tuning set for a hosted API (OpenAI chat JSONL + cost)"),
    "judge": ("ptst.judge.cli", "judge generations for safety: keyword, GPT-4 rubric, Llama Guard, HarmBench"),
    "score": ("ptst.score", "helpfulness, over-refusal and ASR metrics with 95%% intervals"),
    "serve": ("ptst.serve.cli", "serve a model over the OpenAI API with the test template enforced"),
    "data": ("ptst.data.cli", "list, show and check data sets; contamination check"),
    "eval": ("ptst.evaluate.cli", "generate, judge and score one cell on several evaluation sets (metrics.json)"),
    "align": ("ptst.align.cli", "safety-align an unaligned model (refusals + benign data over several templates)"),
    "run": ("ptst.run_cli", "run (or resume) a train-template x test-template grid from one YAML config"),
    "status": ("ptst.grid.status", "show which cells of a grid run directory are done"),
    "report": ("ptst.report.cli", "tables, figures and the PTST verdict (results.csv, report.md, report.html)"),
    "review": ("ptst.review.cli", "label a blinded sample of a run's own answers (a local page, or CSV/JSONL)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptst",
        description="Pure Tuning, Safe Testing: fine-tune without a safety prompt, serve with it, and measure.",
    )
    parser.add_argument("--version", action="version", version=f"ptst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        mod = importlib.import_module(module)
        mod.configure(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Before torch loads (no effect if it already has), for every verb: OpenMP threads spin briefly, then sleep
    # (ptst.runtime.threads): unbounded spinning collapses on a shared CPU, sleeping at once costs a decoding
    # step 25%. Set OMP_WAIT_POLICY or GOMP_SPINCOUNT to choose otherwise.
    threads.bounded_spin()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(args._module).cli(args) or 0)
    except PtstError as e:
        print(f"ptst: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ptst: interrupted", file=sys.stderr)
        return 130
