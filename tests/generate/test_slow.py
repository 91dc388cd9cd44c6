"""Real SmolLM2-135M answering a few AdvBench prompts under the PTST test template (slow)."""

from __future__ import annotations

import json

import pytest

from ptst.generate import Decoding, GenerateConfig, run


@pytest.mark.slow
def test_smollm2_answers_advbench_under_chat_llama(smollm2, shared_data, tmp_path):
    cfg = GenerateConfig(model=smollm2, data="advbench", data_dir=str(shared_data), limit=4, template="chat:llama",
                         batch_size=4, decoding=Decoding(max_new_tokens=32))
    out = run(cfg, tmp_path / "advbench.jsonl", progress=False).path
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 4
    for r in recs:
        assert r["prompt"] and r["model"] == "smollm2-135m" and r["meta"]["dataset"] == "advbench"
        assert r["answer"].strip(), "SmolLM2 should say something to every prompt"
        assert "<|im_end|>" not in r["answer"] and "<|im_start|>" not in r["answer"]
        assert 1 <= r["n_tokens"] <= 32
    # resumable: cut the last record, rerun, and only that one is regenerated (alone in its batch now, so its
    # tokens may differ from the batch-of-4 answer on real weights; bench_generate.py measures how often)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]))
    run(cfg, out, progress=False)
    again = out.read_text().splitlines(keepends=True)
    assert again[:3] == lines[:3] and json.loads(again[3])["id"] == recs[3]["id"]
