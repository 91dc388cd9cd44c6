"""`ptst.runtime.fast`: the Llama-family decoding step gives transformers' own greedy answers in fp32, for Llama and
for a grouped-query Qwen2 with biased projections; its pieces (packed linear layers, the blockwise argmax, its own
prefill and the fallback through the model's forward) each equal what they replace. The engine's behaviour inside
`HFBackend` (order, stops, sampling, batch sizes) is tested with the other engines in tests/generate/test_hf.py."""

from __future__ import annotations

import pytest

from ptst.generate.base import Decoding, PromptItem
from ptst.generate.hf import HFBackend
from ptst.runtime.rows import shared_prefix
from tests.generate.conftest import PROMPTS, lively_llama


def lively(model, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 or name.endswith(".bias"):  # norm weights stay at 1
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.2))
    return model.eval()


def qwen2(tok):
    """A tiny Qwen2: 4 query heads over 2 key/value heads, biased q/k/v projections, untied embeddings."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = lively(Qwen2ForCausalLM(cfg))
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] *= 2.0  # some answers end early, others run to the limit
    return model


def rendered(tok, template: str = "chat:llama"):
    from ptst.templates import get_template, render

    return [PromptItem(f"q{i}", render(get_template(template), tok, p).text) for i, p in enumerate(PROMPTS)]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("template", ["chat:llama", "chat:vanilla"])
def test_fp32_answers_equal_transformers_generate(llama2_tok, family, template):
    """Token for token, with a shared safety prefix (chat:llama) and without one (chat:vanilla), at batch sizes
    where rows finish at different steps (the cache is compacted) and where each row is alone."""
    import torch

    model = lively_llama(llama2_tok) if family == "llama" else qwen2(llama2_tok)
    if family == "llama" and template == "chat:vanilla":
        with torch.no_grad():
            model.lm_head.weight[llama2_tok.eos_token_id] *= 1.5  # some answers end early, others run on
    items = rendered(llama2_tok, template)
    ref = HFBackend(model, llama2_tok, batch_size=1, progress=False, engine="generate").generate(items, Decoding(20))
    assert len({c.text for c in ref}) > 3 and {c.finish_reason for c in ref} == {"stop", "length"}
    for bs in (1, 6):
        fast = HFBackend(model, llama2_tok, batch_size=bs, progress=False, engine="fast")
        assert fast.engine == "fast"
        assert fast.generate(items, Decoding(20)) == ref, (family, template, bs)


def test_the_fallback_prefill_gives_the_same_answers(llama2_tok, monkeypatch):
    """Prompts too long for one padded score tensor go through the model's own forward (`prefill_hf`)."""
    from ptst.runtime import fast

    model = lively_llama(llama2_tok)
    items = rendered(llama2_tok)
    ref = HFBackend(model, llama2_tok, batch_size=6, progress=False, engine="fast").generate(items, Decoding(16))
    monkeypatch.setattr(fast, "PREFILL_SCORES_MAX", 0)
    real, calls = fast.prefill_hf, []
    monkeypatch.setattr(fast, "prefill_hf", lambda *a: calls.append(1) or real(*a))
    assert HFBackend(model, llama2_tok, batch_size=6, progress=False, engine="fast").generate(
        items, Decoding(16)) == ref
    assert calls

