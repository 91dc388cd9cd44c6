"""Benchmark: ptst's HF generation (batched, left-padded, length-sorted) vs naive per-prompt `model.generate`,
and vs llama.cpp running the same GGUF natively (Q4_1): one prompt at a time (`llamacpp`), batched with one
sequence per prompt (`llamacpp-batch`), and batched with the prompts' common prefix (the template's system
prompt) prefilled once, as ptst's own prefix cache does (`llamacpp-prefix`), and vs OpenVINO GenAI on the same model
exported to OpenVINO IR (`openvino-fp32`, `openvino-bf16`; benchmarks/_openvino.py).

Same model, same prompts (AdvBench or StrongREJECT, rendered with chat:llama), same max_new_tokens, greedy,
same stop tokens. The CPU is shared, so the systems run interleaved on chunks of the prompts and the totals are
compared; the greedy answers of each system are compared with the first system's. ptst's HF systems run the
GGUF dequantised (fp32 or bf16), llama.cpp runs its Q4_1 weights: their answers differ by quantisation, and the
agreement columns say how much. Each system's tok/s is also given as a fraction of the compute roofline: the
CPU's measured matmul peak (bf16 for bf16 systems, fp32 for the others, llama.cpp included) divided by the
GFLOP per generated token (2 x the parameters of every Linear layer, lm_head included). That counts the output
only; the `busy` column also counts the prompt tokens every system must run through the model (each chunk's
shared prefix once, then every prompt's own tokens; their FLOPs without the LM head, which only a prompt's last
token needs): the share of the matmul peak the whole run's work used.

    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 32 --max-new-tokens 64
    # the acceptance run: ptst vs llama.cpp on one batch of 48 AdvBench prompts
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems naive,fp32,bf16,llamacpp,llamacpp-batch --chunks 1
    # OpenVINO GenAI beside ptst (`make bench-deps openvino-ir` first)
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems naive,fp32,bf16,openvino-fp32,openvino-bf16 --chunks 1 --openvino runs/openvino/smollm2-135m
    # the same with llama.cpp's prefix sharing too
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems fp32,bf16,llamacpp-batch,llamacpp-prefix --chunks 1
    # the fp32 and bf16 steps on ptst's fused kernels vs the eager ones
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems fp32,fp32-eager,bf16,bf16-eager --chunks 1
    # ptst's fast engine vs its general decode loop
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --n 16 --batch-size 16 --max-new-tokens 32 \
        --systems fp32,fp32-loop,bf16,bf16-loop --chunks 1
    # continuous batching (waiting prompts refill the batch) vs batch by batch, on a set 4x the batch, with the
    # quickstart's aligned model (short refusals beside answers that run to the limit)
    flock /tmp/ptst-heavy.lock python benchmarks/bench_generate.py --model runs/quickstart/align/model \
        --n 192 --batch-size 48 --max-new-tokens 128 --systems fp32,fp32-batches --chunks 1
    python benchmarks/bench_generate.py --data strongreject --n 48 --batch-size 48 --max-new-tokens 32 \
        --systems fp32-padded,fp32 --chunks 1      # packed vs padded prefill on long-tailed prompts
    # one evaluation cell's own workload (its merged adapter, its prompts), to set beside the tok/s it recorded
    R=runs/quickstart; python benchmarks/bench_generate.py --model $R/align/model \
        --adapter $R/chat-llama.s1/adapter --prompts $R/chat-llama.s1/eval/chat-llama/generations/advbench.jsonl \
        --n 48 --batch-size 64 --max-new-tokens 32 --systems fp32 --chunks 1

The llama.cpp systems need llama-cpp-python (`make bench-deps`; not part of `make install`). They tokenize the
rendered prompts with llama.cpp's own tokenizer (a warning says when its ids differ from HF's), decode greedily
(argmax) with the same stop ids, and run without ggml's AMX kernels, which crash in the benchmark VM. The OpenVINO
systems need openvino-genai (`make bench-deps`) and the exported model (`make openvino-ir`: optimum-intel exports
it in a venv of its own, as it pins an older transformers); they take the HF tokenizer's ids.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

from bench_train import matmul_peak  # benchmarks/ is on sys.path when this runs as a script

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


def cell_prompts(path: str, n: int) -> tuple[list[str], str]:
    """The first n prompts of a ptst generations file, in its order (`ptst.records.read_generations`: a bad line is
    one error naming file:line)."""
    from ptst.records import read_generations

    rows = [g.prompt for g in read_generations(path)]
    return rows[:n], f"{path} (first {min(n, len(rows))})"


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


# name -> (dtype, engine, packed prefill); "naive" is per-prompt model.generate, "llamacpp*" llama.cpp on the GGUF
# (Q4_1), the others HFBackend
SYSTEMS: dict[str, tuple[str, str | None, bool]] = {
    "naive": ("fp32", None, False), "fp32": ("fp32", "auto", True), "bf16": ("bf16", "auto", True),
    "fp32-generate": ("fp32", "generate", False), "fp32-padded": ("fp32", "auto", False),
    "fp32-loop": ("fp32", "loop", True), "bf16-loop": ("bf16", "loop", True),
    "fp32-batches": ("fp32", "fast", True), "bf16-batches": ("bf16", "fast", True),
    "bf16-eager": ("bf16", "fast", True),  # the fast engine's eager step, not the fused kernels
    "fp32-eager": ("fp32", "fast", True),
    "llamacpp": ("q4_1", None, False), "llamacpp-batch": ("q4_1", None, False),
    "llamacpp-prefix": ("q4_1", None, False),
    "openvino-fp32": ("fp32", None, False), "openvino-bf16": ("bf16", None, False),
}
LABELS = {"naive": "naive fp32 bs1", "fp32": "ptst fp32", "bf16": "ptst bf16", "fp32-generate": "ptst fp32 gen()",
          "fp32-padded": "ptst fp32, padded prefill", "fp32-loop": "ptst fp32, general loop",
          "bf16-loop": "ptst bf16, general loop", "fp32-batches": "ptst fp32, batch by batch",
          "bf16-batches": "ptst bf16, batch by batch", "bf16-eager": "ptst bf16, eager step",
          "fp32-eager": "ptst fp32, eager step",
          "llamacpp": "llama.cpp Q4_1 bs1",
          "llamacpp-batch": "llama.cpp Q4_1 batched", "llamacpp-prefix": "llama.cpp Q4_1 shared prefix",
          "openvino-fp32": "OpenVINO fp32", "openvino-bf16": "OpenVINO bf16"}
LLAMACPP = ("llamacpp", "llamacpp-batch", "llamacpp-prefix")
OPENVINO = ("openvino-fp32", "openvino-bf16")  # openvino_genai on an IR exported from the same model (--openvino)


def peak_precision(system: str) -> str:
    """The matmul peak a system is measured against: bf16 for bf16 weights, fp32 for the rest (llama.cpp's Q4_1
    kernels have no peak of their own to measure, and dequantise into fp32 arithmetic)."""
    return "bf16" if SYSTEMS[system][0] == "bf16" else "fp32"


def cpu_info() -> dict[str, Any]:
    import torch

    from ptst.runtime import cpu

    return {"model": cpu.name(), "avx512_bf16": cpu.has("avx512_bf16"), "amx_bf16": cpu.has("amx_bf16"),
            "torch_capability": torch.backends.cpu.get_cpu_capability()}


def linear_params(model: Any) -> int:
    """Parameters of every Linear layer, lm_head included even when tied: what one token's matmuls touch."""
    import torch

    return sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", help="a LoRA adapter on --model, merged as an evaluation cell merges it: with a "
                    "run's aligned model (RUN/align/model) and a cell's adapter, the benchmark runs that cell's own "
                    "workload (its answers, their lengths), to compare with the tok/s the cell recorded")
    ap.add_argument("--template", default="chat:llama")
    ap.add_argument("--data", choices=list(DATA), default="advbench", help="prompt source (default advbench)")
    ap.add_argument("--prompts", metavar="GENERATIONS_JSONL",
                    help="the prompts of an evaluation cell's generations file (RUN/CELL/eval/TEST/generations/"
                    "SET.jsonl) instead of --data: with --adapter, exactly the workload that cell ran")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--systems", default="naive,fp32,bf16",
                    help=f"comma list of {', '.join(SYSTEMS)}; the first is the baseline for speed-up and agreement")
    ap.add_argument("--chunks", type=int, default=2, help="interleave the systems over this many prompt chunks")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--peak-seconds", type=float, default=4.0,
                    help="seconds of matmuls per precision for the roofline peak (half before, half after)")
    ap.add_argument("--llamacpp-kv", choices=("split", "unified"), default="split",
                    help="llamacpp-batch's KV cache: a slice per sequence (default, llama.cpp's) or one buffer all "
                    "sequences share (llamacpp-prefix always shares one, with the common prefix prefilled once)")
    ap.add_argument("--openvino", metavar="IR_DIR", help="the model exported to OpenVINO IR, for the openvino-* "
                    "systems (`make openvino-ir` exports SmolLM2-135M to runs/openvino/smollm2-135m)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    args.systems = args.systems.split(",")
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}; choose from {list(SYSTEMS)}")
    if args.peak_seconds <= 0:
        ap.error("--peak-seconds must be > 0")
    if args.adapter and set(args.systems) & {*LLAMACPP, *OPENVINO}:
        ap.error("--adapter: the llama.cpp and OpenVINO systems run the model alone; drop them or the adapter")
    return args


