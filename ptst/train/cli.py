"""`ptst train`: fine-tune a model on a data set under one prompt template (LoRA by default)."""

from __future__ import annotations

import argparse
from typing import Any

from ptst.specs.train import parse_mix, to_yaml_dict_mix
from ptst.train import load_train_config, run

EPILOG = """precedence: defaults < --config FILE.yaml < flags < key=value overrides (e.g. lora.r=16 schedule=constant).
examples:
  ptst train --model smollm2-135m --data gsm8k --template chat:vanilla --out runs/ft --limit 800 --epochs 2
  ptst train --config train.yaml --out runs/ft --mix safety:500:chat:llama lr=2e-4
  accelerate launch -m ptst train --model meta-llama/Llama-2-7b-chat-hf --data gsm8k --template chat:vanilla \\
      --out runs/l2
"""


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("--model", help="base model: HF id, directory, .gguf file or alias (smollm2-135m)")
    p.add_argument("--data", help="fine-tuning data set (registered name or jsonl:PATH)")
    p.add_argument("--template", help="train template, e.g. chat:vanilla (PTST: no safety prompt in training)")
    p.add_argument("--out", required=True, help="run directory (adapter/, config.yaml, train_log.jsonl, spec.json)")
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    p.add_argument("--split", help="data split (default: the data set's training split)")
    p.add_argument("--data-dir", help="where data sets live (default: the data module's)")
    p.add_argument("--limit", type=int, help="use N examples of --data (seeded sample)")
    p.add_argument("--mix", action="append", metavar="DATA:N[:TEMPLATE]",
                   help="shuffle N examples of another set in (repeatable), e.g. safety:500:chat:llama")
    p.add_argument("--epochs", type=int, help="epochs (default 3; the paper's Llama-2 runs use 6)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4)")
    p.add_argument("--batch-size", type=int, help="examples per micro-batch per process (default 4)")
    p.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--max-len", type=int, help="truncate rendered examples to N tokens (default 1024)")
    p.add_argument("--lora-r", type=int, help="LoRA rank (default 8)")
    p.add_argument("--lora-alpha", type=int, help="LoRA alpha (default 32)")
    p.add_argument("--lora-dropout", type=float, help="LoRA dropout (default 0.05)")
    p.add_argument("--lora-targets", help="comma-separated module names or all-linear (default q_proj,v_proj)")
    p.add_argument("--full", action="store_true", default=None, help="full fine-tuning instead of LoRA")
    p.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], help="compute precision (default auto)")
    p.add_argument("--seed", type=int, help="seed for data order, sampling and LoRA init (default 0)")
    p.add_argument("--save-every", type=int, help="checkpoint every N optimizer steps (default 100; 0: never)")
    p.add_argument("--overwrite", action="store_true", help="replace a different or finished run in --out")
    p.add_argument("--resume", action="store_true", help="continue an unfinished run from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. lora.r=16")


def flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user gave, as a TrainConfig-shaped dict."""
    plain = ("model", "data", "template", "split", "data_dir", "limit", "epochs", "lr", "batch_size", "grad_accum",
             "max_len", "full", "precision", "seed", "save_every")
    out: dict[str, Any] = {k: getattr(args, k) for k in plain if getattr(args, k) is not None}
    lora = {k: getattr(args, f"lora_{k}") for k in ("r", "alpha", "dropout", "targets")
            if getattr(args, f"lora_{k}") is not None}
    if lora:
        out["lora"] = lora
    if args.mix:
        out["mix"] = [to_yaml_dict_mix(parse_mix(m)) for m in args.mix]
    return out


def cli(args: argparse.Namespace) -> int:
    cfg = load_train_config(args.config, flags(args), args.overrides)
    run(cfg, args.out, overwrite=args.overwrite, resume=args.resume, progress=False if args.no_progress else None)
    return 0
