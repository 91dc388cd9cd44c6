"""Serving load benchmark: concurrent chat requests against `ptst serve` on loopback.

Two setups. The default serves a random Llama saved to a temp dir and compares batched with unbatched serving.
`--model` serves a real model (SmolLM2-135M, the embedded GGUF) as `ptst serve` does (its template, dtype,
adapter merged): one AdvBench prompt per chat request, `--concurrency` requests in flight and the server's
max_batch equal to it. `--compare-batch` also runs ptst's batched generation (HFBackend, same model and dtype,
batch = concurrency) in this process, before and after the serving run, over the same prompts rendered as the
server renders them, and gives the serving tok/s as a fraction of the batched tok/s (the bar: >= 70%).

    flock /tmp/ptst-heavy.lock python benchmarks/bench_serve.py [--requests 200] [--json out.json]
    flock /tmp/ptst-heavy.lock python benchmarks/bench_serve.py --model smollm2-135m --concurrency 48 \
        --max-tokens 32 --compare-batch [--dtype bf16] [--adapter runs/x/cell/adapter]

The server runs in its own process (create_app + uvicorn, as `ptst serve` does), so the load generator never
shares a GIL with it. Requests go out at once (httpx, async), at most --concurrency in flight, bounded only by
the server's queue; answers are greedy; any non-200 answer is an error and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(cfg_kw: dict[str, Any], toy_dir: str | None, threads: int | None, warmed: Any, stop: Any,
           stats_path: str) -> None:
    """Child process: the real app around the HF backend (the toy model's built here, a real one by create_app as
    `ptst serve` loads it); on `stop`, drains and writes the batcher's stats since `warmed` (the warm-up left out)."""
    import threading

    import torch
    import uvicorn

    from ptst.generate.hf import HFBackend
    from ptst.models import load_model, load_tokenizer
    from ptst.serve import ServeConfig, create_app

    if threads:
        torch.set_num_threads(threads)
    cfg = ServeConfig(**cfg_kw)
    if toy_dir is not None:
        tok = load_tokenizer(toy_dir)
        backend = HFBackend(load_model(toy_dir, device="cpu"), tok, batch_size=cfg.max_batch, progress=False)
        app = create_app(cfg, backend, tok)
    else:
        app = create_app(cfg)
    backend = app.state.ptst.batcher.backend
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=cfg.port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    s = app.state.ptst.batcher.stats
    warmed.wait()
    w = (s.batches, s.items, s.busy_s)
    s.largest = 0
    stop.wait()
    server.should_exit = True
    thread.join(60)
    model = getattr(backend, "model", None)
    Path(stats_path).write_text(json.dumps({"batches": s.batches - w[0], "items": s.items - w[1],
                                            "largest": s.largest, "busy_s": s.busy_s - w[2],
                                            "engine": getattr(backend, "engine", None),
                                            "threads": torch.get_num_threads(),
                                            "dtype": str(getattr(model, "dtype", "")).replace("torch.", "")}))


def _prompt(i: int) -> str:
    topics = ("bread", "tax law", "rust ownership", "the moon", "gardening", "chess openings", "jazz", "tides")
    return f"Request {i}: explain {topics[i % len(topics)]} to a beginner in a few sentences."


def _body(model: str, question: str, max_tokens: int) -> dict[str, Any]:
    return {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": question}]}


async def _one(client: Any, body: dict[str, Any], gate: asyncio.Semaphore) -> tuple[float, int, int, int, str]:
    """(latency s, status, completion tokens, prompt tokens, answer) of one request."""
    async with gate:
        t0 = time.perf_counter()
        r = await client.post("/v1/chat/completions", json=body)
        took = time.perf_counter() - t0
    out = r.json() if r.status_code == 200 else {}
    use = out.get("usage", {})
    text = out["choices"][0]["message"]["content"] if out else ""
    return took, r.status_code, use.get("completion_tokens", 0), use.get("prompt_tokens", 0), text


async def _load(url: str, bodies: list[dict[str, Any]], warm: dict[str, Any], concurrency: int,
                warmed: Any) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await _one(client, warm, gate)  # warm-up: first-call allocations are not part of the load
        warmed.set()
        await asyncio.sleep(0.05)  # the server's stats snapshot before the load
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_one(client, b, gate) for b in bodies))
        wall = time.perf_counter() - t0
    n = len(bodies)
    lat = sorted(r[0] for r in results)
    q = statistics.quantiles(lat, n=100, method="inclusive") if n > 1 else lat * 99
    return {"requests": n, "concurrency": concurrency, "errors": sum(r[1] != 200 for r in results), "wall_s": wall,
            "p50_s": statistics.median(lat), "p95_s": q[94], "max_s": lat[-1], "req_per_s": n / wall,
            "tokens_per_s": sum(r[2] for r in results) / wall, "completion_tokens": sum(r[2] for r in results),
            "mean_prompt_tokens": statistics.mean(r[3] for r in results), "texts": [r[4] for r in results]}


