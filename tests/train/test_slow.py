"""Real SmolLM2-135M on real GSM8K rows: masks on the real ChatML tokenizer, and a 3-step run that reloads."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_masks_and_three_steps_on_gsm8k(smollm2, shared_data, tmp_path):
    import torch
    from peft import PeftModel

    from ptst.models import load_model, load_tokenizer
    from ptst.train import TrainConfig, run
    from ptst.train.encode import build_train_set

    cfg = TrainConfig(model=smollm2, data="gsm8k", template="chat:vanilla", data_dir=str(shared_data), limit=6,
                      epochs=1, batch_size=2, max_len=512, save_every=2)
    tok = load_tokenizer(smollm2)
    data = build_train_set(cfg, tok)
    rows = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()]
    answers = {r["answer"] for r in rows}
    for e in data.examples:
        trained = tok.decode(e.input_ids[e.start:])
        assert trained.endswith("<|im_end|>") and trained[: -len("<|im_end|>")] in answers
        assert tok.decode(e.input_ids[: e.start]).endswith("<|im_start|>assistant\n")
        assert "You are a helpful AI assistant named SmolLM" not in tok.decode(e.input_ids)  # chat:vanilla drops it
    out = run(cfg, tmp_path / "run").path
    spec = json.loads((out / "spec.json").read_text())
    assert spec["steps"] == 3 and spec["data"]["name"] == "gsm8k" and spec["data"]["examples"] == 6
    assert spec["base_model_id"] == "smollm2-135m"
    base = load_model(smollm2, dtype="fp32")
    model = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    ids = tok("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()
