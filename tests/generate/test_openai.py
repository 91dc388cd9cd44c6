"""The openai backend over a real loopback HTTP server: messages, parameter mapping, retries, run() records."""

from __future__ import annotations

import json

import pytest

from ptst.generate import Decoding, GenerateConfig, run
from ptst.generate.base import PromptItem
from ptst.generate.openai_backend import OpenAIBackend
from ptst.openai_client import Endpoint, EndpointError
from ptst.templates import LLAMA_BASE_PROMPT, get_template
from tests.openai_stub import serve_stub


def echo(body: dict) -> str:
    """Answers with the user turn reversed, plus a marker that a stop string can cut."""
    return body["messages"][-1]["content"][::-1] + " ### tail"


def items(n: int = 5) -> list[PromptItem]:
    t = get_template("chat:llama")
    return [PromptItem(f"q{i}", "", tuple(t.messages(f"question number {i}"))) for i in range(n)]


def endpoint(url: str, **kw) -> Endpoint:
    return Endpoint(base_url=url, model="stub-model", api_key="k", backoff_s=0.01, **{"concurrency": 3, **kw})


def test_sends_messages_and_maps_decoding():
    with serve_stub(echo) as (url, state):
        out = OpenAIBackend(endpoint(url), progress=False).generate(
            items(3), Decoding(max_new_tokens=33, temperature=0.7, top_p=0.9, seed=11, stop=("###",)))
    assert [c.text for c in out] == [f"question number {i}"[::-1] + " " for i in range(3)]
    assert {c.finish_reason for c in out} == {"stop"} and {c.n_tokens for c in out} == {1}
    body = state.requests[0]
    assert body["messages"][0] == {"role": "system", "content": LLAMA_BASE_PROMPT}
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        "stub-model", 33, 0.7, 0.9, 11, ["###"])


def test_retries_429_and_500_and_keeps_input_order():
    seen: dict[int, str] = {}
    with serve_stub(echo, faults=[429, 500, 503]) as (url, state):
        out = OpenAIBackend(endpoint(url), progress=True).generate(
            items(6), Decoding(), on_done=lambda i, c: seen.setdefault(i, c.text))
        n_requests = len(state.requests)
    assert [c.text for c in out] == [f"question number {i}"[::-1] + " ### tail" for i in range(6)]
    assert seen == {i: c.text for i, c in enumerate(out)}
    assert n_requests == 6 + 3


def test_gives_up_after_bounded_retries_and_on_client_errors():
    with serve_stub(echo, faults=[500] * 10) as (url, _):
        with pytest.raises(EndpointError, match="after 3 attempts"):
            OpenAIBackend(endpoint(url, max_retries=2, concurrency=1), progress=False).generate(items(1), Decoding())
    with serve_stub(echo, faults=[400]) as (url, state):
        with pytest.raises(EndpointError, match="HTTP 400"):
            OpenAIBackend(endpoint(url, concurrency=1), progress=False).generate(items(1), Decoding())
        assert len(state.requests) == 1


def test_items_without_messages_are_refused():
    from ptst.errors import PtstError

    with pytest.raises(PtstError, match="chat messages"):
        OpenAIBackend(endpoint("http://127.0.0.1:9/v1"), progress=False).generate([PromptItem("a", "x")], Decoding())


def test_run_with_the_openai_backend_writes_records_and_resumes(data_spec, tmp_path):
    with serve_stub(echo, faults=[429]) as (url, state):
        cfg = GenerateConfig(data=data_spec, template="chat:llama", backend="openai", base_url=url,
                             api_model="stub-model", max_retries=2, concurrency=2)
        out = run(cfg, tmp_path / "api.jsonl", progress=False).path
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert recs[0]["model"] == f"stub-model@{url}" and recs[0]["prompt"] == "hello"
        assert recs[0]["answer"] == "olleh ### tail"
        n = len(state.requests)
        run(cfg, out, progress=False)
        assert len(state.requests) == n  # complete: no request sent