def _wait_up(url: str, proc: Any, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise SystemExit("server process died during start-up")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("server did not start in time")


def run_mode(cfg_kw: dict[str, Any], toy_dir: str | None, bodies: list[dict[str, Any]], concurrency: int,
             args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stats_path = os.path.join(tempfile.mkdtemp(prefix="ptst-bench-"), "stats.json")
    cfg_kw = {**cfg_kw, "port": port, "max_wait_ms": args.max_wait_ms, "max_queue": max(256, len(bodies))}
    ctx = mp.get_context("spawn")
    stop, warmed = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(cfg_kw, toy_dir, args.threads, warmed, stop, stats_path))
    proc.start()
    try:
        _wait_up(url, proc)
        res = asyncio.run(_load(url, bodies, {**bodies[0], "max_tokens": 4}, concurrency, warmed))
    finally:
        warmed.set()
        stop.set()
        proc.join(60)
        if proc.is_alive():
            proc.terminate()
    stats = json.loads(Path(stats_path).read_text()) if Path(stats_path).exists() else {}
    res.update(max_batch=cfg_kw["max_batch"], batches=stats.get("batches"), largest_batch=stats.get("largest"),
               generate_s=stats.get("busy_s"), hf_engine=stats.get("engine"), server_threads=stats.get("threads"),
               dtype=stats.get("dtype"))
    if stats.get("batches"):
        res["mean_batch"] = stats["items"] / stats["batches"]
    return res


def build_model(path: Path, hidden: int, layers: int) -> tuple[str, int]:
    """A random Llama with the tiny test tokenizer, saved as a normal HF directory: (path, parameter count)."""
    from ptst.testing import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    model = tiny_llama(tok, seed=0, hidden=hidden, layers=layers)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return str(path), sum(t.numel() for t in model.parameters())


def batched_generation(args: argparse.Namespace, questions: list[str]) -> Any:
    """ptst's batched generation on the server's model and prompts: a function that times one pass over them."""
    import torch

    from ptst.generate.base import Decoding, PromptItem
    from ptst.generate.hf import HFBackend
    from ptst.models import load_model, load_tokenizer
    from ptst.serve.prompt import apply_policy, render_conversation
    from ptst.templates import get_template

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.model)
    template = get_template(args.template)
    # as the server does: its system policy (nothing to merge here) and its renderer, text tokenized by the backend
    texts = [render_conversation(template, tok, apply_policy(template, [{"role": "user", "content": q}], "prepend"))
             for q in questions]
    model = load_model(args.model, adapter=args.adapter, device="cpu", dtype=args.dtype, merge=bool(args.adapter))
    backend = HFBackend(model, tok, batch_size=args.max_batch, progress=False)
    items = [PromptItem(str(i), t) for i, t in enumerate(texts)]
    backend.generate(items[:2], Decoding(max_new_tokens=4))  # warm-up, as the serving run has
    prompt_tokens = statistics.mean(len(r) for r in backend.encode(items))

    def run() -> dict[str, Any]:
        t0 = time.perf_counter()
        comps = backend.generate(items, Decoding(max_new_tokens=args.max_tokens))
        secs = time.perf_counter() - t0
        toks = sum(c.n_tokens or 0 for c in comps)
        return {"seconds": secs, "tokens": toks, "tokens_per_s": toks / secs, "texts": [c.text for c in comps],
                "engine": backend.engine, "threads": torch.get_num_threads(), "mean_prompt_tokens": prompt_tokens}

    return run


