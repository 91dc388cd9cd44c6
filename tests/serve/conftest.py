"""Real servers on loopback for the serve tests: uvicorn in a thread, plus stub backends that record what the
model was given (so template enforcement is asserted over HTTP, with no debug field in the API)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from ptst.generate.base import Completion, Decoding, PromptItem
from tests.openai_stub import free_port


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:<free port>; yields the base URL (without /v1); stops and drains on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class EchoBackend:
    """Answers each prompt with the exact rendered text it was given; records every call."""

    name = "echo"

    def __init__(self) -> None:
        self.calls: list[tuple[list[PromptItem], Decoding]] = []
        self.lock = threading.Lock()

    def generate(self, items: Sequence[PromptItem], decoding: Decoding, on_done: Any = None) -> list[Completion]:
        with self.lock:
            self.calls.append((list(items), decoding))
        return [Completion(it.rendered, "stop", 1) for it in items]


class GateBackend(EchoBackend):
    """Like EchoBackend, but each call waits until `release` is set; `entered` is set once a call has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def generate(self, items: Sequence[PromptItem], decoding: Decoding, on_done: Any = None) -> list[Completion]:
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("gate never released")
        return super().generate(items, decoding)


class FailingBackend:
    name = "failing"

    def generate(self, items: Sequence[PromptItem], decoding: Decoding, on_done: Any = None) -> list[Completion]:
        raise RuntimeError("CUDA out of memory (scripted)")


def wait_for(cond: Any, timeout: float = 20.0) -> None:
    """Poll until cond() holds: the tests synchronise on server state, never on elapsed time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture
def echo_server(llama2_tok: Any) -> Iterator[tuple[str, EchoBackend, Any]]:
    """(base URL, backend, app) for chat:llama, policy prepend, no API key, on the llama2 tiny tokenizer."""
    from ptst.serve import ServeConfig, create_app

    backend = EchoBackend()
    app = create_app(ServeConfig(model="tiny", max_context=2048, max_new_tokens_limit=64), backend, llama2_tok)
    with running(app) as url:
        yield url, backend, app
