"""HTTP handlers: /v1/chat/completions (plain and SSE), /v1/models, /health. No `from __future__ import
annotations` here: FastAPI reads the real annotation types."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ptst.generate.base import Completion, Decoding, PromptItem
from ptst.serve.batcher import Closing, Job, QueueFull
from ptst.serve.prompt import apply_policy, encode_prompt
from ptst.serve.protocol import (
    ApiError,
    ChatRequest,
    chunk_body,
    completion_body,
    invalid,
    new_id,
    parse_chat_request,
    usage,
)
from ptst.serve.state import ServerState

MAX_BODY_BYTES = 4 << 20
DISCONNECT_POLL_S = 0.25
router = APIRouter()


def _state(request: Request) -> ServerState:
    return request.app.state.ptst  # type: ignore[no-any-return]


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise invalid(f"the request body is not valid JSON ({e})") from None


def _max_tokens(st: ServerState, req: ChatRequest, n_prompt: int) -> int:
    """The client's max_tokens if it fits the context; otherwise the server default, clamped to what fits."""
    room = st.max_context - n_prompt if st.max_context else None
    if room is not None and room < 1:
        raise invalid(f"the rendered prompt is {n_prompt} tokens, over this model's {st.max_context}-token context",
                      "messages", "context_length_exceeded")
    if req.max_tokens is None:
        default = min(st.cfg.default_max_tokens, st.cfg.max_new_tokens_limit)
        return default if room is None else min(default, room)
    if room is not None and req.max_tokens > room:
        raise invalid(f"the rendered prompt ({n_prompt} tokens) plus max_tokens ({req.max_tokens}) exceeds this "
                      f"model's {st.max_context}-token context", "max_tokens", "context_length_exceeded")
    return req.max_tokens


def _admit(st: ServerState, item: PromptItem, decoding: Decoding) -> Job:
    try:
        return st.batcher.submit(item, decoding)
    except QueueFull as e:
        raise ApiError(429, f"the server's queue is full ({st.cfg.max_queue} requests waiting); retry later",
                       code="queue_full", headers={"Retry-After": str(e.retry_after)}) from None
    except Closing:
        raise ApiError(503, "the server is shutting down", code="shutting_down",
                       headers={"Retry-After": "5"}) from None


def _count(st: ServerState, text: str) -> int:
    return len(st.tokenizer(text, add_special_tokens=False)["input_ids"])


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Any:
    st = _state(request)
    req = parse_chat_request(await _json_body(request), st.cfg.max_new_tokens_limit)
    if req.model is not None and req.model != st.name:
        raise ApiError(404, f"model {req.model!r} does not exist; this server serves {st.name!r}", "model",
                       "model_not_found")
    st.controls.check_messages(req.messages)
    conv = apply_policy(st.template, req.messages, st.cfg.system_policy)
    text, ids = encode_prompt(st.template, st.tokenizer, conv, st.controls)
    n_prompt = len(ids)
    decoding = Decoding(max_new_tokens=_max_tokens(st, req, n_prompt), temperature=req.temperature,
                        top_p=req.top_p, seed=req.seed, stop=req.stop)
    rid = new_id()
    job = _admit(st, PromptItem(rid, text, tuple(conv.messages())), decoding)
    if req.stream:
        return StreamingResponse(_sse(st, rid, job, req.include_usage, n_prompt), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    out = await _result(job, request)
    body = completion_body(rid, st.name, st.system_fingerprint, out.text, out.finish_reason or "stop",
                           usage(n_prompt, _n_completion(st, out)))
    return JSONResponse(body)


async def _result(job: Job, request: Request | None = None) -> Completion:
    """The job's completion. While it waits, a client that hung up (timed out, retried elsewhere) has its job
    withdrawn so it never takes a batch slot; a stream's generator is cancelled by Starlette instead."""
    fut = asyncio.wrap_future(job.future)
    try:
        while request is not None and not fut.done():
            await asyncio.wait({fut}, timeout=DISCONNECT_POLL_S)
            if not fut.done() and await request.is_disconnected():
                fut.cancel()  # cancels the job too, unless its batch already started
                raise ApiError(499, "client closed the request")
        return await fut
    except asyncio.CancelledError:
        raise
    except ApiError:
        raise
    except Exception as e:  # noqa: BLE001 - reported to the client as a 500, logged by the batcher
        raise ApiError(500, f"generation failed: {type(e).__name__}: {e}", code="generation_failed") from None


def _n_completion(st: ServerState, out: Completion) -> int:
    return out.n_tokens if out.n_tokens is not None else _count(st, out.text)


def _event(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


async def _sse(st: ServerState, rid: str, job: Job, include_usage: bool, n_prompt: int) -> AsyncIterator[str]:
    """OpenAI chunk stream. The role chunk goes out on admission; the text follows when its batch finishes,
    in word-sized pieces (the HF backend has no per-token callback yet: see docs/serving.md)."""
    fp = st.system_fingerprint
    yield _event(chunk_body(rid, st.name, fp, {"role": "assistant", "content": ""}))
    try:
        out = await _result(job)
    except ApiError as e:
        yield _event(e.body())
        yield "data: [DONE]\n\n"
        return
    for piece in re.findall(r"\S+\s*|\s+", out.text):
        yield _event(chunk_body(rid, st.name, fp, {"content": piece}))
    yield _event(chunk_body(rid, st.name, fp, {}, out.finish_reason or "stop"))
    if include_usage:
        yield _event(chunk_body(rid, st.name, fp, None, use=usage(n_prompt, _n_completion(st, out))))
    yield "data: [DONE]\n\n"


@router.get("/v1/models")
async def list_models(request: Request) -> Any:
    return {"object": "list", "data": [_state(request).model_card()]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Any:
    st = _state(request)
    if model_id != st.name:
        raise ApiError(404, f"model {model_id!r} does not exist; this server serves {st.name!r}", "model",
                       "model_not_found")
    return st.model_card()


@router.get("/health")
async def health(request: Request) -> Any:
    st = _state(request)
    status = "draining" if st.batcher.closing else "ok"
    return JSONResponse({"status": status, "queued": st.batcher.queued}, status_code=200 if status == "ok" else 503)
