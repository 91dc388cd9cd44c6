"""The OpenVINO backend: a real export (optimum-intel) and real openvino_genai decoding of a tiny random Llama, checked
token for token against the HF backend in fp32, plus the refusals that need neither package.

The export and decoding tests need openvino-genai and optimum-intel, which pin an older transformers than ptst's own
venv: `make test-openvino` runs this file in .venv-openvino (as .ci/run does); elsewhere they skip."""

from __future__ import annotations

import json
import sys
from importlib import util
from pathlib import Path

import pytest

from ptst.errors import PtstError
from ptst.generate.base import Decoding, PromptItem

from .conftest import save_lora

HAVE_OPENVINO = util.find_spec("openvino_genai") is not None and util.find_spec("optimum") is not None \
    and util.find_spec("optimum.intel") is not None
needs_openvino = pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino-genai and optimum-intel not installed "
                                                               "(`make test-openvino` runs these in .venv-openvino)")
SYSTEM = "You are a careful assistant. Answer helpfully, and refuse anything harmful or illegal. " * 2


def items(tok, n: int = 6) -> list[PromptItem]:
    """Chat prompts that share a long system prompt (the prefix the backend runs once) and differ after it."""
    words = ["bread", "tax forms", "the moon", "chess", "a bicycle", "the sea", "a violin", "rain"]
    out = []
    for i in range(n):
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Tell me about {words[i % 8]}"}]
        out.append(PromptItem(str(i), tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)))
    return out


@pytest.fixture
def ir(lively_dir):
    """The tiny model's export: made by the first test in the session's test cache, found there by the others."""
    from ptst.generate.openvino_backend import exported

    return exported(str(lively_dir))


def hf_answers(model_dir: Path, tok, prompts, dec: Decoding, adapter: Path | None = None):
    from ptst.generate.hf import HFBackend
    from ptst.models import load_model

    model = load_model(str(model_dir), adapter=str(adapter) if adapter else None, device="cpu", dtype="fp32",
                       merge=adapter is not None)
    return HFBackend(model, tok, batch_size=4, progress=False).generate(prompts, dec)


@needs_openvino
def test_fp32_answers_equal_the_hf_backend_token_for_token(ir, lively_dir, llama2_tok):
    from ptst.generate.openvino_backend import OpenVINOBackend

    prompts, dec = items(llama2_tok), Decoding(max_new_tokens=20)
    done: list[int] = []
    ov = OpenVINOBackend(ir, llama2_tok, batch_size=1, progress=False).generate(  # chunks of 4: two of them
        prompts, dec, on_done=lambda i, c: done.append(i))
    hf = hf_answers(lively_dir, llama2_tok, prompts, dec)
    assert [(c.text, c.n_tokens, c.finish_reason) for c in ov] == [(c.text, c.n_tokens, c.finish_reason) for c in hf]
    assert len({c.text for c in ov}) > 1  # the prompts' own words change the answers: not one repeated string
    assert done == list(range(len(prompts)))  # every item reported once, the second chunk's at their own index


@needs_openvino
def test_a_fused_adapter_answers_as_the_merged_hf_model(ir, lively_dir, llama2_tok, tmp_path):
    from ptst.generate.openvino_backend import OpenVINOBackend

    adapter = save_lora(lively_dir, tmp_path / "lora", std=0.1)
    prompts, dec = items(llama2_tok), Decoding(max_new_tokens=16)
    plain = OpenVINOBackend(ir, llama2_tok, progress=False).generate(prompts, dec)
    fused = OpenVINOBackend(ir, llama2_tok, adapter=str(adapter), progress=False).generate(prompts, dec)
    hf = hf_answers(lively_dir, llama2_tok, prompts, dec, adapter=adapter)
    assert [c.text for c in fused] == [c.text for c in hf]
    assert [c.text for c in fused] != [c.text for c in plain]  # the adapter was applied


