"""`ptst export openai`: a fine-tuning set as OpenAI chat JSONL (the paper's GPT-3.5 path) with a cost estimate."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import write_jsonl_atomic
from ptst.models import load_tokenizer
from ptst.templates import get_template
from ptst.train.encode import load_examples

# OpenAI's chat accounting (gpt-3.5-turbo-0613 cookbook): every message costs a few tokens of framing.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_EXAMPLE = 3
DEFAULT_PRICE_PER_1M = 8.00  # USD per 1M training tokens, gpt-3.5-turbo fine-tuning (OpenAI price list, 2023-08)


@dataclass(frozen=True)
class ExportStats:
    path: str
    examples: int
    tokens: int
    token_counter: str
    price_per_1m: float
    epochs: int

    @property
    def cost_per_epoch(self) -> float:
        return self.tokens / 1e6 * self.price_per_1m


def chat_example(template: Any, ex: Any) -> dict[str, Any]:
    """{"messages": [system?, user, assistant]}; the system message may be empty (the official gpt-api `vanilla`)."""
    messages = template.messages(ex.input) + [{"role": "assistant", "content": ex.response}]
    validate(messages, ex.id)
    return {"messages": messages}


def validate(messages: list[dict[str, Any]], ex_id: str) -> None:
    roles = [m.get("role") for m in messages]
    if roles not in (["system", "user", "assistant"], ["user", "assistant"]):
        raise PtstError(f"example {ex_id}: roles must be [system,] user, assistant; got {roles}")
    for m in messages:
        if set(m) != {"role", "content"} or not isinstance(m["content"], str):
            raise PtstError(f"example {ex_id}: each message needs exactly a role and a string content")
        if m["role"] != "system" and not m["content"].strip():
            raise PtstError(f"example {ex_id}: empty {m['role']} message")


def chars_over_4(text: str) -> int:
    """OpenAI's rule of thumb: about 4 characters of English per token."""
    return math.ceil(len(text) / 4)


def count_tokens(example: dict[str, Any], counter: Any) -> int:
    return TOKENS_PER_EXAMPLE + sum(TOKENS_PER_MESSAGE + counter(m["content"]) for m in example["messages"])


def export_openai(data: str, template: str, out: str | Path, *, limit: int | None = None, split: str | None = None,
                  data_dir: str | None = None, seed: int = 0, model: str | None = None,
                  price_per_1m: float = DEFAULT_PRICE_PER_1M, epochs: int = 1) -> ExportStats:
    """Write the chat-format JSONL atomically (all examples validated first) and return its size and cost."""
    if price_per_1m < 0 or epochs < 1:
        raise PtstError("--price-per-1m must be >= 0 and --epochs >= 1")
    t = get_template(template)
    if t.mode != "chat":
        raise PtstError(f"template {t.name!r} is a text template; the OpenAI path needs a chat one (gpt:*)")
    if t.rendering != "native":
        raise PtstError(f"template {t.name!r} renders the paper's literal Llama-2 strings; the OpenAI path sends "
                        "messages, which OpenAI renders its own way: use a gpt:* template")
    ds = load_examples(data, split, data_dir, limit, seed)
    missing = [ex.id for ex in ds.examples if not isinstance(ex.response, str)]
    if missing:
        raise PtstError(f"data set {data!r}: {len(missing)} examples have no target response (first: {missing[0]})")
    if not ds.examples:
        raise PtstError(f"data set {data!r} is empty")
    rows = [chat_example(t, ex) for ex in ds.examples]
    if model:
        tok = load_tokenizer(model)
        counter, name = (lambda s: len(tok(s, add_special_tokens=False)["input_ids"])), f"tokenizer of {model}"
    else:
        counter, name = chars_over_4, "chars/4 estimate"
    tokens = sum(count_tokens(r, counter) for r in rows)
    write_jsonl_atomic(out, rows)
    return ExportStats(str(out), len(rows), tokens, name, price_per_1m, epochs)


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    o = sub.add_parser("openai", help="OpenAI fine-tuning JSONL ({'messages': [...]}) with a cost estimate")
    o.add_argument("--data", required=True, help="fine-tuning data set (registered name or jsonl:PATH)")
    o.add_argument("--template", required=True, help="chat template, e.g. gpt:vanilla or gpt:llama")
    o.add_argument("--out", required=True, help="output .jsonl file (written atomically)")
    o.add_argument("--limit", type=int, help="export N examples (seeded sample)")
    o.add_argument("--split", help="data split (default: the training split)")
    o.add_argument("--data-dir", help="where data sets live")
    o.add_argument("--seed", type=int, default=0, help="sampling seed for --limit (default 0)")
    o.add_argument("--model", help="count tokens with this model's tokenizer instead of chars/4")
    o.add_argument("--price-per-1m", type=float, default=DEFAULT_PRICE_PER_1M,
                   help=f"USD per 1M training tokens (default {DEFAULT_PRICE_PER_1M:.2f}, gpt-3.5-turbo)")
    o.add_argument("--epochs", type=int, default=1, help="epochs for the total cost (the paper's GPT-3.5 run: 1)")


def cli(args: argparse.Namespace) -> int:
    s = export_openai(args.data, args.template, args.out, limit=args.limit, split=args.split,
                      data_dir=args.data_dir, seed=args.seed, model=args.model, price_per_1m=args.price_per_1m,
                      epochs=args.epochs)
    print(f"wrote {s.examples} examples to {s.path}")
    print(f"tokens: {s.tokens:,} per epoch ({s.token_counter}, plus {TOKENS_PER_MESSAGE} per message)")
    print(f"cost: ${s.cost_per_epoch:,.2f} per epoch at ${s.price_per_1m:.2f}/1M training tokens; "
          f"{s.epochs} epoch(s): ${s.cost_per_epoch * s.epochs:,.2f}")
    return 0
