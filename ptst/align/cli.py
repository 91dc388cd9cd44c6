"""`ptst align`: safety-align an unaligned model into a directory of its own."""

from __future__ import annotations

import argparse

from ptst.align.runner import run
from ptst.config import load_config
from ptst.io import read_json
from ptst.runs.layout import AlignDir
from ptst.specs.align import AlignSpec


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the model to align (HF id, directory, .gguf, alias)")
    p.add_argument("--out", required=True, help="output directory (model/ = the aligned model)")
    p.add_argument("--config", help="YAML with AlignSpec keys (safety, n_safety, benign, n_benign, templates, train)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override AlignSpec keys, e.g. n_safety=200")
    p.add_argument("--data-dir", help="data directory (default: $PTST_DATA_DIR, then the cache)")
    p.add_argument("--batch-size", type=int, help="prompts per generation batch when measuring refusal "
                   "(default 16; larger is faster on a CPU)")


def cli(args: argparse.Namespace) -> int:
    spec = load_config(AlignSpec, args.config, args.overrides)
    gen = {"batch_size": args.batch_size} if args.batch_size else None
    out = run(spec, args.model, args.out, data_dir=args.data_dir, generate=gen)
    print(read_json(AlignDir(out).manifest)["summary"])
    print(f"aligned model: {AlignDir(out).model}")
    return 0