def setup_llamacpp(args: argparse.Namespace, tok: Any, texts: list[str], step: int, threads: int) -> dict[str, Any]:
    """Load the GGUF into llama.cpp, tokenize every prompt with its tokenizer (checked against HF's), and make
    the batched context big enough for the largest chunk."""
    import _llamacpp

    hf = tok(texts, add_special_tokens=False)["input_ids"]
    path = _llamacpp.gguf_path(args.model)
    lc = _llamacpp.LlamaCpp(path, threads, max(map(len, hf)) + args.max_new_tokens)
    ids = {t: lc.tokenize(t) for t in texts}
    bad = [i for i, t in enumerate(texts) if ids[t] != list(hf[i])]
    if bad:
        i = bad[0]
        print(f"WARNING: llama.cpp's tokens differ from HF's on {len(bad)}/{len(texts)} prompts (first: prompt {i}, "
              f"{len(ids[texts[i]])} vs {len(hf[i])} tokens); llama.cpp runs on its own tokens", flush=True)
    longest = max(map(len, ids.values())) + args.max_new_tokens
    if lc.llm.n_ctx() < longest:  # its tokens are longer than HF's: a context that fits them
        lc.close()
        lc = _llamacpp.LlamaCpp(path, threads, longest)
    lens = [[len(ids[t]) for t in texts[c: c + step]] for c in range(0, len(texts), step)]
    batched = {}
    for name, kv in (("llamacpp-batch", args.llamacpp_kv), ("llamacpp-prefix", "shared")):
        if name in args.systems:
            batched[name] = _llamacpp.Batched(lc, *_llamacpp.Batched.sizes(lens, args.max_new_tokens, kv), kv=kv)
    return {"lc": lc, "batched": batched, "ids": ids, "token_mismatches": len(bad), "threads": threads}


