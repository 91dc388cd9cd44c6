"""The OpenAI-compatible client over real HTTP on loopback: success, retries, bounded failure."""

from __future__ import annotations

import pytest

from ptst.openai_client import ChatClient, Endpoint, EndpointError
from tests.openai_stub import serve_stub


def _echo(body):
    return "echo: " + body["messages"][-1]["content"]


def test_chat_roundtrip_and_map_preserves_order():
    with serve_stub(_echo) as (url, state):
        with ChatClient(Endpoint(base_url=url, model="m", api_key="k", concurrency=4)) as c:
            assert c.chat([{"role": "user", "content": "hi"}], temperature=0).content == "echo: hi"
            outs = c.map(lambda cl, i: cl.chat([{"role": "user", "content": str(i)}]).content, list(range(20)))
    assert outs == [f"echo: {i}" for i in range(20)]
    assert state.requests[0]["temperature"] == 0 and state.requests[0]["model"] == "m"


def test_retries_on_429_and_500_then_succeeds():
    with serve_stub(_echo, faults=[429, 500, 503]) as (url, state):
        with ChatClient(Endpoint(base_url=url, max_retries=3, backoff_s=0.0), sleep=lambda s: None) as c:
            assert c.chat([{"role": "user", "content": "x"}]).content == "echo: x"
    assert len(state.requests) == 4


def test_gives_up_after_bounded_retries_with_clear_error():
    with serve_stub(_echo, faults=[500] * 10) as (url, state):
        with ChatClient(Endpoint(base_url=url, max_retries=2, backoff_s=0.0), sleep=lambda s: None) as c:
            with pytest.raises(EndpointError, match="unreachable after 3 attempts"):
                c.chat([{"role": "user", "content": "x"}])
    assert len(state.requests) == 3


def test_non_retryable_status_fails_fast():
    with serve_stub(_echo, faults=[400]) as (url, state):
        with ChatClient(Endpoint(base_url=url, max_retries=5), sleep=lambda s: None) as c:
            with pytest.raises(EndpointError, match="HTTP 400"):
                c.chat([{"role": "user", "content": "x"}])
    assert len(state.requests) == 1


def test_unreachable_endpoint():
    with ChatClient(Endpoint(base_url="http://127.0.0.1:9", max_retries=1, timeout_s=1), sleep=lambda s: None) as c:
        with pytest.raises(EndpointError, match="unreachable"):
            c.chat([{"role": "user", "content": "x"}])
