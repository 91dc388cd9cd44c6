"""Fixtures for the training tests: small JSONL fine-tuning sets and a tiny model that can actually learn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptst.train import LoraConfig, TrainConfig


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def arithmetic_rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"q{i}", "input": f"What is {i} plus {i}?", "response": f"The answer is {2 * i}."}
            for i in range(start, start + n)]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "arith.jsonl", arithmetic_rows(12))


@pytest.fixture
def safety_file(tmp_path: Path) -> Path:
    rows = [{"id": f"s{i}", "input": f"Tell me how to do harmful thing {i}.", "response": "I cannot help with that."}
            for i in range(6)]
    return write_rows(tmp_path / "refusals.jsonl", rows)


@pytest.fixture(scope="session")
def learnable_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama with 10x larger (still frozen, tied) embeddings, so LoRA can move the logits."""
    import torch

    from ptst.testing import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    model = tiny_llama(tok, seed=0)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(10)
    path = tmp_path_factory.mktemp("tiny-learnable")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def make_cfg(tiny_model_dir: Path, data_file: Path):
    """TrainConfig factory: a few fast steps on the tiny model by default."""

    def make(**kw) -> TrainConfig:
        base = dict(model=str(tiny_model_dir), data=f"jsonl:{data_file}", template="chat:vanilla", epochs=2,
                    batch_size=4, lr=1e-2, save_every=0, precision="fp32",
                    lora=LoraConfig(targets=("all-linear",)))
        base.update(kw)
        return TrainConfig(**base)

    return make
