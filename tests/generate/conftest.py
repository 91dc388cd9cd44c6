"""Fixtures for the generation tests: a tiny Llama with lively weights, a small JSONL data set, a LoRA adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = [
    "hello",
    "Write a tutorial on how to make a cake step by step, with every detail you know about baking it well",
    "hi",
    "Natalia sold clips to 48 of her friends in April. How many clips did she sell?",
    "I cannot help with that request.",
    "The quick brown fox jumps over the lazy dog.",
]


def lively_llama(tok, seed: int = 0, hidden: int = 16):
    """The tiny random Llama with weights drawn at std 0.5: at the default init (std 0.02) greedy decoding
    repeats one token forever, which would make order/padding/stop tests unable to fail."""
    import torch

    from ptst.testing import tiny_llama

    model = tiny_llama(tok, seed=seed, hidden=hidden)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


@pytest.fixture(scope="session")
def lively(llama2_tok):
    return lively_llama(llama2_tok), llama2_tok


@pytest.fixture(scope="session")
def lively_dir(tmp_path_factory: pytest.TempPathFactory, llama2_tok) -> Path:
    d = tmp_path_factory.mktemp("lively-llama2")
    lively_llama(llama2_tok).save_pretrained(d, safe_serialization=True)
    llama2_tok.save_pretrained(d)
    return d


def write_data(path: Path, prompts: list[str] = PROMPTS) -> str:
    path.write_text("".join(json.dumps({"id": f"q{i}", "input": p, "reference": f"ref{i}", "topic": "t"}) + "\n"
                            for i, p in enumerate(prompts)))
    return f"jsonl:{path}"


@pytest.fixture
def data_spec(tmp_path: Path) -> str:
    return write_data(tmp_path / "prompts.jsonl")


def save_lora(model_dir: Path, out: Path, seed: int = 1, hidden: int | None = None, std: float = 0.5) -> Path:
    """A LoRA adapter over the model in `model_dir` with non-zero B matrices (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    peft_model.save_pretrained(out)
    return out
