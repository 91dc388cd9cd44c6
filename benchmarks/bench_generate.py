"""Benchmark: ptst's HF generation (batched, left-padded, length-sorted) vs naive per-prompt `model.generate`.

Same model, same prompts (AdvBench or StrongREJECT, rendered with chat:llama), same max_new_tokens, greedy,
same stop tokens. The CPU is shared, so the systems run interleaved on chunks of the prompts and the totals are
compared; the greedy outputs of each ptst configuration are compared token for token with the first system's.

    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 32 --max-new-tokens 64
    python benchmarks/bench_generate.py --data strongreject --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems fp32-padded,fp32 --chunks 1      # packed vs padded prefill on long-tailed prompts
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# --data: file, column; StrongREJECT's prompts are long-tailed in length (what a padded prefill pays for)
DATA = {"advbench": (SHARED / "advbench" / "harmful_behaviors.csv", "goal"),
        "strongreject": (SHARED / "strongreject" / "strongreject_dataset.csv", "forbidden_prompt")}


def prompts(n: int, data: str = "advbench") -> tuple[list[str], str]:
    path, column = DATA[data]
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r[column] for r in csv.DictReader(f)]
        return rows[:n], f"{path.name} (first {n})"
    topics = ["baking bread", "tax forms", "a bicycle", "the moon", "chess openings", "a job interview"]
    return [f"Explain {topics[i % len(topics)]} to a beginner, step {i}." for i in range(n)], "synthetic"


def naive(model: Any, tok: Any, texts: list[str], max_new: int, stops: list[int]) -> tuple[list[str], int]:
    """What most scripts do: one prompt at a time, fp32, model.generate. Returns (answers, generated tokens)."""
    outs, n_tok = [], 0
    for text in texts:
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id)
        row = gen[0, enc["input_ids"].shape[1]:].tolist()
        end = next((i for i, t in enumerate(row) if t in stops), -1)
        n_tok += end + 1 if end >= 0 else len(row)  # counted as ptst counts: the end-of-turn token included
        outs.append(tok.decode(row[:end] if end >= 0 else row, skip_special_tokens=True))
    return outs, n_tok


def agreement(ref: list[str], other: list[str]) -> dict[str, float]:
    """Exact-match rate of the answers, and the mean share of each reference answer before the first difference."""
    exact = sum(a == b for a, b in zip(ref, other, strict=True))
    prefix = []
    for a, b in zip(ref, other, strict=True):
        k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        prefix.append(1.0 if a == b else k / max(len(a), 1))
    return {"exact": exact / len(ref), "prefix": sum(prefix) / len(prefix)}


SYSTEMS = {  # name -> (dtype, engine, packed prefill); "naive" is per-prompt model.generate, the others HFBackend
    "naive": ("fp32", None, False), "fp32": ("fp32", "auto", True), "bf16": ("bf16", "auto", True),
    "fp32-generate": ("fp32", "generate", False), "fp32-padded": ("fp32", "auto", False),
}
LABELS = {"naive": "naive fp32 bs1", "fp32": "ptst fp32", "bf16": "ptst bf16", "fp32-generate": "ptst fp32 gen()",
          "fp32-padded": "ptst fp32, padded prefill"}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--template", default="chat:llama")
    ap.add_argument("--data", choices=list(DATA), default="advbench", help="prompt source (default advbench)")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--systems", default="naive,fp32,bf16",
                    help=f"comma list of {', '.join(SYSTEMS)}; the first is the baseline for speed-up and agreement")
    ap.add_argument("--chunks", type=int, default=2, help="interleave the systems over this many prompt chunks")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    args.systems = args.systems.split(",")
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    return args


def main() -> None:
    args = parse_args()
    import torch

    from ptst.generate.base import Decoding, PromptItem
    from ptst.generate.hf import HFBackend
    from ptst.generate.stops import stop_token_ids
    from ptst.models import load_model, load_tokenizer
    from ptst.templates import get_template, render

    tok = load_tokenizer(args.model)
    models = {dt: load_model(args.model, device="cpu", dtype=dt) for dt in {SYSTEMS[s][0] for s in args.systems}}
    qs, source = prompts(args.n, args.data)
    texts = [render(get_template(args.template), tok, q).text for q in qs]
    stops = stop_token_ids(tok, next(iter(models.values())))
    dec = Decoding(max_new_tokens=args.max_new_tokens)
    backends = {s: HFBackend(models[SYSTEMS[s][0]], tok, args.batch_size, progress=False, engine=SYSTEMS[s][1],
                             packed_prefill=SYSTEMS[s][2])
                for s in args.systems if s != "naive"}

    def run_system(name: str, chunk: list[str], max_new: int) -> tuple[list[str], int]:
        if name == "naive":
            return naive(models["fp32"], tok, chunk, max_new, stops)
        comps = backends[name].generate([PromptItem(str(i), t) for i, t in enumerate(chunk)], Decoding(max_new))
        return [c.text for c in comps], sum(c.n_tokens or 0 for c in comps)

    if args.warmup:  # one short untimed call each, so first-call allocations do not land on one side
        for name in args.systems:
            run_system(name, texts[:2], 4)
    secs = dict.fromkeys(args.systems, 0.0)
    toks = dict.fromkeys(args.systems, 0)
    answers: dict[str, list[str]] = {s: [] for s in args.systems}
    step = -(-len(texts) // args.chunks)
    for c in range(0, len(texts), step):
        for name in args.systems:
            t0 = time.perf_counter()
            outs, n = run_system(name, texts[c: c + step], dec.max_new_tokens)
            secs[name] += time.perf_counter() - t0
            toks[name] += n
            answers[name] += outs
        print(f"chunk {c // step + 1}/{-(-len(texts) // step)} done", flush=True)
    report(args, source, len(texts), secs, toks, answers, torch.get_num_threads())


def report(args: argparse.Namespace, source: str, n: int, secs: dict[str, float], toks: dict[str, int],
           answers: dict[str, list[str]], threads: int) -> None:
    first = args.systems[0]
    base = toks[first] / secs[first]
    res: dict[str, Any] = {"model": args.model, "prompts": source, "n": n, "template": args.template,
                           "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                           "torch_threads": threads, "baseline": LABELS[first], "systems": {}}
    print(f"\n{n} prompts ({source}), {args.template}, greedy, max_new_tokens {args.max_new_tokens}, "
          f"batch {args.batch_size}, {threads} threads; agreement vs {LABELS[first]}")
    print(f"{'system':<16} {'tokens':>7} {'seconds':>8} {'tok/s':>7} {'speed-up':>8} {'exact':>6} {'prefix':>7}")
    for name in args.systems:
        rate = toks[name] / secs[name]
        agr = agreement(answers[first], answers[name])
        res["systems"][LABELS[name]] = {"tokens": toks[name], "seconds": round(secs[name], 2), "tok_s": round(rate, 1),
                                        "speedup": round(rate / base, 2), **{k: round(v, 3) for k, v in agr.items()}}
        print(f"{LABELS[name]:<16} {toks[name]:>7} {secs[name]:>8.1f} {rate:>7.1f} {rate / base:>7.2f}x "
              f"{agr['exact']:>6.0%} {agr['prefix']:>7.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
