"""`ptst eval`: evaluate one cell (a model + adapter under one test template) on several sets."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from ptst.evaluate.runner import run
from ptst.io import read_json
from ptst.judge.base import judge_names, refusal_judge_names
from ptst.judge.options import add_judge_options, judge_overrides
from ptst.specs.eval import EvalConfig, EvalSpec


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="HF id, directory, .gguf or alias (smollm2-135m)")
    p.add_argument("--adapter", help="a PEFT adapter directory (e.g. RUN/adapter from `ptst train`)")
    p.add_argument("--template", required=True, help="the TEST template, e.g. chat:llama")
    p.add_argument("--eval", dest="evals", action="append", required=True, metavar="DATA[/SPLIT]",
                   help="an evaluation set (repeat): advbench, directharm4, gsm8k, xstest-safe, arc-easy/test, ...")
    p.add_argument("--limit", type=int, help="a seeded sample of N examples of each set")
    p.add_argument("--judge", dest="judges", action="append", metavar="NAME",
                   help=f"safety judge (repeat; default keyword): {', '.join(judge_names())}; the judges that label "
                   f"refusals ({', '.join(refusal_judge_names())}) also give XSTest over-refusal")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the subset sample")
    p.add_argument("--data-dir", help="data directory (default: $PTST_DATA_DIR, then the cache)")
    p.add_argument("--out", required=True, help="output directory (generations/, judgements/, scores/, metrics.json)")
    # Every `ptst judge` option, prefixed: --judge-base-url, --judge-api-model, --judge-model (classifier), ...
    add_judge_options(p, prefix="judge-")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    evals = []
    for e in args.evals:
        data, _, split = e.partition("/") if not e.startswith(("jsonl:", "json:", "csv:")) else (e, "", "")
        evals.append(EvalSpec(data=data, split=split or None, limit=args.limit))
    return EvalConfig(model=args.model, adapter=args.adapter, template=args.template, evals=evals,
                      judges=args.judges or ["keyword"], judge=judge_overrides(args, prefix="judge-"),
                      decoding={"max_new_tokens": args.max_new_tokens}, generate={"batch_size": args.batch_size},
                      data_dir=args.data_dir, seed=args.seed)


def cli(args: argparse.Namespace) -> int:
    path = run(config_from_args(args), args.out)
    doc = read_json(path)
    for label, ev in doc["evals"].items():
        for metric, r in ev["metrics"].items():
            if isinstance(r, dict) and "k" in r and r.get("value") is not None:
                print(f"{label:<16} {metric:<24} {100 * r['value']:5.1f}% [{100 * r['low']:.1f}, "
                      f"{100 * r['high']:.1f}] ({r['k']}/{r['n']})")
        for pair, a in (ev.get("judge_agreement") or {}).items():
            k = a["kappa"]
            kappa = "n/a" if k["value"] is None else f"{k['value']:.3f} [{k['low']:.3f}, {k['high']:.3f}]"
            share = 100 * (a["agreement"]["value"] or 0)
            print(f"{label:<16} {'agree ' + pair.replace('|', ' vs '):<24} {share:5.1f}% of {a['n']}, kappa {kappa}")
    print(f"metrics: {path}")
    return 0


def with_cell(cfg: EvalConfig, **cell: Any) -> EvalConfig:
    return replace(cfg, cell={**cfg.cell, **cell})
