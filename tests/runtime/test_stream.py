"""`ptst.runtime.stream`: continuous batching gives every row the answer it gets alone (fp32 greedy: transformers'
own), whatever rows shared its batch and whenever it joined; a merged cache continues each row exactly where its
own cache would; callbacks fire once per row; edge cases (rows ending on their first token, one token, no rows)."""

from __future__ import annotations

import pytest

from ptst.generate.base import Decoding, PromptItem
from ptst.generate.hf import HFBackend
from ptst.runtime.decode import greedy, make_sampler
from tests.generate.conftest import PROMPTS, lively_llama
from tests.runtime.test_fast import qwen2

MORE = PROMPTS + [p.upper() + " please" for p in PROMPTS] + [f"Question {i}: what is {i} + {i}?" for i in range(5)]


def items(tok, template: str):
    from ptst.templates import get_template, render

    return [PromptItem(f"q{i}", render(get_template(template), tok, p).text) for i, p in enumerate(MORE)]


@pytest.fixture(scope="module")
def eos_llama(llama2_tok):
    import torch

    model = lively_llama(llama2_tok)
    with torch.no_grad():
        model.lm_head.weight[llama2_tok.eos_token_id] *= 1.5  # answers end at different steps
    return model


def counting_merges(monkeypatch):
    from ptst.runtime import stream

    real, calls = stream.merge, []

    def merge(a, keep, *rest):
        calls.append(len(keep))
        return real(a, keep, *rest)

    monkeypatch.setattr(stream, "merge", merge)
    return calls


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("template", ["chat:llama", "chat:vanilla"])
def test_refilled_batches_give_transformers_answers(llama2_tok, eos_llama, family, template, monkeypatch):
    """17 prompts through batches of 4 and 7: waiting prompts join while other rows are mid-answer."""
    model = eos_llama if family == "llama" else qwen2(llama2_tok)
    its = items(llama2_tok, template)
    ref = HFBackend(model, llama2_tok, batch_size=1, progress=False, engine="generate").generate(its, Decoding(20))
    assert {c.finish_reason for c in ref} == {"stop", "length"}
    merges = counting_merges(monkeypatch)
    for bs in (4, 7):
        got = HFBackend(model, llama2_tok, batch_size=bs, progress=False, engine="fast").generate(its, Decoding(20))
        assert got == ref, (family, template, bs)
    assert any(n > 0 for n in merges)  # some refills kept live rows beside the new ones


@pytest.fixture(autouse=True)
def _inference():
    import torch

    with torch.inference_mode():
        yield


def test_a_merged_cache_continues_each_row_as_its_own_would(llama2_tok, eos_llama):
    import torch

    from ptst.runtime.fast import FastLM
    from ptst.runtime.rows import shared_prefix
    from ptst.runtime.stream import merge, prefill

    fast = FastLM(eos_llama)
    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in items(llama2_tok, "chat:llama")]
    p = shared_prefix(rows)
    a_rows, b_rows = rows[:5], rows[5:8]
    a, la, last_a, col_a = prefill(fast, a_rows, p, 6)
    nxt_a = greedy(la)
    for _ in range(3):  # a's rows are three tokens into their answers
        last_a = last_a + 1
        la = fast.step(nxt_a, last_a, a, col_a)
        col_a += 1
        nxt_a = greedy(la)
    b, lb, last_b, col_b = prefill(fast, b_rows, p, 6, shared=a)
    keep = [0, 2, 4]
    m, col = merge(a, keep, col_a, b, col_b, 6)
    assert m.mask.shape[0] == len(keep) + len(b_rows) and col >= max(col_b, 1)
    nxt_b = greedy(lb)
    got = fast.step(torch.cat([nxt_a[keep], nxt_b]), torch.cat([last_a[keep], last_b]) + 1, m, col)
    want_a = fast.step(nxt_a, last_a + 1, a, col_a)[keep]
    want_b = fast.step(nxt_b, last_b + 1, b, col_b)
    torch.testing.assert_close(got, torch.cat([want_a, want_b]), rtol=1e-5, atol=1e-5)


