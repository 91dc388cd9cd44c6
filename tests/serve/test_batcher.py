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


class Streaming:
    """A backend that `admits_more`: once released, it takes what `more` offers into the running call."""

    name = "streaming"
    admits_more = True

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[list[str]] = []
        self.limits: list[tuple[int, list[int]]] = []  # (the call's max_new_tokens, each item's own limit)

    def generate(self, items, decoding, on_done=None, more=None, limit=None):
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise TimeoutError("never released")
        got = [*items, *more(10, lambda item: item.rendered != 'refused')]
        self.calls.append([it.id for it in got])
        self.limits.append((decoding.max_new_tokens, [limit(it) for it in got]))
        outs = [Completion(f"answer {it.id}", "stop", 1) for it in got]
        for i, c in enumerate(outs):
            on_done(i, c)
        return outs


def test_requests_arriving_mid_call_join_it_unless_other_settings_are_ahead():
    backend = Streaming()
    b = Batcher(backend, max_batch=4, max_wait_s=0.001)
    b.start()
    same, other = Decoding(8), Decoding(8, temperature=0.7)
    first = b.submit(PromptItem("a", "p"), same)
    assert backend.entered.wait(timeout=20)
    late = [b.submit(PromptItem("b", "p"), same), b.submit(PromptItem("c", "p"), other),
            b.submit(PromptItem("d", "p"), same)]
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in [first, *late]))
    assert backend.calls[0] == ["a", "b"]  # c (other settings) is ahead of d: d waits for the next batch
    assert sorted(map(tuple, backend.calls[1:])) == [("c",), ("d",)]
    assert [j.future.result().text for j in [first, *late]] == ["answer a", "answer b", "answer c", "answer d"]
    b.close()
    assert b.stats.items == 4


def test_a_stream_takes_from_the_front_until_a_request_it_cannot_take():
    """Nothing is overtaken: a request with other settings, or one the stream does not accept (another shared
    prompt prefix), ends the take; requests whose client went away are dropped on the way."""
    b = Batcher(Streaming(), max_batch=8, max_wait_s=0.5)  # not started: the queue is driven by hand
    d, other = Decoding(8), Decoding(8, temperature=0.7)
    gone = b.submit(PromptItem("x", "p"), d)
    gone.future.cancel()
    jobs = [b.submit(PromptItem(i, r), dec) for i, r, dec in
            [("a", "p", d), ("b", "p", d), ("c", "refused", d), ("d", "p", d), ("e", "p", other), ("f", "p", d)]]
    everything = lambda item: True  # noqa: E731
    assert b._more(d, 1, everything) == jobs[:1]
    assert b._more(d, 8, lambda item: item.rendered != "refused") == jobs[1:2]
    assert b._more(d, 8, everything) == jobs[2:4] and b._more(d, 8, everything) == []
    assert b.queued == 2


def test_other_settings_gathered_in_the_same_batch_run_before_later_requests_join():
    """A batch gathered with two settings runs the oldest's call; the other request goes back to the front, so
    the running stream does not take the same-settings requests that arrive behind it."""
    backend = Streaming()
    b = Batcher(backend, max_batch=4, max_wait_s=0.2)
    same, other = Decoding(8), Decoding(8, temperature=0.7)
    first = [b.submit(PromptItem("a0", "p"), same), b.submit(PromptItem("b0", "p"), other)]
    b.start()
    assert backend.entered.wait(timeout=20)
    wait_for(lambda: b.queued == 1)  # b0 is back in the queue
    late = b.submit(PromptItem("a1", "p"), same)
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in [*first, late]))
    assert backend.calls == [["a0"], ["b0"], ["a1"]]
    b.close()


def test_retry_after_follows_the_recent_answer_rate():
    import time

    b = Batcher(Streaming(), max_batch=4, max_wait_s=0.01)
    assert b._retry_after(256) == 7  # nothing answered yet: 65 batches ahead at the 0.1 s floor per batch
    now = time.monotonic()
    b._answered.extend(now - 5 + 0.4 * k for k in range(12))  # 2.4 answers a second, while a call still runs
    assert b._retry_after(256) == 2  # a batch of 4 leaves the queue in about 1.7 s


def test_requests_differing_only_in_max_tokens_share_a_stream_with_their_own_limits():
    """The call runs at the largest max_tokens of its requests, each with its own limit; a newcomer asking for
    more than the running call's max_tokens ends the take and runs next."""
    backend = Streaming()
    b = Batcher(backend, max_batch=4, max_wait_s=0.2)
    first = [b.submit(PromptItem("a", "p"), Decoding(8)), b.submit(PromptItem("b", "p"), Decoding(16))]
    b.start()
    assert backend.entered.wait(timeout=20)
    late = [b.submit(PromptItem("c", "p"), Decoding(4)), b.submit(PromptItem("d", "p"), Decoding(32)),
            b.submit(PromptItem("e", "p"), Decoding(4))]
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in [*first, *late]))
    assert backend.calls[0] == ["a", "b", "c"] and backend.limits[0] == (16, [8, 16, 4])
    assert backend.calls[1:] == [["d", "e"]] and backend.limits[1] == (32, [32, 4])
    b.close()


def test_one_item_submitted_twice_is_two_requests_each_with_its_own_max_tokens():
    backend = Streaming()
    b = Batcher(backend, max_batch=4, max_wait_s=0.2)
    item = PromptItem("same", "p")
    jobs = [b.submit(item, Decoding(2)), b.submit(item, Decoding(12))]
    b.start()
    assert backend.entered.wait(timeout=20)
    late = b.submit(item, Decoding(4))
    backend.release.set()
    wait_for(lambda: all(j.future.done() for j in [*jobs, late]))
    assert backend.limits[0] == (12, [2, 12, 4]) and backend.calls[0] == ["same"] * 3
    b.close()
