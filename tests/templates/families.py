"""Test tokenizers for 16 real chat families: each model's official chat template (../shared/fixtures/chat-templates)
on a tiny byte-level BPE that carries the family's BOS/EOS and control tokens. No download.

`SPECIALS` lists the control tokens each family's tokenizer registers as special (those its template emits and that
end a turn); `ADD_BOS` says whether the real tokenizer adds BOS to a plain encode (it only matters in text mode).
`EOT` is the end-of-turn text a trained reply must end with, the golden answer for the loss-mask tests.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "chat-templates"

FAMILIES = {  # short name -> fixture file stem
    "llama-2": "meta-llama--Llama-2-7b-chat-hf",
    "llama-3": "meta-llama--Meta-Llama-3-8B-Instruct",
    "llama-3.1": "meta-llama--Llama-3.1-8B-Instruct",
    "llama-3.2": "meta-llama--Llama-3.2-3B-Instruct",
    "mistral-v0.1": "mistralai--Mistral-7B-Instruct-v0.1",
    "mistral-v0.2": "mistralai--Mistral-7B-Instruct-v0.2",
    "mistral-v0.3": "mistralai--Mistral-7B-Instruct-v0.3",
    "mixtral": "mistralai--Mixtral-8x7B-Instruct-v0.1",
    "qwen2.5": "Qwen--Qwen2.5-7B-Instruct",
    "qwen3": "Qwen--Qwen3-1.7B",
    "gemma-2": "google--gemma-2-2b-it",
    "gemma-3": "google--gemma-3-1b-it",
    "phi-3": "microsoft--Phi-3-mini-4k-instruct",
    "smollm2": "HuggingFaceTB--SmolLM2-135M-Instruct",
    "olmo-2": "allenai--OLMo-2-1124-13B-Instruct",
    "deepseek-r1": "deepseek-ai--DeepSeek-R1-Distill-Qwen-32B",
}
_LLAMA3 = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"]
_CHATML = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
SPECIALS: dict[str, list[str]] = {
    "llama-3": _LLAMA3, "llama-3.1": _LLAMA3, "llama-3.2": _LLAMA3,
    "mistral-v0.3": ["[INST]", "[/INST]"],
    "qwen2.5": _CHATML, "qwen3": _CHATML, "smollm2": _CHATML,
    "gemma-2": ["<start_of_turn>", "<end_of_turn>"], "gemma-3": ["<start_of_turn>", "<end_of_turn>"],
    "phi-3": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    "deepseek-r1": ["<｜User｜>", "<｜Assistant｜>"],
}
ADD_BOS = {"llama-2", "llama-3", "llama-3.1", "llama-3.2", "mistral-v0.1", "mistral-v0.2", "mistral-v0.3", "mixtral",
           "gemma-2", "gemma-3", "deepseek-r1"}
EOT = {
    "llama-2": " </s>", "mistral-v0.1": "</s>", "mistral-v0.2": "</s>", "mistral-v0.3": "</s>", "mixtral": "</s>",
    "llama-3": "<|eot_id|>", "llama-3.1": "<|eot_id|>", "llama-3.2": "<|eot_id|>",
    "qwen2.5": "<|im_end|>", "qwen3": "<|im_end|>", "smollm2": "<|im_end|>",
    "gemma-2": "<end_of_turn>", "gemma-3": "<end_of_turn>", "phi-3": "<|end|>", "olmo-2": "<|endoftext|>",
    "deepseek-r1": "<｜end▁of▁sentence｜>",
}
_CORPUS = [
    "Question: Natalia sold clips to 48 of her friends in April. How many clips did she sell? Answer: 72",
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe.",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "system user assistant model <<SYS>> <</SYS>> [INST] [/INST] ### Instruction: ### Response: 0123456789",
]


def available() -> bool:
    return (FIXTURES / "tokens.json").is_file()


def template_text(family: str) -> str:
    return (FIXTURES / f"{FAMILIES[family]}.jinja").read_text(encoding="utf-8")


def tokens(family: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((FIXTURES / "tokens.json").read_text(encoding="utf-8"))
    return dict(info[f"{FAMILIES[family]}.jinja"])


@cache
def tokenizer(family: str) -> Any:
    """A fast tokenizer with the family's official chat template, BOS/EOS and control tokens."""
    from ptst.testing import bpe_tokenizer

    tk = tokens(family)
    bos, eos = tk["bos_token"], tk["eos_token"]
    specials = sorted({s for s in (bos, eos, "<pad>", *SPECIALS.get(family, [])) if s})
    return bpe_tokenizer(_CORPUS, specials, 360, bos, eos, family in ADD_BOS, template_text(family))


def save(family: str, path: Path) -> Path:
    """The family's test tokenizer as a normal HF tokenizer directory (what `--model DIR` loads)."""
    tokenizer(family).save_pretrained(path)
    return path