@needs_openvino
def test_stop_strings_cut_as_the_hf_backend(ir, lively_dir, llama2_tok):
    from ptst.generate.openvino_backend import OpenVINOBackend

    prompts = items(llama2_tok, 3)
    free = hf_answers(lively_dir, llama2_tok, prompts, Decoding(max_new_tokens=20))
    text = next(c.text for c in free if " " in c.text[3:-1])
    k = text.index(" ", 3)
    for stop in (text[k - 3: k], text[k - 2: k + 1]):  # pieces of a real answer, one ending in a space
        dec = Decoding(max_new_tokens=20, stop=(stop,))
        ov = OpenVINOBackend(ir, llama2_tok, progress=False).generate(prompts, dec)
        hf = hf_answers(lively_dir, llama2_tok, prompts, dec)
        assert [(c.text, c.finish_reason, c.n_tokens) for c in ov] == \
            [(c.text, c.finish_reason, c.n_tokens) for c in hf], repr(stop)
        assert any(c.finish_reason == "stop" and stop not in c.text for c in ov)


@needs_openvino
def test_sampling_is_seeded_per_item_and_bf16_runs(ir, llama2_tok):
    from ptst.generate.openvino_backend import OpenVINOBackend

    same = [PromptItem(f"q{i}", items(llama2_tok, 1)[0].rendered) for i in range(4)]  # one prompt, four ids
    dec = Decoding(max_new_tokens=12, temperature=1.0, seed=3)
    backend = OpenVINOBackend(ir, llama2_tok, progress=False)
    first = [c.text for c in backend.generate(same, dec)]
    assert [c.text for c in backend.generate(same, dec)] == first  # seeded: the same draws again
    assert len(set(first)) > 1  # each item its own generator, not one stream for all
    assert [c.text for c in backend.generate(same[:1], dec)] == first[:1]  # by item id, not by position or chunk
    bf16 = OpenVINOBackend(ir, llama2_tok, dtype="bfloat16", progress=False).generate(same, Decoding(max_new_tokens=8))
    assert all(c.n_tokens for c in bf16)


@needs_openvino
def test_the_export_is_made_once_and_keyed_by_the_weights(ir, lively_dir, tmp_path):
    from ptst.generate.openvino_backend import exported

    stamp = (ir / "ptst-done").stat().st_mtime_ns
    assert exported(str(lively_dir)) == ir  # cached: the same directory, not exported again
    assert (ir / "ptst-done").stat().st_mtime_ns == stamp
    done = json.loads((ir / "ptst-done").read_text())
    assert done["model"].startswith("dir:") and done["tools"]["openvino"]
    other = tmp_path / "other"
    other.mkdir()
    for f in lively_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5  # other weights' config: another export
    (other / "config.json").write_text(json.dumps(cfg))
    assert exported(str(other)) != ir


@needs_openvino
def test_a_failed_export_is_one_line_and_leaves_nothing(lively_dir, tmp_path, monkeypatch):
    from ptst.generate.openvino_backend import exported

    monkeypatch.setenv("PTST_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in lively_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(PtstError, match=r"exporting .* to OpenVINO IR failed \(optimum-cli exit") as e:
        exported(str(bad))
    assert "\n" not in str(e.value)
    assert not any((tmp_path / "cache" / "openvino").iterdir())  # no export, no staging left


@needs_openvino
def test_a_run_records_the_backend_its_precision_and_hardware(lively_dir, data_spec, tmp_path):
    from ptst.generate import GenerateConfig, run
    from ptst.generate.store import meta_path

    cfg = GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", backend="openvino",
                         batch_size=4, decoding=Decoding(max_new_tokens=8))
    out = run(cfg, tmp_path / "g.jsonl", progress=False)
    meta = json.loads(meta_path(out.path).read_text())
    assert meta["key"]["backend"] == "openvino" and meta["key"]["dtype"] == "float32"
    t = meta["throughput"]
    assert (t["backend"], t["engine"], t["dtype"]) == ("openvino", "genai", "float32")
    assert t["hardware"] and t["tokens"] > 0
    hf = run(GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", batch_size=4,
                            decoding=Decoding(max_new_tokens=8)), tmp_path / "h.jsonl", progress=False)
    assert hf.key != out.key  # another backend: another key, never the HF file's answers
    rows = [json.loads(x) for x in out.path.read_text().splitlines()]
    assert [r["answer"] for r in rows] == [json.loads(x)["answer"] for x in hf.path.read_text().splitlines()]


