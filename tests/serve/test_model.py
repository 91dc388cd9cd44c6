"""The real tiny Llama behind the real server: dynamic batching with per-request greedy answers, streaming, and
the `ptst serve` verb itself in a subprocess."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from ptst.generate.base import Decoding, PromptItem
from ptst.serve import ServeConfig, create_app
from ptst.templates import fingerprint, get_template, render
from tests.openai_stub import free_port
from tests.serve.conftest import running, wait_for

REPO = Path(__file__).resolve().parents[2]
N = 32


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from ptst.generate.hf import HFBackend
    from ptst.models import load_model, load_tokenizer

    tok = load_tokenizer(str(tiny_model_dir))
    return HFBackend(load_model(str(tiny_model_dir), device="cpu"), tok, batch_size=16, progress=False), tok


@pytest.fixture(scope="module")
def spread(tiny):
    """A tiny Llama whose answer depends on its prompt: the default init (std 0.02) answers every prompt alike,
    which could not catch a batcher that hands answers to the wrong requests."""
    import torch

    from ptst.generate.hf import HFBackend
    from ptst.testing import tiny_llama

    _, tok = tiny
    model = tiny_llama(tok, seed=0, hidden=32)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return HFBackend(model, tok, batch_size=16, progress=False), tok


class HoldFirstCall:
    """Counts backend calls; the first one waits until every other request is queued, so the test does not
    depend on how fast requests arrive."""

    name = "hold-first"

    def __init__(self, inner, total: int) -> None:
        self.inner, self.total = inner, total
        self.sizes: list[int] = []
        self.lock = threading.Lock()
        self.queued = lambda: 0

    def generate(self, items, decoding, on_done=None):
        with self.lock:
            self.sizes.append(len(items))
            first = len(self.sizes) == 1
        if first:
            wait_for(lambda: self.queued() + len(items) == self.total)
        return self.inner.generate(items, decoding)


def _prompt(i: int) -> str:
    return f"question {i}: " + "bread " * (i % 5)


async def _fire(url: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        reqs = [client.post("/v1/chat/completions", json={"model": "tiny", "max_tokens": 8,
                                                          "messages": [{"role": "user", "content": _prompt(i)}]})
                for i in range(n)]
        return list(await asyncio.gather(*reqs))


def test_concurrent_requests_share_forward_passes_and_match_unbatched_answers(spread):
    hf, tok = spread
    backend = HoldFirstCall(hf, N)
    app = create_app(ServeConfig(model="tiny", max_batch=16, max_wait_ms=20), backend, tok)
    backend.queued = lambda: app.state.ptst.batcher.queued
    with running(app) as url:
        responses = asyncio.run(_fire(url, N))
    assert [r.status_code for r in responses] == [200] * N
    assert sum(backend.sizes) == N and max(backend.sizes) <= 16
    assert len(backend.sizes) <= 1 + math.ceil((N - backend.sizes[0]) / 16) < N
    t = get_template("chat:llama")
    assert len({r.json()["choices"][0]["message"]["content"] for r in responses}) > N // 4  # answers differ
    for i, r in enumerate(responses):
        alone = hf.generate([PromptItem(str(i), render(t, tok, _prompt(i)).text)], Decoding(max_new_tokens=8))[0]
        choice = r.json()["choices"][0]
        assert choice["message"]["content"] == alone.text and choice["finish_reason"] == alone.finish_reason
        assert r.json()["usage"]["completion_tokens"] == alone.n_tokens
    assert app.state.ptst.batcher.stats.items == N


def test_tiny_model_plain_and_streamed_answers_agree(tiny):
    hf, tok = tiny
    with running(create_app(ServeConfig(model="tiny"), hf, tok)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I bake bread?"},
                {"role": "assistant", "content": "Knead it."}, {"role": "user", "content": "And then?"}]
        plain = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=12)
        streamed = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == plain.choices[0].message.content
    assert 1 <= plain.usage.completion_tokens <= 12 and plain.choices[0].finish_reason in ("stop", "length")


def test_ptst_serve_verb_runs_a_real_server_and_exits_cleanly(tiny_model_dir, tmp_path, tiny):
    _, tok = tiny
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PTST_API_KEY": "k3y"}
    cmd = [sys.executable, "-m", "ptst", "serve", "--model", str(tiny_model_dir), "--port", str(port),
           "--template", "chat:llama", "--max-new-tokens-limit", "16", "--log-level", "warning"]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        assert httpx.get(url + "/v1/models").status_code == 401
        client = openai.OpenAI(base_url=url + "/v1", api_key="k3y", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=str(tiny_model_dir), messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert raw.headers["x-ptst-template-fingerprint"] == fingerprint(get_template("chat:llama"), tok)
        assert raw.parse().usage.completion_tokens <= 4
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    assert rc == 0, log.read_text()
    assert "ptst serve:" in log.read_text() and "API key required" in log.read_text()