def real_model(args: argparse.Namespace) -> dict[str, Any]:
    """One serving run of `args.model` on AdvBench chat requests, with the batched comparison around it."""
    from bench_generate import prompts  # benchmarks/ is on sys.path when this runs as a script

    n = args.requests or args.concurrency
    rows, source = prompts(n)
    questions = [rows[i % len(rows)] for i in range(n)]
    compare = batched_generation(args, questions) if args.compare_batch else None
    before = compare() if compare else None
    cfg_kw = {"model": args.model, "template": args.template, "adapter": args.adapter,
              "dtype": None if args.dtype == "auto" else args.dtype, "max_batch": args.max_batch,
              "max_new_tokens_limit": max(1024, args.max_tokens, args.max_tokens_alt or 0)}
    caps = [args.max_tokens if i % 2 == 0 or not args.max_tokens_alt else args.max_tokens_alt
            for i in range(len(questions))]
    served = run_mode(cfg_kw, None, [_body(args.model, q, c) for q, c in zip(questions, caps, strict=True)],
                      args.concurrency, args)
    out: dict[str, Any] = {"setup": {"model": args.model, "adapter": args.adapter, "dtype": args.dtype,
                                     "template": args.template, "prompts": source, "requests": n,
                                     "concurrency": args.concurrency,
                                     "max_tokens": args.max_tokens if not args.max_tokens_alt
                                     else f"{args.max_tokens}/{args.max_tokens_alt}",
                                     "max_wait_ms": args.max_wait_ms, "cpus": os.cpu_count()},
                           "served": served}
    if compare is None:
        del served["texts"]
    else:
        assert before is not None
        after = compare()
        best = max(before, after, key=lambda r: r["tokens_per_s"])
        same = sum(a == b for a, b in zip(served.pop("texts"), best["texts"], strict=True))
        out["batched"] = {"before": {k: v for k, v in before.items() if k != "texts"},
                          "after": {k: v for k, v in after.items() if k != "texts"},
                          "identical_answers": same, "serving_fraction": served["tokens_per_s"] / best["tokens_per_s"]}
    return out


def print_real(out: dict[str, Any]) -> None:
    st, m = out["setup"], out["served"]
    print(f"{st['model']}{' + ' + st['adapter'] if st['adapter'] else ''} served as `ptst serve` does ({m['dtype']}, "
          f"HF engine {m['hf_engine']}, {m['server_threads']} torch threads), template {st['template']}, "
          f"{st['requests']} chat requests ({st['prompts']}, {m['mean_prompt_tokens']:.0f} prompt tokens mean), "
          f"{st['concurrency']} in flight, max_tokens {st['max_tokens']}, max_batch {m['max_batch']}, max_wait "
          f"{st['max_wait_ms']:g} ms, greedy")
    print("| requests | errors | batches (mean size) | in generate s | wall s | p50 s | p95 s | req/s "
          "| completion tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {m['requests']} | {m['errors']} | {m['batches']} ({m.get('mean_batch', 0):.1f}) | "
          f"{m['generate_s'] or 0:.1f} | {m['wall_s']:.1f} | {m['p50_s']:.2f} | {m['p95_s']:.2f} | "
          f"{m['req_per_s']:.2f} | {m['tokens_per_s']:.1f} |")
    if "batched" in out:
        b = out["batched"]
        best = max(b["before"]["tokens_per_s"], b["after"]["tokens_per_s"])
        frac = b["serving_fraction"]
        print(f"ptst batched generation, same model and rendered prompts ({b['before']['mean_prompt_tokens']:.0f} "
              f"prompt tokens mean), batch {m['max_batch']}, engine {b['before']['engine']}, "
              f"{b['before']['threads']} threads: {b['before']['tokens_per_s']:.1f} tok/s before, "
              f"{b['after']['tokens_per_s']:.1f} after")
        print(f"serving / batched tok/s: {frac:.0%} of {best:.1f} ({'meets' if frac >= 0.7 else 'BELOW'} the 70% bar); "
              f"answers identical to the batched run: {b['identical_answers']}/{m['requests']}")


