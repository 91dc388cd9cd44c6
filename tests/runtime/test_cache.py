"""KV-cache helpers (`ptst.runtime.cache`): the cache layout decides which savings the decoding loop may use."""

from __future__ import annotations

from ptst.runtime.cache import cache_arg, cache_kind


def test_cache_kind_tells_full_attention_from_sliding_windows(llama2_tok):
    from transformers import MistralConfig, MistralForCausalLM

    from ptst.testing import tiny_llama

    llama = tiny_llama(llama2_tok)
    assert cache_kind(llama) == "full"
    cfg = MistralConfig(vocab_size=len(llama2_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, sliding_window=8)
    assert cache_kind(MistralForCausalLM(cfg)) == "sliding"


def test_cache_arg_follows_the_forward_signature():
    class Renamed:
        def forward(self, input_ids, cache=None): ...

    class Wrapper:
        def forward(self, *args, **kwargs): ...

    assert cache_arg(Renamed()) == "cache"
    assert cache_arg(Wrapper()) == "past_key_values"  # a wrapper passing **kwargs on: the keyword every release takes