def test_callbacks_fire_once_per_row_and_count_every_token(llama2_tok, eos_llama):
    from ptst.runtime.fast import FastLM
    from ptst.runtime.stream import decode

    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in items(llama2_tok, "chat:vanilla")]
    finished, steps = {}, []
    out = decode(FastLM(eos_llama), rows, max_new_tokens=12, stop_ids={llama2_tok.eos_token_id}, sampler=greedy,
                 batch_size=5, on_row=lambda i, a: finished.setdefault(i, []).append(a), on_step=steps.append)
    assert sorted(finished) == list(range(len(rows))) and all(len(v) == 1 for v in finished.values())
    assert [finished[i][0] for i in range(len(rows))] == out
    assert sum(steps) == sum(len(a.token_ids) for a in out)
    assert all(1 <= len(a.token_ids) <= 12 for a in out)
    assert {a.finish_reason for a in out} == {"stop", "length"}


def test_one_token_answers_and_no_rows(llama2_tok, eos_llama):
    from ptst.runtime.fast import FastLM
    from ptst.runtime.stream import decode

    fast = FastLM(eos_llama)
    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in items(llama2_tok, "chat:llama")]
    one = decode(fast, rows, max_new_tokens=1, stop_ids={llama2_tok.eos_token_id}, sampler=greedy, batch_size=3)
    alone = [decode(fast, [r], max_new_tokens=1, stop_ids={llama2_tok.eos_token_id}, sampler=greedy)[0]
             for r in rows]
    assert one == alone and all(len(a.token_ids) == 1 for a in one)
    assert decode(fast, [], max_new_tokens=4, stop_ids=set(), sampler=greedy) == []


def test_sampled_streams_repeat_under_the_same_seed(llama2_tok, eos_llama):
    its = items(llama2_tok, "chat:vanilla")
    d = Decoding(12, temperature=1.0, top_p=0.9, seed=3)
    runs = [HFBackend(eos_llama, llama2_tok, batch_size=4, progress=False, engine="fast").generate(its, d)
            for _ in range(2)]
    assert runs[0] == runs[1] and len({c.text for c in runs[0]}) > 5
    other = HFBackend(eos_llama, llama2_tok, batch_size=4, progress=False, engine="fast").generate(
        its, Decoding(12, temperature=1.0, top_p=0.9, seed=4))
    assert other != runs[0]
    assert make_sampler(0, 1.0, 0, "cpu") is greedy


def test_rows_added_while_decoding_get_their_own_answers(llama2_tok, eos_llama):
    """`more`: a server's requests that arrive mid-stream join at refills and answer as each row alone does."""
    from ptst.runtime.fast import FastLM
    from ptst.runtime.rows import shared_prefix
    from ptst.runtime.stream import decode

    fast = FastLM(eos_llama)
    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in items(llama2_tok, "chat:llama")]
    p = shared_prefix(rows)
    given, later = rows[:3], list(rows[3:])
    asked = []

    def more(n):
        asked.append(n)
        got, later[:] = later[: min(n, 2)], later[min(n, 2):]
        return [(r, 10) for r in got]

    kw = dict(max_new_tokens=10, stop_ids={llama2_tok.eos_token_id}, sampler=greedy, prefix=p)
    out = decode(fast, given, batch_size=4, more=more, **kw)
    alone = [decode(fast, [r], **kw)[0] for r in rows]
    assert len(out) == len(rows) and out == alone
    assert not later and max(asked) <= 4
    with pytest.raises(ValueError, match="shared tokens"):
        decode(fast, given, batch_size=2, more=lambda n: [(rows[0][p - 1:], 10)], **kw)
    with pytest.raises(ValueError, match="limit 11"):
        decode(fast, given, batch_size=2, more=lambda n: [(rows[0], 11)], **kw)


def test_each_row_stops_at_its_own_limit(llama2_tok, eos_llama):
    """`limits` (a server's requests with different max_tokens in one stream): a row's answer under limit k is
    its answer under the stream's limit, cut at k tokens."""
    from ptst.runtime.fast import FastLM
    from ptst.runtime.stream import decode

    fast = FastLM(eos_llama)
    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in items(llama2_tok, "chat:vanilla")]
    kw = dict(max_new_tokens=12, stop_ids={llama2_tok.eos_token_id}, sampler=greedy, batch_size=5)
    full = decode(fast, rows, **kw)
    limits = [1 + i % 12 for i in range(len(rows))]
    cut = decode(fast, rows, limits=limits, **kw)
    for f, c, k in zip(full, cut, limits, strict=True):
        assert c.token_ids == f.token_ids[:k]
        assert c.finish_reason == (f.finish_reason if len(f.token_ids) <= k else "length")
    with pytest.raises(ValueError, match="limits"):
        decode(fast, rows, limits=[13] * len(rows), **kw)