@pytest.mark.parametrize("with_prefix", [False, True])
def test_own_prefill_leaves_the_state_of_the_models_forward(llama2_tok, with_prefix):
    import torch

    from ptst.runtime import fast

    model = lively_llama(llama2_tok)
    tok = llama2_tok
    rows = [tok(it.rendered, add_special_tokens=False)["input_ids"] for it in rendered(tok)]
    prefix = shared_prefix(rows) if with_prefix else 0
    with torch.inference_mode():
        (c1, l1, last1, w1) = fast.prefill_hf(model, rows, prefix, 5)
        (c2, l2, last2, w2) = fast.FastLM(model).prefill(rows, prefix, 5)
    assert w1 == w2 and torch.equal(last1, last2) and torch.equal(c1.mask, c2.mask) and c1.prefix == c2.prefix
    torch.testing.assert_close(l2, l1, rtol=1e-4, atol=1e-4)
    real = (c1.mask[:, prefix:] == 0).repeat(model.config.num_key_value_heads, 1)  # head-major rows
    pairs = list(zip(c1.keys + c1.values, c2.keys + c2.values, strict=True))
    if prefix:
        pairs += list(zip(c1.prefix_keys + c1.prefix_values, c2.prefix_keys + c2.prefix_values, strict=True))
    for a, b in pairs:
        assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
        if a.shape[0] == real.shape[0]:
            a, b = a[real[:, : a.shape[1]]], b[real[:, : b.shape[1]]]
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_packed_linear_equals_f_linear_exactly(dtype):
    import torch
    import torch.nn.functional as F  # noqa: N812

    from ptst.runtime.fast import Linear

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(24, 40, generator=g).to(dt), torch.randn(8, 40, generator=g).to(dt)
    bias = torch.randn(8, generator=g).to(dt)
    lin = Linear([w1, w2], [None, bias], batch_hint=16)
    for m in (1, 7, 48):
        x = torch.randn(m, 40, generator=g).to(dt)
        want = torch.cat([F.linear(x, w1), F.linear(x, w2, bias)], dim=-1)
        assert torch.equal(lin(x), F.linear(x, torch.cat([w1, w2]), torch.cat([torch.zeros(24, dtype=dt), bias])))
        torch.testing.assert_close(lin(x), want)


def test_blockwise_argmax_is_argmax_ties_and_nan_included():
    import torch

    from ptst.runtime.decode import greedy

    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randint(-2, 3, (5, 8192), generator=g).to(torch.bfloat16)  # many ties: the first one wins
        assert torch.equal(greedy(x), x.argmax(-1))
    x = torch.randn(3, 8192, generator=g)
    x[1, 5000] = float("nan")
    assert torch.equal(greedy(x), x.argmax(-1))
    odd = torch.randn(2, 1000, generator=g)  # not a multiple of the block: plain argmax
    assert torch.equal(greedy(odd), odd.argmax(-1))


