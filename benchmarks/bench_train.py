"""Benchmark: ptst's training step vs a naive Hugging Face step, and the CPU's measured matmul peaks.

Same model (SmolLM2-135M), same LoRA (ptst defaults: r 8, alpha 32, dropout 0.05, q_proj + v_proj), same examples
(real GSM8K train rows under chat:vanilla or --template, or synthetic ones), same AdamW + clipping, one full pass
over the same examples each. Naive: fp32 weights, `model(input_ids, attention_mask, labels).loss` (full-vocabulary
logits at every position), batches in random order padded to their longest row. ptst: the precision `ptst train`
picks (bf16 autocast with bf16 frozen weights where the CPU has fast bf16, else fp32), logits only at trained
positions (a chunk of rows at a time, `ptst.train.loss`), length-grouped batches run padding-free (rows
concatenated, attention per row), a prefix all rows share run once. `--ablate` adds one lever at a time, among
them `ptst-logits`: ptst with the trained rows' full logits through F.cross_entropy (before the chunked head),
and `ptst-eager-layers`: ptst without its layer kernels (LoRA dropout, RMSNorm, SiLU product and rotary embedding as
PEFT and the model run them; ptst.train.dropout, ptst.train.fused; the head's loss and attention keep theirs). The
naive systems use none of ptst's kernels (the model's own loss and attention on padded batches).
The CPU is shared, so the systems alternate step by step and the matmul peak in ptst's precision is measured
before and after (the best is the denominator); the bf16 peak too, where ptst trains in fp32.

    flock /tmp/ptst-heavy.lock python benchmarks/bench_train.py --json /tmp/bench_train.json"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"


def examples(n: int) -> tuple[Any, str]:
    from ptst.records import Example

    if GSM8K.exists():
        rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines()[:n]]
        return tuple(Example(f"gsm8k-{i}", r["question"], r["answer"]) for i, r in enumerate(rows)), \
            f"GSM8K train rows 0-{n - 1}"
    words = ["the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are"]
    ex = tuple(Example(f"syn-{i}", " ".join(words[(i + j) % len(words)] for j in range(40 + i % 60)),
                       " ".join(words[(3 * i + j) % len(words)] for j in range(80 + (7 * i) % 120)))
               for i in range(n))
    return ex, "synthetic"


def matmul_peak(precision: str, seconds: float = 6.0) -> float:
    """Best GFLOP/s of large square matmuls in the given precision (the denominator of MFU). Sizes grow from
    512 to 4096 while one product stays well inside the time budget: on a CPU without bf16 instructions a bf16
    4096^3 product runs ~1 GFLOP/s and would take minutes."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    best, n = 0.0, 512
    while n <= 4096:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        t0 = time.perf_counter()
        a @ b
        one = time.perf_counter() - t0
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 4:
            a @ b
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
        if one * 8 > seconds / 4:  # the next size (8x the work) would not fit its share of the budget
            break
        n *= 2
    return best


def cpu_capability() -> str:
    import torch

    from ptst.runtime import cpu

    return f"{cpu.name()}, torch {torch.backends.cpu.get_cpu_capability()}"


def useful_flops(cfg: Any, n_linear: int, lengths: list[int], trained: list[int]) -> dict[str, float]:
    """Minimum FLOPs of a LoRA step: frozen linears forward + input-gradient (4 N L), causal attention
    (forward 2 L^2 d per layer, backward twice that), the LM head at trained rows only (forward + input-gradient).
    Also the customary 6 N L over all parameters, which over-counts LoRA (no weight gradients)."""
    d, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    linear = sum(4 * n_linear * n for n in lengths)
    attention = sum(6 * n * n * d * layers for n in lengths)
    head = sum(4 * vocab * d * r for r in trained)
    n_all = n_linear + vocab * d
    return {"useful": linear + attention + head, "six_n": sum(6 * n_all * n for n in lengths)}


