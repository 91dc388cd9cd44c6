"""`ptst generate`: answer a data set with a model under a test template, into resumable JSONL."""

from __future__ import annotations

import argparse
from typing import Any

from ptst.config import deep_merge, from_dict, parse_overrides, read_yaml
from ptst.errors import PtstError
from ptst.generate.runner import run
from ptst.specs.generate import GenerateConfig

# flag dest -> GenerateConfig key (dotted for the nested decoding settings)
_FLAGS = {
    "model": "model", "adapter": "adapter", "data": "data", "split": "split", "limit": "limit",
    "template": "template", "backend": "backend", "batch_size": "batch_size", "data_dir": "data_dir",
    "base_url": "base_url", "api_model": "api_model", "api_key_env": "api_key_env", "concurrency": "concurrency",
    "device": "device", "dtype": "dtype", "max_new_tokens": "decoding.max_new_tokens",
    "temperature": "decoding.temperature", "top_p": "decoding.top_p",
}


def configure(p: argparse.ArgumentParser) -> None:
    p.epilog = ("example: ptst generate --model smollm2-135m --data advbench --template chat:llama "
                "--out runs/x/generations/advbench.jsonl --limit 32")
    p.add_argument("--out", required=True, help="output JSONL (resumed if it exists for the same config)")
    p.add_argument("--config", help="YAML with GenerateConfig keys; flags and KEY=VALUE overrides win over it")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. decoding.stop=[END]")
    g = p.add_argument_group("what to generate")
    g.add_argument("--model", help="HF id, directory, .gguf file or alias (e.g. smollm2-135m)")
    g.add_argument("--adapter", help="LoRA adapter directory (PEFT save_pretrained output)")
    g.add_argument("--data", help="data set name (e.g. advbench) or jsonl:PATH")
    g.add_argument("--split", help="data set split")
    g.add_argument("--limit", type=int, help="at most N examples")
    g.add_argument("--data-dir", help="where the data files live (default: the data module's)")
    g.add_argument("--template", help="test template, e.g. chat:llama (PTST: the safety prompt at test time)")
    b = p.add_argument_group("backend")
    b.add_argument("--backend", help="hf (default), vllm, openvino or openai")
    b.add_argument("--batch-size", type=int, help="prompts decoded together, hf and openvino (default 16)")
    b.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    b.add_argument("--dtype", help="auto (fp32 on CPU, bf16 on GPU), bf16, fp16, fp32")
    b.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    b.add_argument("--api-model", help="model name the endpoint serves")
    b.add_argument("--api-key-env", help="environment variable holding the API key (default OPENAI_API_KEY)")
    b.add_argument("--concurrency", type=int, help="parallel requests for openai (default 8)")
    d = p.add_argument_group("decoding (default: greedy, 512 new tokens, as in the paper)")
    d.add_argument("--max-new-tokens", type=int)
    d.add_argument("--temperature", type=float, help="0 = greedy (default)")
    d.add_argument("--top-p", type=float)
    d.add_argument("--seed", type=int, help="sampling seed and data-subset seed (default 0)")
    d.add_argument("--stop", action="append", help="stop string (repeatable); the answer is cut before it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace) -> Any:
    data = read_yaml(args.config) if args.config else {}
    explicit: dict[str, Any] = {}
    for dest, key in _FLAGS.items():  # values as argparse typed them: a model named 'on' stays a string
        value = getattr(args, dest)
        if value is not None:
            *parents, last = key.split(".")
            node = explicit
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
    if args.seed is not None:
        explicit["seed"] = args.seed
        explicit.setdefault("decoding", {})["seed"] = args.seed
    if args.stop:
        explicit.setdefault("decoding", {})["stop"] = list(args.stop)
    data = deep_merge(deep_merge(data, explicit), parse_overrides(args.overrides))
    missing = [k for k in ("data", "template") if not data.get(k)]
    if missing:
        raise PtstError(f"generate needs {' and '.join('--' + k for k in missing)} (flags or keys in --config)")
    return from_dict(GenerateConfig, data, args.config or "generate")


def cli(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    run(cfg, args.out, progress=not args.no_progress)
    return 0
