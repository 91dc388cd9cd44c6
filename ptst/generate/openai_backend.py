"""OpenAI-compatible backend: chat messages to any base_url (OpenAI, a vLLM server, `ptst serve`)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from ptst.errors import PtstError
from ptst.generate.base import Completion, Decoding, OnDone, PromptItem
from ptst.generate.progress import GenProgress
from ptst.generate.stops import truncate_at_stop
from ptst.openai_client import ChatClient, Endpoint

MAX_API_STOPS = 4  # OpenAI accepts at most 4 stop strings; the rest are applied locally


def chat_params(d: Decoding) -> dict[str, Any]:
    """Decoding -> chat/completions parameters (temperature 0 is the API's greedy)."""
    params: dict[str, Any] = {"max_tokens": d.max_new_tokens, "temperature": d.temperature, "top_p": d.top_p,
                              "seed": d.seed}
    if d.stop:
        params["stop"] = list(d.stop[:MAX_API_STOPS])
    return params


class OpenAIBackend:
    """Sends each item's `messages`; concurrency and bounded retries (429/5xx/timeouts) come from ChatClient."""

    name = "openai"

    def __init__(self, endpoint: Endpoint, progress: bool = True, client: ChatClient | None = None) -> None:
        self.endpoint = endpoint
        self.progress = progress
        self._client = client

    def generate(self, items: Sequence[PromptItem], decoding: Decoding,
                 on_done: OnDone | None = None) -> list[Completion]:
        for it in items:
            if not it.messages:
                raise PtstError(f"item {it.id}: the openai backend sends chat messages, and this item has none")
        client = self._client or ChatClient(self.endpoint)
        params = chat_params(decoding)
        results: list[Completion | None] = [None] * len(items)
        try:
            with GenProgress(len(items), f"generating ({self.endpoint.model})", self.progress) as bar, \
                    ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as pool:
                futures = {pool.submit(client.chat, list(it.messages), **params): i for i, it in enumerate(items)}
                try:
                    for fut in as_completed(futures):
                        i = futures[fut]
                        results[i] = self._completion(fut.result(), decoding)
                        bar.advance(prompts=1, tokens=results[i].n_tokens or 0)  # type: ignore[union-attr]
                        if on_done is not None:
                            on_done(i, results[i])  # type: ignore[arg-type]
                except BaseException:
                    for f in futures:  # stop queued requests; running ones finish (bounded by the timeout)
                        f.cancel()
                    raise
        finally:
            if self._client is None:
                client.close()
        return [c for c in results if c is not None]

    @staticmethod
    def _completion(res: Any, d: Decoding) -> Completion:
        text, cut = truncate_at_stop(res.content, d.stop)
        n = res.usage.get("completion_tokens")
        finish = "stop" if cut else res.finish_reason
        return Completion(text=text, finish_reason=finish, n_tokens=int(n) if n is not None else None)
