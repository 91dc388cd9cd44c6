"""The training loop on the tiny model: learning, what changes and what must not, reload, accumulation, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ptst.train import LoraConfig, run
from ptst.train.runner import base_ref


def train_in_memory(cfg, out: Path):
    """What `run` does, keeping the trained model object: (model, tokenizer, loop result)."""
    from accelerate import Accelerator

    from ptst.models import load_tokenizer
    from ptst.train.encode import build_train_set
    from ptst.train.loop import train_loop
    from ptst.train.model import load_trainable, resolve_precision

    tok = load_tokenizer(cfg.model)
    data = build_train_set(cfg, tok)
    precision = resolve_precision(cfg.precision, "cpu")
    lm = load_trainable(cfg, precision, base_ref(cfg.model))
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    out.mkdir(parents=True, exist_ok=True)
    result = train_loop(cfg, data, lm, out, Accelerator(cpu=True), precision, tok.pad_token_id)
    return lm, tok, result, before


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_loss_falls_over_30_steps_on_a_repeated_set(make_cfg, learnable_model_dir, tmp_path):
    from tests.train.conftest import arithmetic_rows, write_rows

    data = write_rows(tmp_path / "four.jsonl", arithmetic_rows(4))
    cfg = make_cfg(model=str(learnable_model_dir), data=f"jsonl:{data}", epochs=30, schedule="constant")
    ls = losses(run(cfg, tmp_path / "run").path)
    assert len(ls) == 30
    assert sum(ls[-5:]) / 5 < 0.75 * sum(ls[:5]) / 5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_lora_parameter_changes_and_every_base_weight_is_bit_identical(make_cfg, tmp_path, precision):
    from transformers import AutoModelForCausalLM

    cfg = make_cfg(epochs=3, precision=precision)
    lm, _, result, before = train_in_memory(cfg, tmp_path / "run")
    assert result.steps == 9
    lora = {n: p for n, p in lm.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    for n, p in lora.items():
        assert (p.detach() != before[n]).all(), f"{n} has entries that never moved"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    fresh = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).state_dict()
    base = {n.replace("base_model.model.", "", 1).replace(".base_layer", ""): p
            for n, p in lm.named_parameters() if "lora_" not in n}
    assert set(base) <= set(fresh) and len(base) >= len(fresh) - 1  # lm_head is tied to the embeddings
    for n, p in base.items():
        assert not p.requires_grad and p.dtype == dtype and torch.equal(p.detach(), fresh[n]), n


def test_saved_adapter_reloads_with_plain_peft_to_the_same_logits(make_cfg, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ptst.train.model import save_final

    cfg = make_cfg(precision="fp32")
    lm, tok, _, _ = train_in_memory(cfg, tmp_path / "run")
    save_final(lm, tok, tmp_path / "run", full=False)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(cfg.model),
                                         str(tmp_path / "run" / "adapter")).eval()
    ids = tok("<s>[INST] What is 3 plus 3? [/INST]", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want, got = lm.eval()(input_ids=ids).logits, reloaded(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(cfg.model)(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not torch.allclose(plain, want)  # the adapter does something
    assert json.loads((tmp_path / "run/adapter/adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(Path(cfg.model).resolve())


def test_gradient_accumulation_matches_one_big_batch(make_cfg, tmp_path):
    common = dict(epochs=1, group_by_length=False, precision="fp32", lora=LoraConfig(dropout=0.0))
    big, _, r1, _ = train_in_memory(make_cfg(batch_size=4, grad_accum=1, **common), tmp_path / "a")
    acc, _, r2, _ = train_in_memory(make_cfg(batch_size=2, grad_accum=2, **common), tmp_path / "b")
    assert r1.steps == r2.steps == 3
    assert r1.progress.last_loss == pytest.approx(r2.progress.last_loss, rel=1e-5)
    for (n, p), (_, q) in zip(big.named_parameters(), acc.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)


def test_resume_after_a_kill_continues_the_same_trajectory(make_cfg, tmp_path, monkeypatch):
    import ptst.train.loop as loop
    from ptst.models import adapter_hash

    cfg = make_cfg(epochs=4, save_every=3, precision="auto")  # 12 steps; checkpoints at 3, 6, 9
    straight = run(cfg, tmp_path / "straight").path

    real, calls = loop._one_step, {"n": 0}

    def dies_at_step_8(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "_one_step", dies_at_step_8)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "resumed")
    monkeypatch.setattr(loop, "_one_step", real)
    out = tmp_path / "resumed"
    assert not (out / "spec.json").exists() and (out / "checkpoints/step-6").is_dir()
    assert len(losses(out)) == 7
    run(cfg, out, resume=True)
    spec_a, spec_b = (json.loads((d / "spec.json").read_text()) for d in (straight, out))
    assert spec_b["resumed_from_step"] == 6 and spec_a["resumed_from_step"] is None
    assert adapter_hash(out / "adapter") == adapter_hash(straight / "adapter") == spec_b["adapter_sha256"]
    assert spec_b["final_loss"] == spec_a["final_loss"]
    assert losses(out) == losses(straight)  # the re-done step 7 is logged once, with the same loss
    assert [r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())] == \
        list(range(1, 13))


def test_full_fine_tuning_writes_a_loadable_model(make_cfg, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = make_cfg(full=True, epochs=1, lr=1e-3)
    out = run(cfg, tmp_path / "full").path
    spec = json.loads((out / "spec.json").read_text())
    assert spec["method"] == "full" and spec["adapter"] is None and spec["model_dir"] == "model"
    assert not (out / "adapter").exists()
    trained = AutoModelForCausalLM.from_pretrained(out / "model")
    AutoTokenizer.from_pretrained(out / "model")
    base = AutoModelForCausalLM.from_pretrained(cfg.model).state_dict()
    changed = [n for n, p in trained.state_dict().items() if not torch.equal(p, base[n])]
    assert len(changed) == len(base)  # full fine-tuning moves every tensor


def test_two_process_ddp_equals_one_process_accumulation(tiny_model_dir, data_file, tmp_path):
    """`torchrun` (gloo on CPU) with 2 processes x batch 2 takes the same steps as 1 process x batch 2 x accum 2:
    the token-level loss normalisation makes the averaged gradients identical."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    common = ["--model", str(tiny_model_dir), "--data", f"jsonl:{data_file}", "--template", "chat:vanilla",
              "--epochs", "2", "--save-every", "0", "--no-progress", "--lr", "1e-2", "--batch-size", "2",
              "precision=fp32", "lora.dropout=0.0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `python -m torch.distributed.run` is `torchrun`, found without the venv's bin/ on PATH (as under `make test`)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "ptst",
                          "train", *common,
                          "--out", str(tmp_path / "ddp")], env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "ptst", "train", *common, "--grad-accum", "2",
                          "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    spec = json.loads((tmp_path / "ddp" / "spec.json").read_text())
    assert spec["hyperparameters"]["world_size"] == 2 and spec["hyperparameters"]["effective_batch_size"] == 4
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "one"), rel=1e-6)
    a, b = (load_file(str(tmp_path / d / "adapter" / "adapter_model.safetensors")) for d in ("ddp", "one"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
