"""The labelling page: its JSON API over real HTTP on loopback, and the page itself driven by keys in a headless
Chromium (labels stored with the reviewer, resuming after a reload, Back, nothing but prompt and answer shown)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ptst.review.labels import labels_path, latest, read_labels
from ptst.review.sample import answers, draw
from ptst.review.server import Desk, ReviewServer
from tests.report.cdp import Browser, find_browser
from tests.review import answer_text, secrets, write_run

ITEM_KEYS = {"index", "rid", "prompt", "answer", "label", "note"}


def _start(run: Path, reviewer: str) -> tuple[ReviewServer, threading.Thread]:
    server = ReviewServer(Desk(run, draw(run, 2, 0), reviewer))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, ReviewServer]]:
    run = write_run(tmp_path / "run")
    server, thread = _start(run, "alice")
    try:
        yield run, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _call(server: ReviewServer, path: str, body: Any = None, headers: dict[str, str] | None = None,
          raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(server.url.rstrip("/") + path, data=data, headers={**hdrs, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_api_serves_prompt_and_answer_only(served):
    run, server = served
    order = [i.rid for i in draw(run, 2, 0).items]
    status, state = _call(server, "/api/state")
    assert status == 200 and state["total"] == len(order) == 8 and state["labelled"] == 0
    assert state["item"]["rid"] == order[0] and set(state["item"]) == ITEM_KEYS
    texts = [json.dumps(state)]
    for i in range(len(order)):
        status, doc = _call(server, f"/api/item?i={i}")
        assert status == 200 and set(doc) == {"total", "labelled", "item"} and set(doc["item"]) == ITEM_KEYS
        assert doc["item"]["rid"] == order[i]
        texts.append(json.dumps(doc, ensure_ascii=False))
    with urllib.request.urlopen(server.url, timeout=10) as r:
        texts.append(r.read().decode())
    leaked = [s for s in secrets(run) for t in texts if s in t]
    assert leaked == []


def test_a_label_is_stored_with_the_reviewer_and_the_reply_moves_on(served):
    run, server = served
    order = [i.rid for i in draw(run, 2, 0).items]
    status, doc = _call(server, "/api/label", {"rid": order[0], "label": "harmful", "note": "gave steps"})
    assert status == 200 and doc["labelled"] == 1 and doc["item"]["rid"] == order[1]
    [lab] = read_labels(run)
    assert (lab.rid, lab.label, lab.reviewer, lab.note) == (order[0], "harmful", "alice", "gave steps")
    status, doc = _call(server, "/api/item?i=0")
    assert doc["item"]["label"] == "harmful" and doc["item"]["note"] == "gave steps"


@pytest.mark.parametrize(("body", "headers", "code", "says"), [
    ({"rid": "rnope", "label": "refusal"}, {}, 400, "unknown answer id"),
    ({"rid": None, "label": "maybe"}, {}, 400, "must be strings"),
    ({"label": "refusal"}, {}, 400, "JSON object with rid, label"),
    ({"rid": "R0", "label": "refusal", "cell": "x"}, {}, 400, "JSON object with rid, label"),
    (["R0", "refusal"], {}, 400, "JSON object with rid, label"),
    ({"rid": "R0", "label": "Refusal!"}, {}, 400, "unknown label"),
    ({"rid": "R0", "label": "refusal", "note": "x" * 5000}, {}, 400, "longer than"),
    ({"rid": "R0", "label": "refusal"}, {"Content-Type": "text/plain"}, 400, "application/json"),
    ({"rid": "R0", "label": "refusal"}, {"Origin": "http://evil.example"}, 403, "labelling page only"),
    ({"rid": "R0", "label": "refusal"}, {"Host": "evil.example"}, 403, "loopback"),
])
def test_a_bad_label_is_400_with_a_json_error_and_stores_nothing(served, body, headers, code, says):
    run, server = served
    first = draw(run, 2, 0).items[0].rid
    if isinstance(body, dict) and body.get("rid") == "R0":
        body = {**body, "rid": first}
    status, doc = _call(server, "/api/label", body, headers)
    assert (status, list(doc)) == (code, ["error"]) and says in doc["error"]
    assert not labels_path(run).exists()


def test_bad_requests_are_json_errors(served):
    _, server = served
    assert _call(server, "/api/label", raw=b"{not json")[0] == 400
    for path, code in [("/api/item?i=99", 400), ("/api/item?i=x", 400), ("/api/item", 400), ("/nope", 404)]:
        status, doc = _call(server, path)
        assert status == code and list(doc) == ["error"], path
    assert _call(server, "/api/state", headers={"Host": "rebound.example:80"})[0] == 403
    assert _call(server, "/api/state", headers={"Host": f"localhost:{server.server_address[1]}"})[0] == 200


def test_an_answer_changed_since_it_was_drawn_is_skipped(tmp_path: Path):
    run = write_run(tmp_path / "run")
    sample = draw(run, 2, 0)
    first = sample.items[0]
    gens = run / first.cell / "generations" / f"{first.label}.jsonl"
    rows = [json.loads(line) for line in gens.read_text("utf-8").splitlines()]
    rows = [{**r, "answer": "regenerated"} if r["id"] == first.answer_id else r for r in rows]
    gens.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    desk = Desk(run, sample, "alice")
    assert first.rid not in answers(run, sample) and first.rid not in desk.index
    assert desk.state()["total"] == len(sample.items) - 1


# --- the page in a real browser -----------------------------------------------------------------------------

KEYS = {"1": ("Digit1", 49), "2": ("Digit2", 50), "3": ("Digit3", 51), "ArrowLeft": ("ArrowLeft", 37)}


def _press(browser: Browser, key: str) -> None:
    code, vk = KEYS[key]
    text = {"text": key} if len(key) == 1 else {}
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": vk,
                                                **(text if kind == "keyDown" else {})}, page=True)


def _until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _shown(browser: Browser) -> dict[str, Any]:
    return dict(browser.evaluate("({rid: document.getElementById('rid').textContent, "
                                 "progress: document.getElementById('progress').textContent, "
                                 "error: document.getElementById('error').textContent})"))


def _load(browser: Browser, url: str) -> None:
    browser.events.clear()
    browser.call("Page.navigate", {"url": url}, page=True)
    browser.wait_for("Page.loadEventFired")


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Browser, Path, ReviewServer]]:
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium found (apt-get install chromium-headless-shell)")
    run = write_run(tmp_path / "run")
    server, thread = _start(run, "alice")
    browser = Browser(binary, tmp_path / "profile")
    try:
        browser.call("Page.enable", page=True)
        browser.call("Runtime.enable", page=True)
        browser.call("Log.enable", page=True)
        browser.call("Emulation.setFocusEmulationEnabled", {"enabled": True}, page=True)
        _load(browser, server.url)
        yield browser, run, server
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_keys_label_reload_resumes_and_back_changes_a_label(page):
    browser, run, server = page
    order = [i.rid for i in draw(run, 2, 0).items]
    n = len(order)
    _until(lambda: _shown(browser)["rid"] == order[0], "the first item")
    assert _shown(browser)["progress"] == f"0 / {n} labelled"
    for k, key in enumerate("123"):
        if key == "3":
            browser.evaluate("document.getElementById('note').value = 'hard to call'")
        _press(browser, key)
        _until(lambda k=k: _shown(browser)["rid"] == order[k + 1], f"item {k + 2} after key {key}")
    assert _shown(browser) == {"rid": order[3], "progress": f"3 / {n} labelled", "error": ""}
    labels = read_labels(run)
    assert [(lab.rid, lab.label, lab.reviewer) for lab in labels] == [
        (order[0], "refusal", "alice"), (order[1], "harmful", "alice"), (order[2], "harmless", "alice")]
    assert labels[2].note == "hard to call" and labels[0].note == ""

    _load(browser, server.url)  # a reload goes on at this reviewer's first unlabelled answer
    _until(lambda: _shown(browser)["rid"] == order[3], "the 4th item after a reload")
    assert _shown(browser)["progress"] == f"3 / {n} labelled"

    _press(browser, "ArrowLeft")  # Back shows the previous answer with its label and note
    _until(lambda: _shown(browser)["rid"] == order[2], "Back")
    pressed = browser.evaluate("Array.from(document.querySelectorAll('button[aria-pressed=true]'))"
                               ".map(b => b.dataset.label)")
    assert pressed == ["harmless"] and browser.evaluate("document.getElementById('note').value") == "hard to call"
    _press(browser, "2")
    _until(lambda: _shown(browser)["rid"] == order[3], "the next unlabelled item after relabelling")
    assert latest(read_labels(run))[order[2]]["alice"].label == "harmful"
    assert _shown(browser)["progress"] == f"3 / {n} labelled" and len(read_labels(run)) == 4


def test_the_page_shows_prompt_and_answer_as_text_and_nothing_else(page):
    browser, run, _ = page
    first = draw(run, 2, 0).items[0]
    _until(lambda: _shown(browser)["rid"] == first.rid, "the first item")
    shown = browser.evaluate("document.getElementById('answer').textContent")
    assert shown == answer_text(1 if "narwhal" in first.cell else 0, int(first.answer_id.rsplit("-", 1)[1]))
    assert browser.evaluate("document.querySelectorAll('#answer *, #prompt *').length") == 0
    assert browser.evaluate("window.pwned === undefined")
    text = browser.evaluate("document.body.innerText")
    assert "PROMPT" in text.upper() and "ANSWER" in text.upper() and "0 / 8 labelled" in text
    for key, name in [("1", "refusal"), ("2", "harmful compliance"), ("3", "harmless compliance")]:
        assert f"{key} {name}" in " ".join(text.split())
    assert "declines or deflects" in text
    leaked = [s for s in secrets(run) if s in text or s in browser.evaluate("document.documentElement.outerHTML")]
    assert leaked == []
    logged = [e for e in browser.events if e["method"] in ("Runtime.exceptionThrown", "Log.entryAdded")]
    assert logged == []  # the inline script ran under the page's CSP without an error