def toy_model(args: argparse.Namespace) -> dict[str, Any]:
    n = args.requests or 200
    bodies = [_body("bench", _prompt(i), args.max_tokens) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="ptst-bench-model-") as d:
        model_dir, params = build_model(Path(d) / "m", args.hidden, args.layers)
        cfg_kw = {"model": "bench", "template": args.template}
        modes = {"batched": run_mode({**cfg_kw, "max_batch": args.max_batch or 16}, model_dir, bodies,
                                     args.concurrency or n, args),
                 "unbatched": run_mode({**cfg_kw, "max_batch": 1}, model_dir, bodies, args.concurrency or n, args)}
    for m in modes.values():
        del m["texts"]
    ratio = modes["batched"]["req_per_s"] / modes["unbatched"]["req_per_s"]
    return {"setup": {"params": params, "hidden": args.hidden, "layers": args.layers, "template": args.template,
                      "max_tokens": args.max_tokens, "requests": n, "max_wait_ms": args.max_wait_ms,
                      "torch_threads": args.threads, "cpus": os.cpu_count()},
            "modes": modes, "throughput_ratio": ratio}


def print_toy(out: dict[str, Any], args: argparse.Namespace) -> None:
    modes, st = out["modes"], out["setup"]
    print(f"random Llama {st['params']:,} params (hidden {args.hidden}, {args.layers} layers), template "
          f"{args.template} ({modes['batched']['mean_prompt_tokens']:.0f} prompt tokens), {st['requests']} concurrent "
          f"requests x {args.max_tokens} max tokens, {args.threads} torch thread(s) in the server, HF engine "
          f"{modes['batched']['hf_engine'] or 'generate'}")
    print("| mode | max_batch | batches (mean size) | in generate s | wall s | errors | p50 s | p95 s | req/s "
          "| tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in modes.items():
        print(f"| {name} | {m['max_batch']} | {m['batches']} ({m.get('mean_batch', 0):.1f}) | "
              f"{m['generate_s'] or 0:.1f} | {m['wall_s']:.1f} | {m['errors']} | {m['p50_s']:.2f} | {m['p95_s']:.2f} | "
              f"{m['req_per_s']:.1f} | {m['tokens_per_s']:.0f} |")
    print(f"batched / unbatched throughput: {out['throughput_ratio']:.1f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="serve this model (e.g. smollm2-135m) on AdvBench chat requests; "
                   "default: a random toy Llama, batched vs unbatched")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto", help="--model's dtype (as ptst "
                   "serve --dtype)")
    p.add_argument("--adapter", default=None, help="LoRA adapter directory, merged into --model as ptst serve does")
    p.add_argument("--template", default="chat:llama", help="the server's test template (default chat:llama)")
    p.add_argument("--concurrency", type=int, default=None, help="requests in flight at once; with --model also "
                   "the server's max_batch (default 48 with --model, else all requests at once)")
    p.add_argument("--requests", type=int, default=None, help="requests in all (default: 200, or --concurrency "
                   "with --model)")
    p.add_argument("--compare-batch", action="store_true", help="with --model: also time ptst's batched "
                   "generation on the same prompts and report serving tok/s as a fraction of it")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-tokens-alt", type=int, default=None, help="with --model: every second request asks for "
                   "this max_tokens instead (clients that differ in max_tokens)")
    p.add_argument("--hidden", type=int, default=64, help="random Llama width (the test model is 16)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=None, help="the server's max_batch (default: 16, or "
                   "--concurrency with --model)")
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=None, help="torch threads in the server (default: 1 for the toy "
                   "model, as the load generator needs a core too; torch's default with --model)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.model is None:
        if args.compare_batch or args.adapter or args.dtype != "auto" or args.max_tokens_alt:
            p.error("--compare-batch, --adapter, --dtype and --max-tokens-alt need --model")
        args.threads = args.threads or 1
    else:
        if args.compare_batch and args.max_tokens_alt:
            p.error("--compare-batch runs one max_tokens: leave out --max-tokens-alt")
        args.concurrency = args.concurrency or 48
        args.max_batch = args.max_batch or args.concurrency
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ptst.runtime.threads import bounded_spin

    bounded_spin()  # before torch loads, as `ptst serve` runs (its server process inherits it)
    if args.model is None:
        out = toy_model(args)
        print_toy(out, args)
        modes = out["modes"].values()
    else:
        out = real_model(args)
        print_real(out)
        modes = [out["served"]]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 1 if any(m["errors"] for m in modes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
