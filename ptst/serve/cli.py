"""`ptst serve`: the OpenAI-compatible server that enforces the test template."""

from __future__ import annotations

import argparse
import os

from ptst.serve import ServeConfig, run


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model to serve (HF id, directory, GGUF, alias)")
    p.add_argument("--adapter", default=None, help="LoRA adapter directory (merged into the model for serving)")
    p.add_argument("--template", default="chat:llama", help="test template enforced on every request (default: "
                   "chat:llama); a registered name, FILE.yaml or FILE.yaml:NAME")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need an API key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="bearer key clients must send (default: $PTST_API_KEY)")
    p.add_argument("--system-policy", choices=("prepend", "reject", "ignore"), default="prepend",
                   help="client system messages: append after the template's system prompt (default), "
                   "reject with 400, or ignore")
    p.add_argument("--max-batch", type=int, default=16, help="most requests in one forward batch")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="a batch closes when no request arrived for this long (at most 5x this after its first), "
                        "or when full")
    p.add_argument("--max-queue", type=int, default=256, help="requests waiting beyond this get 429 + Retry-After")
    p.add_argument("--max-new-tokens-limit", type=int, default=1024, help="largest max_tokens a client may ask")
    p.add_argument("--default-max-tokens", type=int, default=256, help="max_tokens when the client sends none")
    p.add_argument("--served-model-name", default=None, help="model id clients send (default: --model)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default=None, help="auto (default), bf16, fp16, fp32")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def cli(args: argparse.Namespace) -> int:
    cfg = ServeConfig(
        model=args.model, template=args.template, adapter=args.adapter, host=args.host, port=args.port,
        api_key=args.api_key or os.environ.get("PTST_API_KEY") or None, system_policy=args.system_policy,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
        max_new_tokens_limit=args.max_new_tokens_limit, default_max_tokens=args.default_max_tokens,
        model_name=args.served_model_name, device=args.device, dtype=args.dtype, log_level=args.log_level,
    )
    run(cfg)
    return 0
