"""API key enforcement, the non-loopback bind refusal, the bounded queue (429), draining (503), the batcher."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.generate.base import Decoding, PromptItem
from ptst.serve import ServeConfig, check_bind, create_app, is_loopback
from ptst.serve.batcher import Batcher, Closing, QueueFull
from tests.serve.conftest import EchoBackend, GateBackend, chat, running, wait_for

URL = "/v1/chat/completions"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("10.0.0.5", False), ("myhost.example", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_beyond_loopback_needs_a_key():
    with pytest.raises(PtstError, match="without an API key"):
        check_bind("0.0.0.0", None)
    with pytest.raises(PtstError, match="without an API key"):
        ServeConfig(model="m", host="192.168.1.4")
    check_bind("0.0.0.0", "k")  # a key makes it allowed
    assert ServeConfig(model="m", host="0.0.0.0", api_key="k").api_key == "k"


def test_cli_refuses_non_loopback_without_key_in_one_line(capsys, monkeypatch):
    monkeypatch.delenv("PTST_API_KEY", raising=False)
    assert main(["serve", "--model", "no-such-model", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to bind '0.0.0.0' without an API key" in err


def test_api_key_required_on_every_api_request(llama2_tok):
    app = create_app(ServeConfig(model="tiny", api_key="s3cret", max_context=2048), EchoBackend(), llama2_tok)
    with running(app) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            for method, path, body in (("POST", URL, chat()), ("GET", "/v1/models", None), ("GET", "/x", None)):
                r = httpx.request(method, url + path, json=body, headers=headers)
                assert r.status_code == 401, (headers, path)
                assert r.json()["error"]["type"] == "authentication_error"
                assert r.headers["www-authenticate"] == "Bearer" and "x-ptst-template" in r.headers
        ok = httpx.post(url + URL, json=chat(), headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.get(url + "/health").status_code == 200  # liveness probes carry no key
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model="tiny", messages=chat()["messages"]).choices[0].message.content


def _post_in_thread(url: str, results: list, i: int) -> threading.Thread:
    def go() -> None:
        results[i] = httpx.post(url + URL, json=chat(f"request {i}"), timeout=60)

    th = threading.Thread(target=go)
    th.start()
    return th


def test_full_queue_answers_429_with_retry_after_and_serves_the_rest(llama2_tok):
    backend = GateBackend()
    app = create_app(ServeConfig(model="tiny", max_queue=1, max_batch=4, max_wait_ms=0, max_context=2048),
                     backend, llama2_tok)
    batcher = app.state.ptst.batcher
    results: list = [None, None]
    with running(app) as url:
        first = _post_in_thread(url, results, 0)
        assert backend.entered.wait(20)  # request 0 is in the backend: the queue is empty again
        second = _post_in_thread(url, results, 1)
        wait_for(lambda: batcher.queued == 1)  # request 1 waits: the queue is full
        r = httpx.post(url + URL, json=chat("one too many"))
        assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        assert int(r.headers["retry-after"]) >= 1 and "x-ptst-template-fingerprint" in r.headers
        backend.release.set()
        first.join(30)
        second.join(30)
    assert [x.status_code for x in results] == [200, 200]
    assert "request 1" in results[1].json()["choices"][0]["message"]["content"]


def test_a_client_that_hangs_up_while_queued_never_reaches_the_model(llama2_tok):
    backend = GateBackend()
    app = create_app(ServeConfig(model="tiny", max_batch=1, max_wait_ms=0, max_context=2048), backend, llama2_tok)
    batcher = app.state.ptst.batcher
    results: list = [None]
    with running(app) as url:
        first = _post_in_thread(url, results, 0)
        assert backend.entered.wait(20)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + URL, json=chat("impatient"), timeout=httpx.Timeout(10, read=0.5))
        wait_for(lambda: batcher.queued == 1 and batcher._queue[0].future.cancelled())  # noqa: SLF001
        backend.release.set()
        first.join(30)
        assert httpx.post(url + URL, json=chat("later")).status_code == 200
    served = [it.rendered for items, _ in backend.calls for it in items]
    assert len(served) == 2 and not any("impatient" in p for p in served)


def test_draining_server_answers_503_with_retry_after(echo_server):
    url, _, app = echo_server
    app.state.ptst.batcher.close()
    r = httpx.post(url + URL, json=chat())
    assert r.status_code == 503 and r.headers["retry-after"] and r.json()["error"]["code"] == "shutting_down"
    assert httpx.get(url + "/health").json()["status"] == "draining"


def _item(i: int) -> PromptItem:
    return PromptItem(str(i), f"prompt {i}")


def test_batcher_groups_by_decoding_and_maps_results_back_in_order():
    backend = EchoBackend()
    b = Batcher(backend, max_batch=8, max_wait_s=0.0, max_queue=16)
    greedy, sampled = Decoding(max_new_tokens=4), Decoding(max_new_tokens=4, temperature=0.7)
    jobs = [b.submit(_item(i), greedy if i % 2 == 0 else sampled) for i in range(6)]
    b.start()  # everything is queued before the worker looks: one take, two groups
    outs = [j.future.result(timeout=20).text for j in jobs]
    b.close()
    assert outs == [f"prompt {i}" for i in range(6)]
    assert [([it.id for it in items], d) for items, d in backend.calls] == [
        (["0", "2", "4"], greedy), (["1", "3", "5"], sampled)]
    assert b.stats.batches == 2 and b.stats.items == 6


def test_batcher_respects_max_batch_and_skips_cancelled_requests():
    backend = EchoBackend()
    b = Batcher(backend, max_batch=2, max_wait_s=0.0, max_queue=16)
    d = Decoding(max_new_tokens=4)
    jobs = [b.submit(_item(i), d) for i in range(5)]
    assert jobs[1].future.cancel()  # the client went away before its batch started
    b.start()
    for j in jobs[:1] + jobs[2:]:
        j.future.result(timeout=20)
    b.close()
    assert [[it.id for it in items] for items, _ in backend.calls] == [["0"], ["2", "3"], ["4"]]


def test_batcher_bounds_its_queue():
    b = Batcher(EchoBackend(), max_batch=2, max_wait_s=0.0, max_queue=3)
    jobs = [b.submit(_item(i), Decoding()) for i in range(3)]
    with pytest.raises(QueueFull) as e:
        b.submit(_item(9), Decoding())
    assert e.value.retry_after >= 1
    b.start()
    b.close()  # admits nothing more, but finishes what it admitted
    assert [j.future.result(timeout=0).text for j in jobs] == ["prompt 0", "prompt 1", "prompt 2"]
    with pytest.raises(Closing):
        b.submit(_item(10), Decoding())
