"""Dynamic batching: a bounded queue drained by one worker thread into `Backend.generate` calls.

Requests arriving within `max_wait_s` of the first waiting one (up to `max_batch`) share a forward pass; requests
with different decoding settings run as separate calls, oldest first. A backend that `admits_more` (the fast
engine's stream) takes requests arriving meanwhile into the running call (`Batcher._more`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from ptst.generate.base import Backend, Completion, Decoding, PromptItem

log = logging.getLogger("ptst.serve")


class QueueFull(Exception):
    """The queue holds `max_queue` requests already; `retry_after` is an estimate in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after}s")
        self.retry_after = retry_after


class Closing(Exception):
    """The server is shutting down and admits no new work."""


@dataclass
class Job:
    item: PromptItem
    decoding: Decoding
    future: Future[Completion] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


BURST_WAITS = 5  # the longest a batch waits for more requests, in max_wait_s
RATE_WINDOW_S = 60.0  # Retry-After: the answer rate over this window


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    seconds_ewma: float = 0.0  # smoothed wall time of one generate call, for Retry-After
    busy_s: float = 0.0  # total time spent inside generate
    largest: int = 0


class Batcher:
    """Thread-safe: `submit` from any thread (the event loop), one daemon thread runs the backend."""

    def __init__(self, backend: Backend, max_batch: int = 16, max_wait_s: float = 0.01, max_queue: int = 256,
                 model_thread: Executor | None = None) -> None:
        """`model_thread`: a one-worker executor that runs every `generate` call, the thread that loaded the
        model (`create_app`). On CPU, torch work on a thread other than the one that first ran torch ops
        measured 1.6x slower per batch (each thread gets its own OpenMP team, and the first one's stays)."""
        self.backend = backend
        self.model_thread = model_thread
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.stats = BatchStats()
        self._queue: deque[Job] = deque()
        self._limits = bool(getattr(backend, "admits_more", False))  # a stream: more requests, own limits
        self._answered: deque[float] = deque(maxlen=1024)  # when requests were answered (Retry-After's rate)
        self._cv = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def queued(self) -> int:
        with self._cv:
            return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ptst-batcher", daemon=True)
            self._thread.start()

    def submit(self, item: PromptItem, decoding: Decoding) -> Job:
        """Admit a request or raise QueueFull / Closing at once (never blocks the caller)."""
        job = Job(item, decoding)
        with self._cv:
            if self._closing:
                raise Closing("server is shutting down")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(self._retry_after(len(self._queue)))
            self._queue.append(job)
            self._cv.notify()
        return job

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop admitting work, finish everything already queued, then stop the worker."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _retry_after(self, queued: int) -> int:
        """Seconds until about a batch of requests has left the queue, at the rate requests were answered
        recently (while a stream runs, as well as between calls); before any answer, from the batches ahead."""
        now = time.monotonic()
        with self._cv:
            recent = [t for t in self._answered if now - t <= RATE_WINDOW_S]
        if len(recent) >= 2 and now > recent[0]:
            per_s = len(recent) / (now - recent[0])
            return max(1, min(60, math.ceil(self.max_batch / per_s)))
        batches_ahead = queued // self.max_batch + 1
        return max(1, min(60, math.ceil(batches_ahead * max(self.stats.seconds_ewma, 0.1))))

    def _take(self) -> list[Job] | None:
        """Block for a first job, then gather more until the batch is full or `max_wait_s` has passed."""
        with self._cv:
            while not self._queue and not self._closing:
                self._cv.wait()
            if not self._queue:
                return None
            # The batch closes once no request has arrived for max_wait_s (a burst of 48 requests over HTTP
            # takes longer than 10 ms to arrive: a fixed deadline split it in two half batches), or BURST_WAITS
            # max_wait_s after its first request, or when it is full.
            cap = self._queue[0].enqueued + BURST_WAITS * self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closing:
                left = min(self._queue[-1].enqueued + self.max_wait_s, cap) - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            n = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            # One call per iteration: the oldest request's settings. The others go back to the queue's front, in
            # order (not started, still cancellable), so a stream that takes new requests stops at them
            # (`_more`) and they run next. max_new_tokens is part of the settings (Backend.generate takes one
            # Decoding per call) except for a stream, which runs at the group's largest and stops each request
            # at its own (`_settings`; docs/serving.md).
            first = self._settings(jobs[0].decoding)
            with self._cv:
                self._queue.extendleft(reversed([j for j in jobs if self._settings(j.decoding) != first]))
            # Requests whose client went away before their batch started are skipped, not generated.
            group = [j for j in jobs if self._settings(j.decoding) == first and j.future.set_running_or_notify_cancel()]
            if group:
                self._generate(replace(jobs[0].decoding, max_new_tokens=max(j.decoding.max_new_tokens
                                                                             for j in group)), group)

    def _settings(self, d: Decoding) -> Decoding:
        """What requests must share to share a call: every decoding setting, except max_new_tokens where the
        backend takes each request's own limit (`admits_more`: the fast engine's stream)."""
        return replace(d, max_new_tokens=1) if self._limits else d

    def _more(self, decoding: Decoding, n: int, accept: Callable[[PromptItem], bool]) -> list[Job]:
        """Up to n waiting requests for a running stream (`decoding`: its call's) to take in: from the queue's
        front, while they share its settings with a max_new_tokens no larger than its own and the stream
        `accept`s them (its shared prompt prefix). The first that does not qualify ends the take, so nothing is
        overtaken: that request runs when the stream has ended. Requests whose client went away are dropped."""
        taken: list[Job] = []
        with self._cv:
            while self._queue and len(taken) < n:
                job = self._queue[0]
                if job.future.cancelled():
                    self._queue.popleft()
                    continue
                if (self._settings(job.decoding) != self._settings(decoding)
                        or job.decoding.max_new_tokens > decoding.max_new_tokens or not accept(job.item)):
                    break
                self._queue.popleft()
                if job.future.set_running_or_notify_cancel():
                    taken.append(job)
        return taken

    def _generate(self, decoding: Decoding, group: list[Job]) -> None:
        """One `generate` call for the group. A request is answered as soon as its own completion is ready
        (`on_done`: the fast engine reports each row as it finishes, so a short refusal does not wait for the
        batch's longest answer); whatever a backend did not report is answered when the call returns. A backend
        that `admits_more` (the fast engine's stream) takes requests that arrive meanwhile into the running
        batch as rows finish (`_more`): continuous batching across requests."""
        start = time.monotonic()
        group = list(group)

        def done(i: int, out: Completion) -> None:
            if not group[i].future.done():
                group[i].future.set_result(out)
                with self._cv:
                    self._answered.append(time.monotonic())

        # Each request's item as its own object (one PromptItem submitted twice is two requests), so its own
        # max_tokens can be found by identity while the call holds it.
        own = [replace(j.item) for j in group]
        limits = {id(it): j.decoding.max_new_tokens for it, j in zip(own, group, strict=True)}

        def more(n: int, accept: Callable[[PromptItem], bool]) -> list[PromptItem]:
            jobs = self._more(decoding, n, accept)
            group.extend(jobs)
            new = [replace(j.item) for j in jobs]
            own.extend(new)
            limits.update((id(it), j.decoding.max_new_tokens) for it, j in zip(new, jobs, strict=True))
            return new

        def limit(item: PromptItem) -> int:
            return limits[id(item)]

        kw: dict[str, Any] = {"more": more, "limit": limit} if self._limits else {}
        try:
            call = partial(self.backend.generate, list(own), decoding, on_done=done, **kw)
            outs = call() if self.model_thread is None else self.model_thread.submit(call).result()
            if len(outs) != len(group):
                raise RuntimeError(f"backend returned {len(outs)} completions for {len(group)} prompts")
        except Exception as e:  # noqa: BLE001 - one bad batch fails its requests, never the worker
            log.exception("generate failed for a batch of %d", len(group))
            for j in group:
                if not j.future.done():
                    j.future.set_exception(e)
            return
        took = time.monotonic() - start
        s = self.stats
        s.batches, s.items, s.largest = s.batches + 1, s.items + len(group), max(s.largest, len(group))
        s.seconds_ewma = took if s.batches == 1 else 0.8 * s.seconds_ewma + 0.2 * took
        s.busy_s += took
        log.debug("batch of %d in %.3fs (queue %d)", len(group), took, self.queued)
        for i, out in enumerate(outs):
            done(i, out)
