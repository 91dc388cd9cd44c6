"""A generations file's key without loading a model: the rendered fingerprint (remembered only for a model known by
its content), and the dtype named without importing torch where no GPU can be present."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

import ptst.generate.key as K
from ptst.models import GPU_DEVICES, dtype_name, load_tokenizer, pick_device, pick_dtype
from ptst.specs.generate import GenerateConfig
from ptst.templates import Template, fingerprint, get_template


def _cfg(model: str) -> GenerateConfig:
    return GenerateConfig(data="advbench", template="chat:llama", model=model)


def test_the_fingerprint_is_the_rendered_one_and_remembered_by_content(tiny_model_dir, monkeypatch):
    t = get_template("chat:llama")
    want = fingerprint(t, load_tokenizer(str(tiny_model_dir)))
    assert K.template_fingerprint(_cfg(str(tiny_model_dir)), t) == want

    def no_tokenizer(*_a, **_k):
        raise AssertionError("the tokenizer was loaded again")

    monkeypatch.setattr(K, "load_tokenizer", no_tokenizer)
    assert K.template_fingerprint(_cfg(str(tiny_model_dir)), t) == want  # remembered
    edited = Template("mine", "chat", "{input}", system="Be careful.")
    with pytest.raises(AssertionError, match="loaded again"):  # another definition is another entry: rendered anew
        K.template_fingerprint(_cfg(str(tiny_model_dir)), edited)
    with pytest.raises(AssertionError, match="loaded again"):  # so is the same template after a renderer change
        monkeypatch.setattr(K, "RENDER_VERSION", "next")
        K.template_fingerprint(_cfg(str(tiny_model_dir)), t)


def test_a_hub_model_is_rendered_every_time(tiny_model_dir, monkeypatch):
    """A hub id names no content (its tokenizer can change under the same name): nothing is remembered for it."""
    tok = load_tokenizer(str(tiny_model_dir))
    loads = []
    monkeypatch.setattr(K, "base_identity", lambda spec: spec)
    monkeypatch.setattr(K, "load_tokenizer", lambda spec: loads.append(spec) or tok)
    t = get_template("chat:vanilla")
    for _ in range(2):
        assert K.template_fingerprint(_cfg("org/model"), t) == fingerprint(t, tok)
    assert loads == ["org/model", "org/model"]


@pytest.mark.parametrize("dtype,device", [(None, None), ("auto", None), ("bf16", None), ("fp16", "cpu"),
                                          ("fp32", "cuda"), (None, "cpu"), ("float32", "auto")])
def test_dtype_name_is_pick_dtypes_answer(dtype, device):
    assert dtype_name(dtype, device) == str(pick_dtype(dtype, pick_device(device))).removeprefix("torch.")


@pytest.mark.skipif(any(map(os.path.exists, GPU_DEVICES)), reason="a GPU device node: torch decides")
def test_dtype_name_needs_no_torch_on_a_machine_without_a_gpu():
    code = "import sys; from ptst.models import dtype_name; print(dtype_name(None, None), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["float32", "False"]


def test_the_key_names_dtype_and_data(tiny_model_dir):
    from ptst.data.load import DataIdentity

    key = K.generation_key(replace(_cfg(str(tiny_model_dir)), dtype="bf16"), get_template("chat:llama"),
                           DataIdentity("advbench", "test", "ab" * 32))
    assert key["dtype"] == "bfloat16" and key["data"] == {"name": "advbench", "split": "test", "sha256": "ab" * 32}


def test_half_precision_names_the_hf_backends_arithmetic(tiny_model_dir):
    """A bf16/fp16 generations file made by the hf backend records its half-precision arithmetic's version (its
    answers changed when the fast engine's residual stream moved to fp32 and adapters began to be merged in fp32),
    so older half-precision answers are recomputed; fp32 keys and other backends' keys do not carry it, and are not
    made stale by it."""
    from ptst.data.load import DataIdentity

    data, t = DataIdentity("advbench", "test", "ab" * 32), get_template("chat:llama")
    cfg = _cfg(str(tiny_model_dir))
    for dtype, device in (("fp16", "cpu"), ("bf16", "cuda")):
        assert K.generation_key(replace(cfg, dtype=dtype, device=device), t, data)["numerics"] == K.HALF_NUMERICS
    assert K.HALF_NUMERICS == 2 and K.FUSED_NUMERICS == 3
    assert "numerics" not in K.generation_key(replace(cfg, dtype="fp32", device="cpu"), t, data)
    assert "numerics" not in K.generation_key(replace(cfg, dtype="bf16", backend="vllm", device="cuda"), t, data)
    if not any(map(os.path.exists, GPU_DEVICES)):  # auto is fp32 on the CPU: no field
        assert "numerics" not in K.generation_key(replace(cfg, dtype=None), t, data)


def test_bf16_on_cpu_names_whether_the_fused_kernels_ran(tiny_model_dir, monkeypatch):
    """bf16 on a CPU runs the fast engine's step on ptst's fused kernels where they build, and its eager step where
    they do not (PTST_NATIVE=0, no compiler): other answers, so the key says which (numerics 3 or 2)."""
    from ptst.data.load import DataIdentity
    from ptst.runtime import native

    data, t = DataIdentity("advbench", "test", "ab" * 32), get_template("chat:llama")
    cfg = replace(_cfg(str(tiny_model_dir)), dtype="bf16", device="cpu")
    native._state.cache_clear()
    want = K.FUSED_NUMERICS if native.available() else K.HALF_NUMERICS
    assert K.generation_key(cfg, t, data)["numerics"] == want
    monkeypatch.setenv("PTST_NATIVE", "0")
    native._state.cache_clear()
    try:
        assert not native.available() and native.why() == "PTST_NATIVE=0"
        assert K.generation_key(cfg, t, data)["numerics"] == K.HALF_NUMERICS
    finally:
        monkeypatch.delenv("PTST_NATIVE")
        native._state.cache_clear()
