"""`ptst.serve.batcher`: a request is answered as soon as its own completion is ready (the backend's `on_done`),
not when its batch's longest answer ends; what a backend does not report is answered when the call returns; a
failing call fails only the requests it had not answered."""

from __future__ import annotations

import threading

from ptst.generate.base import Completion, Decoding, PromptItem
from ptst.serve.batcher import Batcher
from tests.serve.conftest import wait_for


class Staged:
    """Reports item 0 through `on_done`, then holds the call until `release` (or fails, if `fail`)."""

    name = "staged"

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.fail = fail

    def generate(self, items, decoding, on_done=None):
        outs = [Completion(f"answer {it.id}", "stop", 1) for it in items]
        if on_done is not None:
            on_done(0, outs[0])
        if not self.release.wait(timeout=30):
            raise TimeoutError("never released")
        if self.fail:
            raise RuntimeError("scripted failure after the first answer")
        return outs


def jobs(backend, n: int = 3):
    b = Batcher(backend, max_batch=n, max_wait_s=0.5)
    b.start()
    js = [b.submit(PromptItem(f"q{i}", f"prompt {i}"), Decoding(8)) for i in range(n)]
    return b, js


def test_a_finished_row_is_answered_before_its_batch_ends():
    backend = Staged()
    b, (first, *rest) = jobs(backend)
    wait_for(first.future.done)
    assert first.future.result().text == "answer q0"
    assert not any(j.future.done() for j in rest)  # the call is still running
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in rest))
    assert [j.future.result().text for j in rest] == ["answer q1", "answer q2"]
    b.close()
    assert b.stats.batches == 1 and b.stats.items == 3


def test_a_failing_call_fails_only_the_unanswered_requests():
    backend = Staged(fail=True)
    b, (first, *rest) = jobs(backend)
    wait_for(first.future.done)
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in rest))
    assert first.future.result().text == "answer q0"
    for j in rest:
        assert isinstance(j.future.exception(), RuntimeError)
    b.close()
