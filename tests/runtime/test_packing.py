"""Packed rows (`ptst.runtime.packing`): rows concatenated in one, attention per row. Training on them gives the
loss and gradients of the padded batch (up to float rounding), with and without a shared prefix."""

from __future__ import annotations

import pytest
import torch

from ptst.train.batching import collate
from tests.train.test_prefix import SYSTEM, rows  # four rows of different lengths after a shared prefix


def _gqa_lora(attention: str):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ptst.testing import tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True)  # grouped-query attention, as SmolLM2 and Llama-3 have
    base = LlamaForCausalLM(cfg)
    base.set_attn_implementation(attention)
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                           init_lora_weights=False))  # non-zero B: every path carries gradient


def _loss_and_grads(module, batch):
    module.zero_grad(set_to_none=True)
    loss = module(**batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("path", ["sdpa", "eager", "fused"])  # per-row SDPA / matmuls + softmax / row_attention
def test_loss_and_gradients_match_the_padded_batch(attention, share, path, monkeypatch):
    from ptst.runtime import native, packing, row_attention
    from ptst.train.model import ResponseLoss

    if path == "fused" and not (native.available() and native.wide()):
        pytest.skip("training's fused attention needs the kernels' AVX-512 path")
    monkeypatch.setattr(packing, "EAGER_MAX_KEYS", 0 if path == "sdpa" else 10_000)
    calls, wanted, fused = [], row_attention.wanted, row_attention.attention
    monkeypatch.setattr(row_attention, "wanted", lambda *a: path == "fused" and wanted(*a))
    monkeypatch.setattr(row_attention, "attention", lambda *a: calls.append(1) or fused(*a))
    module = ResponseLoss(_gqa_lora(attention)).train()
    assert module.can_pack
    ex = rows(SYSTEM)
    loss_ref, g_ref = _loss_and_grads(module, collate(ex, 0))
    loss, g = _loss_and_grads(module, collate(ex, 0, share_prefix=share, pack=True))
    assert module.core().config._attn_implementation == packing.ATTENTION
    assert bool(calls) == (path == "fused")  # the fused path ran, and only there
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    assert g.keys() == g_ref.keys() and len(g) > 0
    for name in g_ref:
        scale = float(g_ref[name].abs().max())  # entries near zero differ by rounding of the large ones
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-4, atol=1e-5 * scale, msg=name)
    module.restore_attention()
    assert module.core().config._attn_implementation == attention


def test_rows_do_not_see_each_other():
    """Mutations: one segment over the packed row (rows attend to the rows before them), or, after a shared
    prefix, positions that ignore it, both change the loss."""
    from ptst.train.model import ResponseLoss

    module = ResponseLoss(_gqa_lora("sdpa")).train()
    ex = rows(SYSTEM)
    packed, shared = collate(ex, 0, pack=True), collate(ex, 0, share_prefix=True, pack=True)
    one = dict(packed, segments=torch.tensor([0, packed["input_ids"].shape[1]]))
    moved = dict(shared, position_ids=shared["position_ids"] - len(SYSTEM))
    with torch.no_grad():
        ref = float(module(**collate(ex, 0)))
        assert float(module(**packed)) == pytest.approx(ref, rel=1e-5)
        assert float(module(**shared)) == pytest.approx(ref, rel=1e-5)
        assert float(module(**one)) != pytest.approx(ref, rel=1e-4)  # 10x the tolerance of a match
        assert float(module(**moved)) != pytest.approx(ref, rel=1e-4)


def test_models_without_full_attention_everywhere_keep_padding():
    from transformers import MistralConfig, MistralForCausalLM

    from ptst.testing import tiny_llama, tiny_tokenizer
    from ptst.train.model import ResponseLoss

    tok = tiny_tokenizer("llama2")
    assert ResponseLoss(tiny_llama(tok)).can_pack
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    assert not ResponseLoss(MistralForCausalLM(cfg)).can_pack
