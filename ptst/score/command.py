"""`ptst score`: score a generations file with one registered scorer and print its headline figures."""

from __future__ import annotations

import argparse
from typing import Any

from ptst import metrics
from ptst.score.base import SCORERS, ScoreConfig, scorer_names
from ptst.score.stage import run


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generations", required=True, metavar="FILE", help="generations JSONL")
    p.add_argument("--scorer", required=True, metavar="NAME", help=", ".join(scorer_names()))
    p.add_argument("--judgements", metavar="FILE", help="judgements JSONL (asr: required; xstest: refusal labels)")
    p.add_argument("--baseline", metavar="FILE", help="asr: another cell's judgements for the paired McNemar test")
    p.add_argument("--allow-partial", action="store_true", help="asr: accept judgements covering part of the file")
    p.add_argument("--out", metavar="FILE", help="metrics JSON (default: metrics/<eval>.<scorer>.json)")
    p.add_argument("--arc-mode", default="letter", choices=["letter", "loglik"])
    p.add_argument("--arc-choice", default="text", choices=["text", "label"], help="loglik continuation")
    p.add_argument("--model", help="arc loglik: the model to score choices with")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--batch-size", type=int, default=8)


def _headline(doc: dict[str, Any]) -> str:
    keys = ["strict", "flexible", "accuracy", "accuracy_norm", "asr"]
    parts = [f"{k} {metrics.Rate(**doc[k])}" for k in keys if isinstance(doc.get(k), dict)]
    parts += [f"{k} {doc[k]['mean']:.4f} (n={doc[k]['n']})" for k in ("rouge_l_f1", "token_f1")
              if k in doc and doc[k]["mean"] is not None]
    parts += [f"{kind} {key} {metrics.Rate(**doc[kind][key])}" for kind, key in
              (("safe", "over_refusal"), ("unsafe", "refusal")) if kind in doc]
    if "paired_vs_baseline" in doc:
        pv = doc["paired_vs_baseline"]
        parts.append(f"McNemar vs baseline: b={pv['b']} c={pv['c']} p={pv['p_value']:.4g}")
    return "; ".join(parts)


def cli(args: argparse.Namespace) -> int:
    import json

    SCORERS.get(args.scorer)
    cfg = ScoreConfig(scorer=args.scorer, judgements=args.judgements, baseline=args.baseline,
                      allow_partial=args.allow_partial, arc_mode=args.arc_mode, arc_choice=args.arc_choice,
                      model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    out = run(cfg, args.generations, args.out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    print(f"{args.scorer}: {_headline(doc)}\n-> {out}")
    return 0