def products_alone(core: Any, batches: list[list[Any]], precision: str) -> dict[str, float]:
    """The step's matrix products on their own, at the step's shapes: for each of ptst's (packed) batches, every
    frozen linear layer's forward and input-gradient products with its real weights ([T, in] x [in, out] and
    [T, out] x [out, in], T the batch's tokens) and the LM head's at the trained rows. Their FLOPs are the useful
    count's linear and head terms; their time is what a step made of nothing but these products would take, so
    FLOPs / time / peak bounds the MFU any implementation built on torch's products reaches here."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    weights = [m.weight.to(dtype) for n, m in core.named_modules()
               if isinstance(m, torch.nn.Linear) and "lora_" not in n and n.startswith("model.")]
    head = core.get_output_embeddings().weight.to(dtype)
    flops, secs = 0.0, 0.0
    with torch.no_grad():
        for b in batches:
            t, r = sum(len(e.input_ids) for e in b), sum(e.n_trained for e in b)
            xs = {w.shape[1]: torch.randn(t, w.shape[1], dtype=dtype) for w in weights}
            grads = {w.shape[0]: torch.randn(t, w.shape[0], dtype=dtype) for w in weights}
            work = [(xs[w.shape[1]], w) for w in weights] + [(torch.randn(r, head.shape[1], dtype=dtype), head)]
            grads[head.shape[0]] = torch.randn(r, head.shape[0], dtype=dtype)
            for x, w in work[:3]:  # warm-up: first-call costs of each shape
                x @ w.T
            t0 = time.perf_counter()
            for x, w in work:
                x @ w.T
                grads[w.shape[0]][: x.shape[0]] @ w
            secs += time.perf_counter() - t0
            flops += sum(4 * x.shape[0] * w.numel() for x, w in work)
    return {"gflop": flops / 1e9, "seconds": secs, "gflops": flops / secs / 1e9}


def naive_step(model: Any, batch: list[Any], opt: Any, params: list[Any], precision: str = "fp32") -> None:
    import torch

    from ptst.train.model import autocast

    width = max(len(e.input_ids) for e in batch)
    ids = torch.tensor([list(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
    mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
    labels = torch.tensor([e.labels() + [-100] * (width - len(e.input_ids)) for e in batch])
    with autocast(precision, "cpu"):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def ptst_step(module: Any, batch: list[Any], opt: Any, params: list[Any], precision: str = "bf16") -> None:
    import torch

    from ptst.train.batching import collate
    from ptst.train.model import autocast

    with autocast(precision, "cpu"):
        loss = module(**collate(batch, 0, share_prefix=module.can_share_prefix, pack=module.can_pack))
    (loss / sum(e.n_trained for e in batch)).backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def setup(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ptst.models import load_tokenizer
    from ptst.train import TrainConfig
    from ptst.train.batching import epoch_batches
    from ptst.train.encode import encode_part, stop_token_ids
    from ptst.train.model import ResponseLoss, load_trainable

    exs, source = examples(args.n + args.batch_size)
    ds = type("Data", (), {"examples": exs, "name": "bench", "sha256": ""})()
    tok = load_tokenizer(args.model)
    enc, _ = encode_part("bench", ds, args.template, tok, args.max_len, None, stop_token_ids(tok))
    warm, enc = enc[: args.batch_size], enc[args.batch_size:]
    lengths = [len(e.input_ids) for e in enc]
    cfg = TrainConfig(model=args.model, data="bench", template=args.template)
    # name -> (ptst's loss path?, precision, chunked head?); the others only with --ablate. "ptst" runs the
    # precision `ptst train` picks on this machine (precision auto: bf16 only where the CPU has fast bf16).
    chosen = {"naive": (False, "fp32", False), "naive-bf16": (False, "bf16", False),
              "ptst-fp32": (True, "fp32", True), "ptst-logits": (True, args.precision, False),
              "ptst-eager-layers": (True, args.precision, True), "ptst": (True, args.precision, True)}
    if args.precision == "fp32":
        chosen = {k: v for k, v in chosen.items() if k != "ptst-fp32"}
    if not args.ablate:
        chosen = {k: v for k, v in chosen.items() if k in ("naive", "ptst")}
    systems = {}
    for name, (ours, precision, chunked) in chosen.items():
        eager = name in ("naive", "naive-bf16", "ptst-eager-layers")  # without ptst's layer kernels
        lm = load_trainable(cfg, precision, args.model, kernels=not eager)
        params = [p for p in lm.parameters() if p.requires_grad]
        batches = [[enc[i] for i in b] for b in epoch_batches(lengths, args.batch_size, 0, 0, ours)]
        module = ResponseLoss(lm, chunked_head=chunked) if ours else lm
        systems[name] = {"run": ptst_step if ours else naive_step, "model": module,
                         "precision": precision, "params": params, "opt": torch.optim.AdamW(params, lr=1e-4),
                         "batches": batches, "times": [], "lm": lm}
    naive = systems["naive"]["lm"]
    core = naive.get_base_model()
    n_linear = sum(m.weight.numel() for n, m in core.named_modules()
                   if isinstance(m, torch.nn.Linear) and "lora_" not in n and n.startswith("model."))
    return {"systems": systems, "warm": warm, "enc": enc, "source": source, "config": core.config,
            "n_linear": n_linear,
            "padding": {k: 0.0 if getattr(v["model"], "can_pack", False) else padding(v["batches"])
                        for k, v in systems.items()}}


def padding(batches: list[list[Any]]) -> float:
    real = sum(len(e.input_ids) for b in batches for e in b)
    return 1 - real / sum(max(len(e.input_ids) for e in b) * len(b) for b in batches)


def measure(s: dict[str, Any]) -> None:
    systems = s["systems"]
    for sys_ in systems.values():  # first-step costs (allocations, kernel JIT) are paid once per process
        sys_["run"](sys_["model"], s["warm"], sys_["opt"], sys_["params"], sys_["precision"])
    for k in range(max(len(v["batches"]) for v in systems.values())):
        for name, sys_ in systems.items():
            if k < len(sys_["batches"]):
                t0 = time.perf_counter()
                sys_["run"](sys_["model"], sys_["batches"][k], sys_["opt"], sys_["params"], sys_["precision"])
                sys_["times"].append(time.perf_counter() - t0)
                print(f"  {name:10s} step {k + 1}: {sys_['times'][-1]:.2f}s", flush=True)


def report(s: dict[str, Any], peaks: list[float], args: argparse.Namespace,
           bf16_peak: float | None = None) -> dict[str, Any]:
    enc = s["enc"]
    tokens = sum(len(e.input_ids) for e in enc)
    flops = useful_flops(s["config"], s["n_linear"], [len(e.input_ids) for e in enc], [e.n_trained for e in enc])
    peak = max(peaks)
    out: dict[str, Any] = {"data": s["source"], "examples": len(enc), "tokens": tokens,
                           "trained_tokens": sum(e.n_trained for e in enc), "batch_size": args.batch_size,
                           "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                           "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
                           "precision": args.precision, "cpu_capability": cpu_capability(), "template": args.template,
                           "peak_gflops": peaks, "useful_gflop_per_token": flops["useful"] / tokens / 1e9,
                           "six_n_gflop_per_token": flops["six_n"] / tokens / 1e9}
    for name, sys_ in s["systems"].items():
        sec = sum(sys_["times"])
        out[name] = {"seconds": sec, "tokens_per_s": tokens / sec, "padding": s["padding"][name],
                     "useful_gflops": flops["useful"] / sec / 1e9, "mfu": flops["useful"] / sec / 1e9 / peak,
                     "mfu_6n": flops["six_n"] / sec / 1e9 / peak}
    out["speedup"] = out["naive"]["seconds"] / out["ptst"]["seconds"]
    # The most any system could reach here: every useful FLOP at the measured peak, nothing else.
    out["ceiling_tokens_per_s"] = peak / out["useful_gflop_per_token"]
    out["ceiling_speedup_vs_naive"] = out["ceiling_tokens_per_s"] / out["naive"]["tokens_per_s"]
    if bf16_peak is not None:  # the denominator, where ptst trains in another precision
        out["bf16_peak_gflops"] = bf16_peak
        out["ptst"]["mfu_vs_bf16_peak"] = out["ptst"]["useful_gflops"] / bf16_peak
    for name in s["systems"]:
        out[name]["speedup_vs_naive"] = out["naive"]["seconds"] / out[name]["seconds"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n", type=int, default=48, help="examples in the measured pass (default 48)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--template", default="chat:vanilla",
                   help="training template (default chat:vanilla; chat:llama adds the ~120-token safety prompt, "
                        "which ptst runs once per batch)")
    p.add_argument("--max-len", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ablate", action="store_true",
                   help="also time naive + bf16 autocast and ptst's path in fp32 (one lever at a time)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="ptst's precision (default: what `ptst train` picks here) and the matmul peak's")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    # Before torch loads, as `ptst train` does: OpenMP threads spin briefly, then sleep (ptst.runtime.threads)
    from ptst.runtime.threads import bounded_spin

    bounded_spin()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from ptst.train.model import resolve_precision

    args.precision = resolve_precision(args.precision, "cpu")
    peaks = [matmul_peak(args.precision)]
    s = setup(args)
    measure(s)
    peaks.append(matmul_peak(args.precision))
    bf16 = matmul_peak("bf16") if args.precision != "bf16" else None
    r = report(s, peaks, args, bf16)
    ptst = s["systems"]["ptst"]
    alone = products_alone(ptst["lm"].get_base_model(), ptst["batches"], args.precision)
    r["products_alone"] = {**alone, "mfu": alone["gflops"] / max(peaks)}
    print(f"data: {r['data']} under {args.template}, {r['examples']} examples, {r['tokens']} tokens "
          f"({r['trained_tokens']} trained), "
          f"batch {r['batch_size']}, {r['threads']} threads, OMP_WAIT_POLICY={r['omp_wait_policy']}, "
          f"GOMP_SPINCOUNT={r['gomp_spincount']}")
    print(f"CPU: {r['cpu_capability']}; ptst precision {r['precision']}; {r['precision']} matmul peak: "
          f"{max(peaks):.0f} GFLOP/s (before/after: {', '.join(f'{x:.0f}' for x in peaks)})")
    print(f"useful FLOPs/token: {r['useful_gflop_per_token']:.3f} GFLOP (6N convention: "
          f"{r['six_n_gflop_per_token']:.3f})")
    for name in s["systems"]:
        x = r[name]
        print(f"{name:10s}: {x['seconds']:7.1f}s  {x['tokens_per_s']:7.1f} tok/s  x{x['speedup_vs_naive']:.2f}  "
              f"padding {x['padding']:.1%}  {x['useful_gflops']:6.1f} GFLOP/s useful  MFU {x['mfu']:.1%} "
              f"(6N: {x['mfu_6n']:.1%})")
    print(f"speedup ptst / naive: {r['speedup']:.2f}x; ceiling (all useful FLOPs at the peak, nothing else): "
          f"{r['ceiling_tokens_per_s']:.0f} tok/s = {r['ceiling_speedup_vs_naive']:.2f}x naive")
    pa = r["products_alone"]
    print(f"the step's products alone (frozen linears forward + input gradient, LM head at trained rows; real "
          f"weights, the step's shapes): {pa['gflop']:.0f} GFLOP in {pa['seconds']:.2f}s = {pa['gflops']:.0f} GFLOP/s "
          f"= {pa['mfu']:.1%} of the peak: the MFU a step of nothing but these products would reach")
    if bf16 is not None:
        print(f"bf16 matmul peak here: {bf16:.1f} GFLOP/s, so ptst's {r['ptst']['useful_gflops']:.1f} useful GFLOP/s "
              f"in {r['precision']} is {r['ptst']['mfu_vs_bf16_peak']:.0%} of it (bf16 is not the fast path here)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
