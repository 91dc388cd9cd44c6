"""The vLLM backend: a clear error without vLLM, and its wiring checked against a scripted stand-in module."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from ptst.errors import PtstError
from ptst.generate.base import Decoding, PromptItem
from ptst.generate.vllm_backend import VLLMBackend


def test_fails_cleanly_without_vllm(monkeypatch, lively_dir, data_spec, tmp_path):
    from ptst.generate import GenerateConfig, run

    monkeypatch.setitem(sys.modules, "vllm", None)  # absent even where it is installed
    with pytest.raises(PtstError, match=r"needs vLLM.*pip install"):
        VLLMBackend(str(lively_dir), tokenizer=None)
    cfg = GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", backend="vllm")
    with pytest.raises(PtstError, match="needs vLLM"):
        run(cfg, tmp_path / "v.jsonl", progress=False)


@pytest.fixture
def fake_vllm(monkeypatch):
    """Records what ptst hands vLLM; answers each prompt with its token count."""
    calls: dict = {"generate": []}

    class LLM:
        def __init__(self, **kw):
            calls["engine"] = kw

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            calls["generate"].append((prompts, params, lora_request))
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"n={len(p['prompt_token_ids'])} END more",
                                                             finish_reason="length", token_ids=[1, 2, 3])])
                    for p in prompts]

    vllm = types.ModuleType("vllm")
    vllm.LLM = LLM
    vllm.SamplingParams = lambda **kw: kw
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, id_, path: (name, id_, path)
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)
    return calls


def test_token_ids_lora_and_sampling_params(fake_vllm, lively_dir, llama2_tok, tmp_path):
    from tests.generate.conftest import save_lora

    adapter = save_lora(lively_dir, tmp_path / "adapter")
    backend = VLLMBackend(str(lively_dir), llama2_tok, adapter=str(adapter), dtype="bf16", chunk_size=2)
    assert fake_vllm["engine"]["enable_lora"] and fake_vllm["engine"]["max_lora_rank"] == 8
    assert fake_vllm["engine"]["dtype"] == "bfloat16"
    items = [PromptItem(f"q{i}", f"<s>[INST] question {i} [/INST]") for i in range(3)]
    seen = {}
    out = backend.generate(items, Decoding(max_new_tokens=7, stop=("END",)), on_done=lambda i, c: seen.setdefault(i, c))
    assert len(fake_vllm["generate"]) == 2  # chunks of 2
    prompts, params, lora = fake_vllm["generate"][0]
    ids = llama2_tok(items[0].rendered, add_special_tokens=False)["input_ids"]
    assert prompts[0] == {"prompt_token_ids": ids} and ids.count(llama2_tok.bos_token_id) == 1  # no second BOS
    assert (params["temperature"], params["max_tokens"], params["stop"], params["seed"]) == (0.0, 7, ["END"], None)
    assert llama2_tok.eos_token_id in params["stop_token_ids"]
    assert lora == ("ptst-adapter", 1, str(adapter.resolve()))
    assert [c.text for c in out] == [f"n={len(ids)} "] * 3 and {c.finish_reason for c in out} == {"stop"}
    assert sorted(seen) == [0, 1, 2] and seen[2] is out[2]
