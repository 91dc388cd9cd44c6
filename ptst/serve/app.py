"""The FastAPI application: template headers and API-key check on every response, OpenAI-style errors, lifespan."""

import asyncio
import copy
import hmac
import logging
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ptst.generate import runner as generate_runner  # its check_adapter_base is looked up per call
from ptst.generate.hf import HFBackend
from ptst.models import load_model, load_tokenizer
from ptst.runtime.rows import shared_prefix
from ptst.serve.batcher import Batcher
from ptst.serve.config import ServeConfig
from ptst.serve.controls import ControlTokens
from ptst.serve.protocol import ApiError
from ptst.serve.state import ServerState
from ptst.templates import fingerprint, get_template, placement, render

log = logging.getLogger("ptst.serve")
OPEN_PATHS = frozenset({"/health"})  # liveness probes carry no key and learn nothing but up/down


class PtstMiddleware:
    """Pure ASGI (streaming-safe): checks the bearer key, stamps the template headers on every response, and
    turns an unexpected exception into an OpenAI-style 500 that still carries the headers."""

    def __init__(self, app: ASGIApp, api_key: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.app, self.headers = app, headers
        self.key = api_key.encode() if api_key else None

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key or b"")
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        if self.key and scope["path"] not in OPEN_PATHS and not self._authorized(scope):
            err = ApiError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            await _error_response(err)(scope, receive, stamped)
            return
        try:
            await self.app(scope, receive, stamped)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if started:
                raise
            await _error_response(ApiError(500, "internal server error", code="internal_error"))(
                scope, receive, stamped)


def _error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def _api_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, ApiError)
    return _error_response(e)


async def _http_error(request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
    return _error_response(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code,
                                    headers=dict(e.headers or {})))


def _load_backend(cfg: ServeConfig, tok: Any) -> Any:
    # Merged LoRA: the served model is the fine-tuned one, without the adapter's per-layer overhead.
    model = load_model(cfg.model, adapter=cfg.adapter, device=cfg.device, dtype=cfg.dtype, merge=bool(cfg.adapter))
    return HFBackend(model, tok, batch_size=cfg.max_batch, progress=False)


def template_prefix(template: Any, tok: Any) -> list[int]:
    """The tokens every prompt the template renders begins with (its system prompt and what precedes the user's
    words): the common prefix of two renderings that differ only in the user's text."""
    rows = [tok(render(template, tok, q).text, add_special_tokens=False)["input_ids"] for q in ("a", "b")]
    return list(rows[0][:shared_prefix(rows)])


def _context_len(cfg: ServeConfig, backend: Any) -> int | None:
    if cfg.max_context is not None:
        return cfg.max_context
    n = getattr(getattr(getattr(backend, "model", None), "config", None), "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def create_app(cfg: ServeConfig, backend: Any = None, tokenizer: Any = None) -> FastAPI:
    """Build the app around `backend` (any `ptst.generate.base.Backend`); loads the HF model when None."""
    from ptst.serve.routes import router  # heavy: fastapi

    template = get_template(cfg.template)
    if cfg.adapter:  # as the generation stage does: a mismatched adapter is one line, before weights or a port
        generate_runner.check_adapter_base(cfg.adapter, cfg.model)
    if tokenizer is None:
        tokenizer = load_tokenizer(cfg.model)
    fp = fingerprint(template, tokenizer)  # a template this tokenizer cannot render fails before weights load
    # One thread loads the model and runs every batch (see Batcher): torch is never run from the event loop's.
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ptst-model")
    if backend is None:
        backend = model_thread.submit(_load_backend, cfg, tokenizer).result()
    if hasattr(backend, "prefix_hint"):
        backend.prefix_hint = template_prefix(template, tokenizer)
    tok = copy.deepcopy(tokenizer)
    batcher = Batcher(backend, cfg.max_batch, cfg.max_wait_ms / 1000, cfg.max_queue, model_thread=model_thread)
    st = ServerState(cfg, template, fp, tok, batcher, _context_len(cfg, backend), ControlTokens.of(tok, template))
    if not template.safety_prompt:
        log.warning("template %s carries no safety prompt: PTST's test-time protection is off", template.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await asyncio.to_thread(batcher.close)  # finish what was admitted, admit nothing new
        model_thread.shutdown(wait=False)

    app = FastAPI(title="ptst serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.ptst = st
    app.include_router(router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    headers = [(b"x-ptst-template", quote(template.name, safe=":/.-_+").encode()),
               (b"x-ptst-template-fingerprint", fp.encode())]
    app.add_middleware(PtstMiddleware, api_key=cfg.api_key, headers=headers)
    return app


def run(cfg: ServeConfig) -> None:
    import uvicorn

    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(cfg)
    st: ServerState = app.state.ptst
    print(f"ptst serve: {st.name} on http://{cfg.host}:{cfg.port}/v1 with template {st.template.name} "
          f"(fingerprint {st.fingerprint[:16]}), system policy {cfg.system_policy}, "
          f"{'API key required' if cfg.api_key else 'no API key (loopback only)'}", file=sys.stderr)
    print(f"ptst serve: {placement(st.template, st.tokenizer)}", file=sys.stderr)  # as `ptst templates show` says
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level, timeout_graceful_shutdown=30)
