"""The fast engine's decoding loop with continuous batching: rows that finish leave the batch, and prompts still
waiting take their places, so a set larger than the batch runs as one stream of full batches instead of batch
after batch whose tails run with a few long answers.

One refill prefills the waiting prompts (the shared prefix's keys and values reused, not computed again) and
copies the live rows' caches beside theirs in a new cache: every row's last token sits in the same column, the
live rows' left padding is trimmed to what the longest of them still needs. A refill costs a prefill and one copy
of the live rows' cache, so it waits until a quarter of the batch is free; with nothing left to refill with, the
cache is compacted to the live rows at the same point. Each row's arithmetic is its own (attention is per row,
padding masked), so greedy answers do not depend on which rows shared its batch: in fp32 they equal
transformers' greedy `generate` (tests/runtime/test_stream.py)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch

from ptst.runtime import fast as engine  # its PREFILL_SCORES_MAX and prefill_hf looked up at each call
from ptst.runtime.decode import Decoded
from ptst.runtime.fast import DecodeCache, FastLM

Prefill = tuple[DecodeCache, torch.Tensor, torch.Tensor, int]
PATIENCE = 16  # decoding steps a running stream lets rows from `more` wait for a quarter of the batch to free


def prefill(fast: FastLM, rows: list[list[int]], prefix: int, max_new_tokens: int,
            shared: DecodeCache | None = None) -> Prefill:
    """`FastLM.prefill` where the batch's padded attention scores fit `PREFILL_SCORES_MAX`, else `prefill_hf`.
    `shared`: a cache whose prefix keys/values the new rows reuse."""
    s = max(len(r) for r in rows) - prefix
    if len(rows) * fast.n_heads * s * (prefix + s) <= engine.PREFILL_SCORES_MAX:
        reuse = (shared.prefix_keys, shared.prefix_values) if shared is not None else None
        return fast.prefill(rows, prefix, max_new_tokens, reuse)
    cache, logits, last, col = engine.prefill_hf(fast.model, rows, prefix, max_new_tokens)
    if shared is not None:  # one prefix for every row (the same tokens through another path: the same values)
        cache.prefix_keys, cache.prefix_values = shared.prefix_keys, shared.prefix_values
    return cache, logits, last, col


def merge(a: DecodeCache, keep: list[int], col_a: int, b: DecodeCache, col_b: int,
          max_new_tokens: int) -> tuple[DecodeCache, int]:
    """Rows `keep` of `a` (next free column `col_a`) and every row of `b` (next free column `col_b`) in one
    cache whose rows all continue at the returned column, with room for `max_new_tokens` more; `a`'s prefix."""
    p, hkv = a.prefix, a.keys[0].shape[0] // a.mask.shape[0]
    rows = torch.tensor(keep, dtype=torch.long)
    real = a.mask[rows, p: p + col_a] == 0  # [Ba, col_a]: columns holding a real token of the row
    start = int(real.float().argmax(-1).min()) if keep else col_a  # the first column any kept row uses
    used = col_a - start
    col = max(used, col_b)
    total = col + max_new_tokens
    n_a, n_b, all_a = len(keep), b.mask.shape[0], a.mask.shape[0]  # every row of b is kept
    store: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    for out, src_a, src_b in ((store[0], a.keys, b.keys), (store[1], a.values, b.values)):
        for ta, tb in zip(src_a, src_b, strict=True):
            d = ta.shape[-1]
            t = ta.new_zeros((hkv, n_a + n_b, total, d))
            t[:, :n_a, col - used: col] = ta.view(hkv, all_a, -1, d)[:, rows, start: col_a]
            t[:, n_a:, col - col_b: col] = tb.view(hkv, n_b, -1, d)[:, :, :col_b]
            out.append(t.view(hkv * (n_a + n_b), total, d))
    mask = a.mask.new_full((n_a + n_b, p + total), float("-inf"))
    mask[:, :p] = 0.0
    mask[:, p + col:] = 0.0  # the columns generated tokens will fill
    mask[:n_a, p + col - used: p + col] = a.mask[rows, p + start: p + col_a]
    mask[n_a:, p + col - col_b: p + col] = b.mask[:, p: p + col_b]
    return DecodeCache(store[0], store[1], a.prefix_keys, a.prefix_values, p, mask, a.prefix_keys_t), col


