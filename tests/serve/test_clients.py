"""Real clients against the real server: the official `openai` package (plain and streaming), raw SSE over httpx,
and ptst's own OpenAI-compatible ChatClient."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ptst.openai_client import ChatClient, Endpoint
from ptst.serve import ServeConfig, create_app
from ptst.templates import fingerprint, get_template, render
from tests.serve.conftest import FailingBackend, chat, running

MSGS = [{"role": "user", "content": "Write a haiku about bread."}]


def test_openai_client_plain_and_raw_headers(echo_server, llama2_tok):
    url, _, _ = echo_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="tiny", messages=MSGS, max_tokens=8)
    assert raw.headers["x-ptst-template-fingerprint"] == fingerprint(get_template("chat:llama"), llama2_tok)
    resp = raw.parse()
    assert resp.choices[0].message.content == render(get_template("chat:llama"), llama2_tok, MSGS[0]["content"]).text
    assert resp.choices[0].finish_reason == "stop" and resp.usage.completion_tokens == 1
    assert resp.system_fingerprint.startswith("ptst-")
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_openai_client_streaming_matches_the_plain_answer(echo_server):
    url, _, _ = echo_server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    plain = client.chat.completions.create(model="tiny", messages=MSGS)
    chunks = list(client.chat.completions.create(model="tiny", messages=MSGS, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really chunked
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == plain.usage.total_tokens
    assert len({c.id for c in chunks}) == 1


def test_raw_sse_wire_format(echo_server, llama2_tok):
    url, _, _ = echo_server
    with httpx.stream("POST", url + "/v1/chat/completions", json=chat(stream=True)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-ptst-template-fingerprint"] == fingerprint(get_template("chat:llama"), llama2_tok)
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    bodies = [json.loads(e[6:]) for e in events[:-1]]
    assert {b["object"] for b in bodies} == {"chat.completion.chunk"}
    assert "usage" not in bodies[-1]  # only with stream_options.include_usage


def test_stream_reports_a_backend_failure_as_an_error_event(llama2_tok):
    app = create_app(ServeConfig(model="tiny", max_context=2048), FailingBackend(), llama2_tok)
    with running(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIError, match="out of memory"):
            list(client.chat.completions.create(model="tiny", messages=MSGS, stream=True))


def test_ptst_chat_client_talks_to_the_server(echo_server, llama2_tok):
    url, backend, _ = echo_server
    with ChatClient(Endpoint(base_url=url + "/v1", model="tiny", api_key="unused", concurrency=4)) as c:
        res = c.chat(MSGS, temperature=0, max_tokens=8)
        outs = c.map(lambda cl, i: cl.chat(chat(f"q{i}")["messages"], max_tokens=4).content, list(range(8)))
    assert res.content == render(get_template("chat:llama"), llama2_tok, MSGS[0]["content"]).text
    assert res.headers["x-ptst-template"] == "chat:llama" and res.usage["completion_tokens"] == 1
    assert [o.endswith(f"q{i} [/INST]") for i, o in enumerate(outs)] == [True] * 8
