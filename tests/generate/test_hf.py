"""HFBackend: determinism across runs and batch sizes, input order, stops, max_new_tokens, sampling seeds."""

from __future__ import annotations

import copy

import pytest

from ptst.errors import PtstError
from ptst.generate.base import Decoding, PromptItem
from ptst.generate.hf import HFBackend, length_sorted_batches
from ptst.generate.stops import stop_token_ids, truncate_at_stop
from tests.generate.conftest import PROMPTS


def items_for(tok, prompts=PROMPTS):
    from ptst.templates import get_template, render

    t = get_template("chat:llama")
    return [PromptItem(f"q{i}", render(t, tok, p).text) for i, p in enumerate(prompts)]


@pytest.fixture(params=["fast", "loop", "generate"])
def engine(request) -> str:
    """Every behaviour holds for ptst's Llama-family decoding step, its general decoding loop and the transformers
    generate() fallback."""
    return request.param


def texts(backend, items, **dec):
    return [c.text for c in backend.generate(items, Decoding(**dec))]


def test_length_sorted_batches_cover_every_index_once_longest_first():
    batches = length_sorted_batches([3, 9, 1, 9, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_a_plain_llama_reuses_a_shared_prefix(lively):
    """The prefix the chat:llama prompts share (tests/runtime/test_decode.py) is reused for a plain KV cache."""
    model, tok = lively
    assert HFBackend(model, tok).prefix_cache


def test_greedy_is_deterministic_across_runs_batch_sizes_and_engines(lively):
    """With fp32 and correct left padding (masks and position ids), a prompt's greedy answer does not depend on
    which other prompts share its batch: bs 1, 3, 4 and 16 must agree token for token on this model, and ptst's
    loop (which drops finished rows from the batch) must match transformers' generate(). (On real models
    batching can flip a near-tie token now and then; bench_generate.py measures that agreement.)"""
    model, tok = lively
    items = items_for(tok)
    ref = HFBackend(model, tok, batch_size=1, progress=False, engine="generate").generate(items, Decoding(24))
    assert len({c.text for c in ref}) == len(ref), "the model must give distinct answers, or this proves nothing"
    assert {c.finish_reason for c in ref} == {"stop", "length"}, "some rows must end early, others run on"
    for engine, prefix_cache, packed in (("fast", True, False), ("fast", False, False), ("loop", True, True),
                                         ("loop", True, False), ("loop", False, True), ("loop", False, False),
                                         ("generate", False, False)):
        for bs in (1, 3, 4, 16):
            backend = HFBackend(model, tok, batch_size=bs, progress=False, engine=engine, prefix_cache=prefix_cache,
                                packed_prefill=packed)
            assert backend.packed_prefill == packed
            assert backend.generate(items, Decoding(24)) == ref, (engine, prefix_cache, packed, bs)


def test_outputs_come_back_in_input_order_and_on_done_reports_indices(engine, lively):
    model, tok = lively
    items = items_for(tok)
    backend = HFBackend(model, tok, batch_size=2, progress=True, engine=engine)  # the bar must not break it
    seen: dict[int, str] = {}
    out = backend.generate(items, Decoding(max_new_tokens=12), on_done=lambda i, c: seen.setdefault(i, c.text))
    singles = [backend.generate([it], Decoding(max_new_tokens=12))[0].text for it in items]
    assert [c.text for c in out] == singles
    assert seen == dict(enumerate(singles))
    rev = backend.generate(items[::-1], Decoding(max_new_tokens=12))
    assert [c.text for c in rev] == singles[::-1]


def test_max_new_tokens_is_respected(engine, lively):
    model, tok = lively
    backend = HFBackend(model, tok, batch_size=4, progress=False, engine=engine)
    items = items_for(tok)
    short = backend.generate(items, Decoding(max_new_tokens=5))
    longer = backend.generate(items, Decoding(max_new_tokens=20))
    assert any(c.finish_reason == "length" for c in short)
    for s, g in zip(short, longer, strict=True):
        assert s.n_tokens is not None and g.n_tokens is not None
        assert s.n_tokens <= 5 and s.finish_reason == ("length" if s.n_tokens == 5 else "stop")
        assert s.n_tokens == min(g.n_tokens, 5)
        # greedy: the capped answer starts the longer one (a cut multi-byte character decodes as U+FFFD)
        assert g.text.startswith(s.text.rstrip("\ufffd"))


def test_stops_at_an_end_of_turn_token(engine, lively):
    """Make a token the model really emits at step k an EOS: the answer must end there, reported as 'stop'."""
    model, tok = lively
    item = items_for(tok)[1]
    full = HFBackend(model, tok, progress=False, engine=engine)
    ids = tok(full.generate([item], Decoding(max_new_tokens=16))[0].text, add_special_tokens=False)["input_ids"]
    k = 5
    m2 = copy.deepcopy(model)
    m2.generation_config.eos_token_id = [tok.eos_token_id, ids[k]]
    k = ids.index(ids[k])  # its first occurrence is where generation must stop
    c = HFBackend(m2, tok, progress=False, engine=engine).generate([item], Decoding(max_new_tokens=16))[0]
    assert (c.finish_reason, c.n_tokens) == ("stop", k + 1)
    assert c.text == tok.decode(ids[:k], skip_special_tokens=True)


def test_stop_strings_truncate_the_answer(engine, lively):
    model, tok = lively
    backend = HFBackend(model, tok, batch_size=3, progress=False, engine=engine)
    items = items_for(tok)
    full = backend.generate(items, Decoding(max_new_tokens=20))
    target = full[3].text
    stop = target[6:9]
    cut = target.find(stop)
    out = backend.generate(items, Decoding(max_new_tokens=20, stop=(stop,)))
    assert out[3].text == target[:cut] and out[3].finish_reason == "stop"
    assert out[3].n_tokens is not None and out[3].n_tokens < 20
    for f, o in zip(full, out, strict=True):  # every other answer is its unstopped answer cut at the same string
        assert o.text == truncate_at_stop(f.text, [stop])[0]


def test_sampling_is_seeded_and_leaves_the_callers_rng_alone(engine, lively):
    import torch

    model, tok = lively
    backend = HFBackend(model, tok, batch_size=3, progress=False, engine=engine)
    items = items_for(tok)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = texts(backend, items, max_new_tokens=12, temperature=1.0, seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert texts(backend, items, max_new_tokens=12, temperature=1.0, seed=7) == a
    assert texts(backend, items, max_new_tokens=12, temperature=1.0, seed=8) != a
    assert a != texts(backend, items, max_new_tokens=12)


def test_empty_prompt_and_bad_batch_size_are_clear_errors(lively):
    model, tok = lively
    with pytest.raises(PtstError, match="empty"):
        HFBackend(model, tok, progress=False).generate([PromptItem("x", "")], Decoding(max_new_tokens=2))
    with pytest.raises(PtstError, match="batch_size"):
        HFBackend(model, tok, batch_size=0)
    with pytest.raises(PtstError, match="engine"):
        HFBackend(model, tok, engine="fastest")
    assert HFBackend(model, tok).engine == "fast"  # a plain Llama on CPU: ptst.runtime.fast
    assert HFBackend(model, tok, progress=False).generate([], Decoding()) == []


def test_stop_token_ids_include_end_of_turn_tokens(llama2_tok, chatml_tok):
    im_end = chatml_tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stop_token_ids(chatml_tok)
    assert llama2_tok.eos_token_id in stop_token_ids(llama2_tok)
    assert chatml_tok.convert_tokens_to_ids("<pad>") not in stop_token_ids(chatml_tok)


def feeding(later):
    """A `more` for HFBackend.generate: items from the front of `later` (popped as taken) while `accept` takes
    them, as ptst serve's batcher gives its waiting requests."""

    def more(n, accept):
        got = []
        while later and len(got) < n and accept(later[0]):
            got.append(later.pop(0))
        return got

    return more


def test_items_added_while_generating_are_answered_after_the_given_ones(lively):
    """`more` (a server's requests arriving mid-call): items with the stream's shared prefix join it and get the
    answer each gets alone; the first without it (another template) is refused and ends the take."""
    from ptst.templates import get_template, render

    model, tok = lively
    llama = [PromptItem(f"l{i}", render(get_template("chat:llama"), tok, p).text) for i, p in enumerate(PROMPTS)]
    plain = PromptItem("v0", render(get_template("chat:vanilla"), tok, PROMPTS[1]).text)
    later = [*llama[3:5], plain, llama[5]]
    backend = HFBackend(model, tok, batch_size=3, progress=False)
    assert backend.admits_more and not HFBackend(model, tok, engine="loop").admits_more

    seen = []
    out = backend.generate(llama[:3], Decoding(12), on_done=lambda i, c: seen.append(i), more=feeding(later))
    alone = [backend.generate([it], Decoding(12))[0] for it in llama[:5]]
    assert out == alone and sorted(seen) == list(range(5))
    assert later == [plain, llama[5]]  # not overtaken: they wait for a call of their own


def test_a_prefix_hint_lets_a_one_row_stream_share_the_template_with_later_rows(lively):
    """A server's stream that starts with one request still runs the template's prefix once, and later
    requests join it; a row that does not begin with the hint falls back to the rows' common prefix."""
    from ptst.serve.app import template_prefix
    from ptst.templates import get_template, render

    model, tok = lively
    t = get_template("chat:llama")
    llama = [PromptItem(f"l{i}", render(t, tok, p).text) for i, p in enumerate(PROMPTS)]
    backend = HFBackend(model, tok, batch_size=2, progress=False)
    backend.prefix_hint = template_prefix(t, tok)
    rows = backend.encode(llama)
    assert backend._prefix(rows[:1]) == len(backend.prefix_hint) >= 8
    assert backend._prefix([rows[0][len(backend.prefix_hint) - 1:]]) == 0  # a one-row stream without it
    later = list(llama[1:])

    out = backend.generate(llama[:1], Decoding(12), more=feeding(later))
    assert not later and out == [backend.generate([it], Decoding(12))[0] for it in llama]


def test_per_item_limits_cut_each_answer_and_need_the_stream(lively):
    model, tok = lively
    its = items_for(tok)
    backend = HFBackend(model, tok, batch_size=4, progress=False)
    full = backend.generate(its, Decoding(12))
    caps = {it.id: 1 + 3 * i % 12 for i, it in enumerate(its)}
    got = backend.generate(its, Decoding(12), limit=lambda it: caps[it.id])
    for it, f, g in zip(its, full, got, strict=True):
        assert g.n_tokens == min(caps[it.id], f.n_tokens) and f.text.startswith(g.text)
    with pytest.raises(PtstError, match="per-item limits"):
        HFBackend(model, tok, progress=False, engine="loop").generate(its, Decoding(12), limit=lambda it: 4)