def decode(fast: FastLM, rows: list[list[int]], *, max_new_tokens: int, stop_ids: set[int],
           sampler: Callable[[torch.Tensor], torch.Tensor], prefix: int = 0,
           stop_check: Callable[[list[int]], bool] | None = None, on_step: Callable[[int], None] | None = None,
           batch_size: int | None = None, on_row: Callable[[int, Decoded], None] | None = None,
           more: Callable[[int], list[tuple[list[int], int]]] | None = None,
           limits: Sequence[int] | None = None) -> list[Decoded]:
    """Every row's answer, at most `batch_size` rows (default: all) decoding at once, longest prompts first,
    waiting prompts refilling the batch as rows finish (`prefix`: tokens every row shares, run once).
    `on_step(n)`: n tokens were produced; `on_row(i, answer)`: row i finished. `more(n)`: up to n rows that
    arrived since (a server's new requests), with each one's limit, asked for whenever the batch has room and no
    given row is waiting; they must begin with the same `prefix` tokens, and are numbered after the rows before
    them. `limits`: each given row's own limit on new tokens (at most `max_new_tokens`, which sizes the cache)."""
    if not rows:
        return []
    rows = list(rows)
    size = max(1, batch_size or len(rows))
    waiting = deque(sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i)))
    tokens: list[list[int]] = [[] for _ in rows]
    answers: list[Decoded | None] = [None] * len(rows)
    cap = [max_new_tokens] * len(rows) if limits is None else list(limits)
    if len(cap) != len(rows) or not all(1 <= c <= max_new_tokens for c in cap):
        raise ValueError(f"limits must give each row a limit in 1..{max_new_tokens}")
    head = rows[0][:prefix]

    since = [0]  # steps since the last refill

    def take(room: int) -> list[int]:
        """Up to `room` rows to start once a quarter of the batch is free (a refill costs a prefill and a copy of
        the cache): the given ones first, then what `more` has. For `more` also whenever there is room and
        PATIENCE steps have passed since the last refill, so a request never waits long for a quarter to free."""
        since[0] += 1
        quarter = room >= max(1, size // 4)
        if waiting and not quarter:
            return []
        if not waiting and more is not None and room >= 1 and (quarter or since[0] >= PATIENCE):
            for row, limit in more(room)[:room]:
                if len(row) <= prefix or row[:prefix] != head:
                    raise ValueError(f"a row added to the stream does not begin with the {prefix} shared tokens")
                if not 1 <= limit <= max_new_tokens:
                    raise ValueError(f"a row added to the stream has limit {limit}, not in 1..{max_new_tokens}")
                waiting.append(len(rows))
                rows.append(row)
                tokens.append([])
                answers.append(None)
                cap.append(limit)
        new = [waiting.popleft() for _ in range(min(room, len(waiting)))]
        if new:
            since[0] = 0
        return new

    def advance(slots: list[int | None], nxt: torch.Tensor) -> None:
        """Each live slot's next token; a slot whose row finished becomes None."""
        produced = 0
        for j, tok in enumerate(nxt.tolist()):
            row = slots[j]
            if row is None:
                continue
            produced += 1
            tokens[row].append(tok)
            stop = tok in stop_ids or (stop_check is not None and stop_check(tokens[row]))
            if stop or len(tokens[row]) >= cap[row]:
                answers[row] = answer = Decoded(tokens[row], "stop" if stop else "length")
                slots[j] = None
                if on_row is not None:
                    on_row(row, answer)
        if on_step is not None:
            on_step(produced)

    first = take(size)
    cache, logits, last, col = prefill(fast, [rows[i] for i in first], prefix, max_new_tokens)
    slots: list[int | None] = list(first)
    nxt = sampler(logits)
    advance(slots, nxt)
    while True:
        live = [j for j, r in enumerate(slots) if r is not None]
        room = size - len(live)
        if new := take(room):
            c_new, l_new, last_new, col_new = prefill(fast, [rows[i] for i in new], prefix, max_new_tokens, cache)
            fresh: list[int | None] = list(new)
            n_new = sampler(l_new)
            advance(fresh, n_new)
            cache, col = merge(cache, live, col, c_new, col_new, max_new_tokens)
            idx = torch.tensor(live, dtype=torch.long)
            nxt, last = torch.cat([nxt[idx], n_new]), torch.cat([last[idx], last_new])
            slots = [slots[j] for j in live] + fresh
            continue  # rows that ended on their first token leave at the next pass
        if not live:
            break
        if 4 * (len(slots) - len(live)) >= len(slots):
            idx = torch.tensor(live, device=nxt.device)
            cache.select(idx, col)
            nxt, last = nxt[idx], last[idx]
            slots = [slots[j] for j in live]
        last = last + 1
        logits = fast.step(nxt, last, cache, col)
        col += 1
        nxt = sampler(logits)
        advance(slots, nxt)
    return [a for a in answers if a is not None]
