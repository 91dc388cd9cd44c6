"""Serving load benchmark: N concurrent chat requests against `ptst serve` on loopback, batched vs unbatched.

    flock /tmp/ptst-heavy.lock python benchmarks/bench_serve.py [--requests 200] [--json out.json]

The server runs in its own process (create_app + uvicorn, as `ptst serve` does) with a random Llama saved to a
temp dir, so the load generator never shares a GIL with it. All requests are fired at once (httpx, async),
bounded only by the server's queue; any non-200 answer is an error and makes the exit status 1.
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


def _serve(model_dir: str, port: int, max_batch: int, max_wait_ms: float, threads: int, stop: Any,
           stats_path: str) -> None:
    """Child process: the real app around the HF backend; on `stop`, drains and writes the batcher's stats."""
    import threading

    import torch
    import uvicorn

    from ptst.generate.hf import HFBackend
    from ptst.models import load_model, load_tokenizer
    from ptst.serve import ServeConfig, create_app

    torch.set_num_threads(threads)
    tok = load_tokenizer(model_dir)
    backend = HFBackend(load_model(model_dir, device="cpu"), tok, batch_size=max_batch, progress=False)
    cfg = ServeConfig(model="bench", port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=256)
    app = create_app(cfg, backend, tok)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stop.wait()
    server.should_exit = True
    thread.join(60)
    s = app.state.ptst.batcher.stats
    Path(stats_path).write_text(json.dumps({"batches": s.batches, "items": s.items, "largest": s.largest,
                                                "busy_s": s.busy_s, "engine": getattr(backend, "engine", None)}))


def _prompt(i: int) -> str:
    topics = ("bread", "tax law", "rust ownership", "the moon", "gardening", "chess openings", "jazz", "tides")
    return f"Request {i}: explain {topics[i % len(topics)]} to a beginner in a few sentences."


async def _one(client: Any, i: int, max_tokens: int) -> tuple[float, int, int, int]:
    """(latency s, status, completion tokens, prompt tokens) of one request."""
    body = {"model": "bench", "max_tokens": max_tokens, "messages": [{"role": "user", "content": _prompt(i)}]}
    t0 = time.perf_counter()
    r = await client.post("/v1/chat/completions", json=body)
    took = time.perf_counter() - t0
    use = r.json()["usage"] if r.status_code == 200 else {}
    return took, r.status_code, use.get("completion_tokens", 0), use.get("prompt_tokens", 0)


async def _load(url: str, n: int, max_tokens: int) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await _one(client, -1, max_tokens)  # warm-up: first-call allocations are not part of the load
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_one(client, i, max_tokens) for i in range(n)))
        wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in results)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"requests": n, "errors": sum(r[1] != 200 for r in results), "wall_s": wall,
            "p50_s": statistics.median(lat), "p95_s": q[94], "max_s": lat[-1], "req_per_s": n / wall,
            "tokens_per_s": sum(r[2] for r in results) / wall, "completion_tokens": sum(r[2] for r in results),
            "mean_prompt_tokens": statistics.mean(r[3] for r in results)}


def _wait_up(url: str, proc: Any, timeout: float = 120) -> None:
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


def run_mode(model_dir: str, max_batch: int, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stats_path = os.path.join(tempfile.mkdtemp(prefix="ptst-bench-"), "stats.json")
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(model_dir, port, max_batch, args.max_wait_ms, args.threads, stop,
                                            stats_path))
    proc.start()
    try:
        _wait_up(url, proc)
        res = asyncio.run(_load(url, args.requests, args.max_tokens))
    finally:
        stop.set()
        proc.join(60)
        if proc.is_alive():
            proc.terminate()
    stats = json.loads(Path(stats_path).read_text()) if Path(stats_path).exists() else {}
    res.update(max_batch=max_batch, batches=stats.get("batches"), largest_batch=stats.get("largest"),
               generate_s=stats.get("busy_s"), hf_engine=stats.get("engine"))
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64, help="random Llama width (the test model is 16)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server (the load generator "
                   "needs a core too)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ptst-bench-model-") as d:
        model_dir, params = build_model(Path(d) / "m", args.hidden, args.layers)
        modes = {"batched": run_mode(model_dir, args.max_batch, args), "unbatched": run_mode(model_dir, 1, args)}
    ratio = modes["batched"]["req_per_s"] / modes["unbatched"]["req_per_s"]
    out = {"setup": {"params": params, "hidden": args.hidden, "layers": args.layers, "template": "chat:llama",
                     "max_tokens": args.max_tokens, "requests": args.requests, "max_wait_ms": args.max_wait_ms,
                     "torch_threads": args.threads, "cpus": os.cpu_count()},
           "modes": modes, "throughput_ratio": ratio}
    print(f"random Llama {params:,} params (hidden {args.hidden}, {args.layers} layers), template chat:llama "
          f"({modes['batched']['mean_prompt_tokens']:.0f} prompt tokens), {args.requests} concurrent requests x "
          f"{args.max_tokens} max tokens, {args.threads} torch thread(s) in the server, HF engine "
          f"{modes['batched']['hf_engine'] or 'generate'}")
    print("| mode | max_batch | batches (mean size) | in generate s | wall s | errors | p50 s | p95 s | req/s "
          "| tokens/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in modes.items():
        print(f"| {name} | {m['max_batch']} | {m['batches']} ({m.get('mean_batch', 0):.1f}) | "
              f"{m['generate_s'] or 0:.1f} | {m['wall_s']:.1f} | {m['errors']} | {m['p50_s']:.2f} | {m['p95_s']:.2f} | "
              f"{m['req_per_s']:.1f} | {m['tokens_per_s']:.0f} |")
    print(f"batched / unbatched throughput: {ratio:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 1 if any(m["errors"] for m in modes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
