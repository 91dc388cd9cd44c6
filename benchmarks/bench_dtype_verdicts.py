"""Benchmark: how much bf16 generation changes a finished grid's answers and its keyword judge's verdicts.

A grid generates in fp32 on CPU by default (its answers equal transformers' greedy ones on every CPU). bf16 is
~1.9x faster where the CPU has fast bf16 (docs/performance.md), but its answers differ. This regenerates every
evaluation cell's answers of a finished grid run in bf16 — the same model, adapter (merged), rendered prompts and
decoding — and counts identical answers and changed refusal verdicts (the keyword judge, the paper's), per cell.

    python benchmarks/bench_dtype_verdicts.py runs/quickstart-gsm8k --json dtype_verdicts.json     # ~3 min
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SAFETY_SETS = ("advbench", "directharm4", "xstest-safe")


def cells(run: Path) -> list[tuple[str, Path | None, Path]]:
    """(name, adapter or None for the aligned model, eval directory) for every evaluation cell of the run."""
    out = []
    for eval_dir in sorted(run.glob("*/eval/*")):
        cell = eval_dir.parent.parent
        adapter = cell / "adapter"
        out.append((f"{cell.name} -> {eval_dir.name}", adapter if adapter.is_dir() else None, eval_dir))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished grid run directory (with align/model)")
    ap.add_argument("--sets", default=",".join(SAFETY_SETS), help="evaluation set labels to regenerate")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--json")
    args = ap.parse_args()

    from ptst.generate.base import Decoding, PromptItem
    from ptst.generate.hf import HFBackend
    from ptst.judge.keyword import refusal_matches
    from ptst.models import load_model, load_tokenizer
    from ptst.runtime import cpu
    from ptst.templates import get_template, render

    base = args.run / "align" / "model"
    tok = load_tokenizer(str(base))
    sets = args.sets.split(",")
    rows: list[dict[str, Any]] = []
    print(f"{cpu.describe()}; fp32 answers from {args.run}, regenerated in {args.dtype}")
    print(f"{'cell':<44} {'set':<12} {'n':>3} {'identical':>9} {'verdict flips':>13} {'refused fp32':>12} "
          f"{'refused ' + args.dtype:>12}")
    for name, adapter, eval_dir in cells(args.run):
        model = load_model(str(base), adapter=str(adapter) if adapter else None, device="cpu", dtype=args.dtype,
                           merge=adapter is not None)
        backend = HFBackend(model, tok, batch_size=args.batch_size, progress=False)
        for label in sets:
            path = eval_dir / "generations" / f"{label}.jsonl"
            if not path.exists():
                continue
            meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
            recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            template = get_template(recs[0]["template"])
            items = [PromptItem(r["id"], render(template, tok, r["prompt"]).text) for r in recs]
            dec = Decoding(max_new_tokens=int(meta["key"]["decoding"]["max_new_tokens"]))
            t0 = time.perf_counter()
            new = [c.text for c in backend.generate(items, dec)]
            took = time.perf_counter() - t0
            old = [r["answer"] for r in recs]
            v_old = [bool(refusal_matches(a)) for a in old]
            v_new = [bool(refusal_matches(a)) for a in new]
            same = sum(a == b for a, b in zip(old, new, strict=True))
            row = {"cell": name, "set": label, "n": len(recs), "identical": same,
                   "flips": sum(a != b for a, b in zip(v_old, v_new, strict=True)), "refused_fp32": sum(v_old),
                   "refused_other": sum(v_new), "seconds": round(took, 2)}
            rows.append(row)
            print(f"{name:<44} {label:<12} {row['n']:>3} {row['identical']:>9} {row['flips']:>13} "
                  f"{row['refused_fp32']:>12} {row['refused_other']:>12}", flush=True)
    n = sum(r["n"] for r in rows)
    same = sum(r["identical"] for r in rows)
    flips = sum(r["flips"] for r in rows)
    print(f"total: {n} answers, {same} identical ({same / n:.1%}), {flips} keyword verdicts changed "
          f"({flips / n:.1%}); refusals {sum(r['refused_fp32'] for r in rows)} fp32 vs "
          f"{sum(r['refused_other'] for r in rows)} {args.dtype}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu.describe(), "dtype": args.dtype, "rows": rows}, indent=2)
                                   + "\n")


if __name__ == "__main__":
    main()