def test_what_the_fast_step_refuses(llama2_tok, tmp_path):
    """PEFT-wrapped models (merge first), sliding-window Mistral, and other families keep the general loop."""
    from peft import LoraConfig, get_peft_model
    from transformers import MistralConfig, MistralForCausalLM

    from ptst.errors import PtstError
    from ptst.runtime import fast

    model = lively_llama(llama2_tok)
    assert fast.supported(model)
    wrapped = get_peft_model(lively_llama(llama2_tok), LoraConfig(r=2, target_modules=["q_proj"]))
    assert not fast.supported(wrapped)
    assert HFBackend(wrapped, llama2_tok, progress=False).engine != "fast"
    with pytest.raises(PtstError, match="merge the adapter"):
        HFBackend(wrapped, llama2_tok, engine="fast")
    cfg = MistralConfig(vocab_size=len(llama2_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    assert not fast.supported(MistralForCausalLM(cfg))
    cfg.sliding_window = None
    assert fast.supported(MistralForCausalLM(cfg))


def bf16_llama(tok):
    """A lively tiny Llama in bf16."""
    import torch

    return lively_llama(tok, hidden=32).to(torch.bfloat16)


def test_half_precision_head_picks_the_fp32_argmax_where_bf16_logits_tie(llama2_tok):
    """The LM head's bf16 product rounds logits to 1/8 near 20, and its input to 8 bits; every token that could be
    the maximum is computed again in fp32, so greedy picks the fp32 argmax of the bf16 weights: on random rows, on
    rows where two tokens tie in bf16 but not in fp32, and on a row where rounding the input moves a cancelling
    sum by 2 (plain bf16 logits pick the wrong token in both; a window too narrow for the second fails)."""
    import torch

    from ptst.runtime.decode import greedy
    from ptst.runtime.fast import FastLM

    half = bf16_llama(llama2_tok)
    a, b, c, e, hidden = 5, 9, 213, 377, half.config.hidden_size
    with torch.no_grad():
        w = half.lm_head.weight
        w[a], w[b] = 1.0, 1.0  # token b is token a with one weight one bf16 step larger
        w[b, 0] = 1.0 + 2.0 ** -7
        w[c], w[e] = 0.0, 0.0  # e = 512 h0 - 508 h1: 5.95 in fp32, 4 once h0 = 1.0038 is rounded to 1; c = 5
        w[c, 1], w[e, 0], w[e, 1] = 5.0, 512.0, -508.0
    fast = FastLM(half)
    fast.head_block = 80  # five blocks of the 400 tokens: candidates found across blocks
    w = half.lm_head.weight.to(torch.float32)
    g = torch.Generator().manual_seed(0)
    tie = torch.full((4, hidden), 20.0 / hidden) * torch.tensor([1.0, 1.01, 0.99, 1.5])[:, None]
    cancel = torch.zeros(1, hidden)
    cancel[0, 0], cancel[0, 1] = 1.0038, 1.0
    rows = torch.cat([tie, cancel, torch.randn(200, hidden, generator=g) * torch.rand(200, 1, generator=g) * 8])
    want = (rows.double() @ w.double().T).argmax(-1)
    plain = fast.lm_head(rows.to(torch.bfloat16)).to(torch.float32)
    assert (greedy(plain)[:4] == a).all() and (want[:4] == b).all()  # the tie: plain bf16 picks the wrong token
    assert greedy(plain)[4] == c and want[4] == e  # the cancellation: likewise
    refined = fast._refine(plain.clone(), rows)
    assert torch.equal(greedy(refined), want)
    torch.testing.assert_close(refined[torch.arange(len(rows)), want], (rows @ w.T).max(-1).values)
    if fast.native is not None:  # the same on the fused kernels (ptst.runtime.native), whole rows at once
        from ptst.runtime.fused import head

        kernel = head(fast, rows)
        assert torch.equal(greedy(kernel), want) and torch.equal(greedy(FastLM(half, fused_kernels=False)._refine(
            plain.clone(), rows)), want)
        torch.testing.assert_close(kernel[torch.arange(len(rows)), want], (rows @ w.T).max(-1).values)
        torch.testing.assert_close(kernel, refined, rtol=1e-5, atol=1e-5)  # candidates: fp32 sums in other orders


def test_half_precision_engine_keeps_the_residual_stream_in_fp32(llama2_tok, monkeypatch):
    """In a bf16 model only the linear layers run in bf16: the residual stream that reaches the head is fp32, in
    the prefill and in the decoding step, and so are the logits greedy picks from. (How much closer to fp32 that
    keeps the answers is measured on SmolLM2 by benchmarks/bench_generate.py, docs/performance.md.)"""
    import torch

    from ptst.runtime import fast

    half = bf16_llama(llama2_tok)
    rows = [llama2_tok(it.rendered, add_special_tokens=False)["input_ids"] for it in rendered(llama2_tok)]
    seen: list[torch.dtype] = []
    real = fast.FastLM._head
    monkeypatch.setattr(fast.FastLM, "_head", lambda self, x: seen.append(x.dtype) or real(self, x))
    engine = fast.FastLM(half)
    with torch.inference_mode():
        cache, logits, last, col = engine.prefill(rows, shared_prefix(rows), 4)
        step = engine.step(logits.argmax(-1), last + 1, cache, col)
    assert engine.lm_head.weight.dtype == torch.bfloat16 and engine.lm_head.kind in ("onednn", "plain")
    assert seen == [torch.float32] * 3 and logits.dtype == step.dtype == torch.float32
