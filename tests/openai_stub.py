"""A scripted OpenAI-compatible server on loopback (real HTTP, real uvicorn) for client and judge tests.

`reply` decides each answer from the request body; `faults` is a queue of status codes to return first
(e.g. [429, 500] makes the first two requests fail), so retry paths are exercised over the wire.
"""



import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StubState:
    reply: Callable[[dict[str, Any]], str]
    faults: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _app(state: StubState) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        with state.lock:
            state.requests.append(body)
            fault = state.faults.pop(0) if state.faults else None
        if fault is not None:
            return JSONResponse({"error": {"message": "scripted fault"}}, status_code=fault,
                                headers={"Retry-After": "0"})
        content = state.reply(body)
        return {"id": "stub", "object": "chat.completion", "model": body.get("model", "stub"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [{"id": "stub", "object": "model"}]}

    return app


@contextmanager
def serve_stub(reply: Callable[[dict[str, Any]], str], faults: list[int] | None = None) -> Iterator[
        tuple[str, StubState]]:
    """Yield (base_url, state) with a real server on 127.0.0.1; stopped on exit."""
    import uvicorn

    state = StubState(reply=reply, faults=list(faults or []))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
