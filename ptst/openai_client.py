"""A small OpenAI-compatible chat client: concurrency limit, bounded retries with backoff on 429/5xx/timeouts."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ptst.errors import PtstError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Endpoint:
    """Where an OpenAI-compatible API lives. The key falls back to $OPENAI_API_KEY (or `api_key_env`)."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4-0613"
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 5
    concurrency: int = 8
    backoff_s: float = 1.0
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise PtstError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.concurrency < 1 or self.max_retries < 0:
            raise PtstError("concurrency must be >= 1 and max_retries >= 0")

    def key(self) -> str | None:
        return self.api_key or os.environ.get(self.api_key_env)


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str | None
    usage: dict[str, Any]
    headers: dict[str, str]


class EndpointError(PtstError):
    """The endpoint kept failing after every retry (or answered with a non-retryable error)."""


def _retry_after(resp: Any) -> float | None:
    value = resp.headers.get("retry-after") if resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ChatClient:
    """Synchronous client; `map` runs many requests on a bounded thread pool, preserving order."""

    def __init__(self, endpoint: Endpoint, sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        self.endpoint = endpoint
        self._sleep = sleep
        headers = {"Content-Type": "application/json", **endpoint.extra_headers}
        if endpoint.key():
            headers["Authorization"] = f"Bearer {endpoint.key()}"
        limits = httpx.Limits(max_connections=endpoint.concurrency, max_keepalive_connections=endpoint.concurrency)
        self._http = httpx.Client(base_url=endpoint.base_url.rstrip("/") + "/", headers=headers,
                                  timeout=endpoint.timeout_s, limits=limits)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(self, messages: Sequence[dict[str, str]], **params: Any) -> ChatResult:
        import httpx

        body = {"model": self.endpoint.model, "messages": list(messages), **params}
        last = "no attempt made"
        for attempt in range(self.endpoint.max_retries + 1):
            resp = None
            try:
                resp = self._http.post("chat/completions", json=body)
                if resp.status_code == 200:
                    data = resp.json()
                    choice = data["choices"][0]
                    return ChatResult(choice["message"].get("content") or "", choice.get("finish_reason"),
                                      data.get("usage") or {}, dict(resp.headers))
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{self.endpoint.base_url} answered {last}")
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
            except (KeyError, IndexError, ValueError) as e:
                last = f"malformed response ({e})"
            if attempt < self.endpoint.max_retries:
                wait = _retry_after(resp) or self.endpoint.backoff_s * (2**attempt) * (0.5 + random.random() / 2)
                self._sleep(min(wait, 60.0))
        raise EndpointError(
            f"{self.endpoint.base_url} unreachable after {self.endpoint.max_retries + 1} attempts ({last})"
        )

    def map(self, fn: Callable[[ChatClient, Any], Any], items: Sequence[Any]) -> list[Any]:
        """Apply fn(client, item) concurrently; the first error propagates after running requests finish."""
        with ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as pool:
            return list(pool.map(lambda it: fn(self, it), items))