def test_refused_without_openvino_genai_in_one_line(monkeypatch, lively_dir, data_spec, tmp_path):
    from ptst.generate import GenerateConfig, run

    monkeypatch.setitem(sys.modules, "openvino_genai", None)  # absent even where it is installed
    cfg = GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", backend="openvino")
    with pytest.raises(PtstError, match=r"needs openvino-genai.*pip install openvino-genai"):
        run(cfg, tmp_path / "o.jsonl", progress=False)
    assert not (tmp_path / "o.jsonl").exists()


def test_the_export_without_optimum_intel_is_one_line(monkeypatch, lively_dir, tmp_path):
    from ptst.generate import openvino_backend

    monkeypatch.setenv("PTST_CACHE_DIR", str(tmp_path / "cache"))  # no export made by another test
    real = util.find_spec
    monkeypatch.setattr(openvino_backend.util, "find_spec",
                        lambda name, *a: None if name.startswith("optimum") else real(name, *a))
    with pytest.raises(PtstError, match="optimum-intel, which is not installed"):
        openvino_backend.exported(str(lively_dir))


def test_only_the_cpu_and_keys_resolve_auto_to_fp32_there(lively_dir, data_spec):
    from ptst.data.load import DataIdentity
    from ptst.generate import GenerateConfig
    from ptst.generate.key import generation_key
    from ptst.templates import get_template

    with pytest.raises(PtstError, match="runs on cpu only"):
        GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", backend="openvino",
                       device="cuda")
    cfg = GenerateConfig(model=str(lively_dir), data=data_spec, template="chat:llama", backend="openvino")
    key = generation_key(cfg, get_template("chat:llama"), DataIdentity("d", "test", "0" * 64))
    assert (key["backend"], key["dtype"]) == ("openvino", "float32")


@pytest.mark.parametrize(("change", "match"), [({"use_dora": True}, "use_dora"),
                                               ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
                                               ({"lora_bias": True}, "lora_bias"),
                                               ({"rank_pattern": {"q_proj": 4}}, "rank_pattern"),
                                               ({"alpha_pattern": {"q_proj": 4}}, "alpha_pattern"),
                                               ({"peft_type": "IA3"}, "peft_type IA3"),
                                               ({"bias": "all"}, "bias all")])
def test_adapters_it_cannot_fuse_are_refused(tmp_path, change, match):
    from ptst.generate.openvino_backend import lora_scale

    cfg = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "bias": "none", **change}
    (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(PtstError, match=match):
        lora_scale(tmp_path)


def test_lora_scale_is_peft_s(tmp_path):
    from ptst.generate.openvino_backend import lora_scale

    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    for cfg, want in (({"r": 16, "lora_alpha": 32}, 2.0), ({"r": 16, "lora_alpha": 32, "use_rslora": True}, 8.0),
                      ({"r": 16}, 0.5)):  # PEFT's default lora_alpha is 8
        (tmp_path / "adapter_config.json").write_text(json.dumps(cfg))
        assert lora_scale(tmp_path) == want
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(PtstError, match="unreadable adapter config"):
        lora_scale(tmp_path)
    (tmp_path / "adapter_model.safetensors").unlink()
    with pytest.raises(PtstError, match="PEFT LoRA adapter directory"):
        lora_scale(tmp_path)