def main() -> None:
    args = parse_args()
    from ptst.runtime.threads import bounded_spin

    bounded_spin()  # before torch loads: OpenMP waits as inside `ptst` (a run's numbers match the benchmark's)
    if any(s in LLAMACPP for s in args.systems):
        import _llamacpp

        _llamacpp.require()  # one line on how to install it, before any model loads
    import torch

    from ptst.generate.base import Decoding, PromptItem
    from ptst.generate.hf import HFBackend
    from ptst.generate.stops import stop_token_ids
    from ptst.models import load_model, load_tokenizer
    from ptst.templates import get_template, render

    tok = load_tokenizer(args.model)
    # stops and FLOPs need an HF model
    dtypes = {SYSTEMS[s][0] for s in args.systems if s not in OPENVINO} - {"q4_1"} or {"fp32"}
    models = {dt: load_model(args.model, adapter=args.adapter, device="cpu", dtype=dt, merge=bool(args.adapter))
              for dt in dtypes}
    qs, source = cell_prompts(args.prompts, args.n) if args.prompts else prompts(args.n, args.data)
    texts = [render(get_template(args.template), tok, q).text for q in qs]
    stops = stop_token_ids(tok, next(iter(models.values())))
    dec = Decoding(max_new_tokens=args.max_new_tokens)
    backends = {s: HFBackend(models[SYSTEMS[s][0]], tok, args.batch_size, progress=False, engine=SYSTEMS[s][1],
                             packed_prefill=SYSTEMS[s][2], continuous=not s.endswith("-batches"),
                             fused_kernels=not s.endswith("-eager"))
                for s in args.systems if s not in ("naive", *LLAMACPP, *OPENVINO)}
    step = -(-len(texts) // args.chunks)
    prompt_tokens = useful_prompt_tokens(tok(texts, add_special_tokens=False)["input_ids"], step)
    llama = (setup_llamacpp(args, tok, texts, step, torch.get_num_threads())
             if any(s in LLAMACPP for s in args.systems) else None)
    ov = setup_openvino(args, next(iter(models.values())), torch.get_num_threads())
    ov_rows = dict(zip(texts, tok(texts, add_special_tokens=False)["input_ids"], strict=True))

    def run_system(name: str, chunk: list[str], max_new: int) -> tuple[list[str], int]:
        if name == "naive":
            return naive(models["fp32"], tok, chunk, max_new, stops)
        if name in LLAMACPP:
            assert llama is not None
            rows = [llama["ids"][t] for t in chunk]
            run = llama["lc"].single if name == "llamacpp" else llama["batched"][name].generate
            outs = run(rows, max_new, set(stops))  # each row ends at its stop token, which counts as generated
            return [tok.decode(o[:-1] if o[-1] in stops else o, skip_special_tokens=True) for o in outs], \
                sum(map(len, outs))
        if name in OPENVINO:
            outs = ov[name].generate([ov_rows[t] for t in chunk], max_new, set(stops))
            return [tok.decode(o[:-1] if o[-1] in stops else o, skip_special_tokens=True) for o in outs], \
                sum(map(len, outs))
        comps = backends[name].generate([PromptItem(str(i), t) for i, t in enumerate(chunk)], Decoding(max_new))
        return [c.text for c in comps], sum(c.n_tokens or 0 for c in comps)

    if args.warmup:  # one short untimed call each, so first-call allocations do not land on one side
        for name in args.systems:
            if name in ov:
                ov[name].prepare(min(2, step), 64, set(stops))
            run_system(name, texts[:min(2, step)], 4)  # no more prompts than a chunk: llama.cpp's context fits
    precisions = sorted({peak_precision(s) for s in args.systems})
    peaks = {p: matmul_peak(p, args.peak_seconds / 2) for p in precisions}  # the CPU is shared: best of 2
    secs = dict.fromkeys(args.systems, 0.0)
    toks = dict.fromkeys(args.systems, 0)
    answers: dict[str, list[str]] = {s: [] for s in args.systems}
    for c in range(0, len(texts), step):
        for name in args.systems:
            if name in ov:  # a fresh pipeline, warmed up, before the clock starts (benchmarks/_openvino.py)
                chunk = [ov_rows[t] for t in texts[c: c + step]]
                ov[name].prepare(len(chunk), max(map(len, chunk)), set(stops))
            t0 = time.perf_counter()
            outs, n = run_system(name, texts[c: c + step], dec.max_new_tokens)
            secs[name] += time.perf_counter() - t0
            toks[name] += n
            answers[name] += outs
        print(f"chunk {c // step + 1}/{-(-len(texts) // step)} done", flush=True)
    peaks = {p: max(v, matmul_peak(p, args.peak_seconds / 2)) for p, v in peaks.items()}
    model = next(iter(models.values()))
    hw = {**cpu_info(), "peak_gflops": {p: round(v, 1) for p, v in peaks.items()},
          "linear_params": linear_params(model), "head_params": model.get_output_embeddings().weight.numel()}
    if llama is not None:
        hw["llamacpp"] = {"version": llama["lc"].version, "threads": llama["threads"], "kv": args.llamacpp_kv,
                          "token_mismatches": llama["token_mismatches"]}
        for b in llama["batched"].values():
            b.close()
        llama["lc"].close()
    if ov:
        hw["openvino"] = {"version": next(iter(ov.values())).version, "ir": args.openvino,
                          "properties": {n: o.props for n, o in ov.items()}}
    hw["prompt_tokens"] = prompt_tokens
    report(args, source, len(texts), secs, toks, answers, torch.get_num_threads(), hw)


def setup_openvino(args: argparse.Namespace, model: Any, threads: int) -> dict[str, Any]:
    """The openvino-* systems the run asked for, on the IR in --openvino (checked against the HF model)."""
    names = [s for s in args.systems if s in OPENVINO]
    if not names:
        return {}
    import _openvino

    ir = _openvino.check_ir(args.openvino, args.model, model.config.to_dict())
    return {s: _openvino.OpenVINO(ir, SYSTEMS[s][0], threads, args.batch_size) for s in names}


def useful_prompt_tokens(rows: list[list[int]], step: int) -> int:
    """Prompt tokens a system must run through the model for these rows in chunks of `step`: each chunk's
    shared prefix once, then every row's own tokens after it."""
    from ptst.runtime.rows import shared_prefix

    total = 0
    for c in range(0, len(rows), step):
        chunk = rows[c: c + step]
        p = shared_prefix(chunk) if len(chunk) > 1 else 0
        total += p + sum(len(r) - p for r in chunk)
    return total


def report(args: argparse.Namespace, source: str, n: int, secs: dict[str, float], toks: dict[str, int],
           answers: dict[str, list[str]], threads: int, hw: dict[str, Any]) -> None:
    first = args.systems[0]
    base = toks[first] / secs[first]
    gflop = 2 * hw["linear_params"] / 1e9
    res: dict[str, Any] = {"model": args.model, "adapter": args.adapter, "prompts": source, "n": n,
                           "template": args.template,
                           "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                           "torch_threads": threads, "baseline": LABELS[first], "cpu": hw,
                           "gflop_per_token": round(gflop, 4), "systems": {}}
    print(f"\n{n} prompts ({source}), {args.template}, greedy, max_new_tokens {args.max_new_tokens}, "
          f"batch {args.batch_size}, {threads} threads; agreement vs {LABELS[first]}")
    print(f"CPU: {hw['model']}, avx512_bf16 {'yes' if hw['avx512_bf16'] else 'no'}, amx_bf16 "
          f"{'yes' if hw['amx_bf16'] else 'no'}, torch {hw['torch_capability']}; matmul peak "
          + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in hw["peak_gflops"].items())
          + f"; {gflop:.3f} GFLOP per token (2 x {hw['linear_params'] / 1e6:.1f}M Linear params); "
          f"{hw['prompt_tokens']} prompt tokens to run (shared prefix once)")
    if "llamacpp" in hw:
        lc = hw["llamacpp"]
        print(f"llama.cpp: llama-cpp-python {lc['version']}, {lc['threads']} threads, AMX off, batched KV {lc['kv']}, "
              f"tokens differ from HF's on {lc['token_mismatches']}/{n} prompts; its Q4_1 roofline is the fp32 "
              "peak's")
    if "openvino" in hw:
        print(f"OpenVINO: openvino-genai {hw['openvino']['version']}, IR {hw['openvino']['ir']}, continuous batching "
              "with prefix caching (the first prompt alone, then the batch), a fresh pipeline per chunk")
    print(f"{'system':<28} {'tokens':>7} {'seconds':>8} {'tok/s':>7} {'speed-up':>8} {'exact':>6} {'prefix':>7} "
          f"{'roofline':>9} {'busy':>6}")
    for name in args.systems:
        rate = toks[name] / secs[name]
        agr = agreement(answers[first], answers[name])
        prec = peak_precision(name)
        roof = hw["peak_gflops"][prec] / gflop  # tok/s if every matmul ran at the measured peak
        work = gflop * toks[name] + 2 * (hw["linear_params"] - hw["head_params"]) / 1e9 * hw["prompt_tokens"]
        busy = work / secs[name] / hw["peak_gflops"][prec]  # the share of the peak the prompts + answers used
        res["systems"][LABELS[name]] = {
            "system": name, "tokens": toks[name], "seconds": round(secs[name], 2), "tok_s": round(rate, 1),
            "speedup": round(rate / base, 2), **{k: round(v, 3) for k, v in agr.items()},
            "peak_precision": prec, "roofline_tok_s": round(roof, 1), "roofline_frac": round(rate / roof, 4),
            "busy_frac": round(busy, 4)}
        print(f"{LABELS[name]:<28} {toks[name]:>7} {secs[name]:>8.1f} {rate:>7.1f} {rate / base:>7.2f}x "
              f"{agr['exact']:>6.0%} {agr['prefix']:>7.1%} {rate / roof:>9.1%} {busy:>6.1%} {prec}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
