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
    assert K.HALF_NUMERICS == 2 and K.FUSED_NUMERICS == 3 and K.FUSED_FP32_NUMERICS == 1
    assert "numerics" not in K.generation_key(replace(cfg, dtype="fp32", device="cuda"), t, data)
    assert "numerics" not in K.generation_key(replace(cfg, dtype="bf16", backend="vllm", device="cuda"), t, data)
    assert "numerics" not in K.generation_key(replace(cfg, dtype="fp32", backend="vllm", device="cpu"), t, data)


@pytest.mark.parametrize(("dtype", "fused", "eager"), [("bf16", K.FUSED_NUMERICS, K.HALF_NUMERICS),
                                                      ("fp32", K.FUSED_FP32_NUMERICS, None), (None, 1, None)])
def test_a_cpu_key_names_whether_the_fused_kernels_ran(tiny_model_dir, monkeypatch, dtype, fused, eager):
    """bf16 and fp32 on a CPU run the fast engine on ptst's fused kernels where they build, and its eager step
    where they do not (PTST_NATIVE=0, no compiler): other answers, so the key says which (bf16: numerics 3 or 2;
    fp32, also `auto` on a machine without a GPU: 1, or no field for the eager engine's, generate's answers)."""
    from ptst.data.load import DataIdentity
    from ptst.runtime import native

    if dtype is None and any(map(os.path.exists, GPU_DEVICES)):
        pytest.skip("auto picks the GPU here")
    data, t = DataIdentity("advbench", "test", "ab" * 32), get_template("chat:llama")
    cfg = replace(_cfg(str(tiny_model_dir)), dtype=dtype, device="cpu" if dtype else None)
    native.reset()
    runs_fused = native.builds() and (dtype == "bf16" or native.wide())  # fp32: the AVX-512 path only
    assert K.generation_key(cfg, t, data).get("numerics") == (fused if runs_fused else eager)
    if dtype != "bf16" and native.builds():  # torch capped to AVX2 (an emulated AVX2 CPU): fp32 keeps the eager engine
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
        assert not native.wide() and K.generation_key(cfg, t, data).get("numerics") is None
        monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv("PTST_NATIVE", "0")
    native.reset()
    try:
        assert not native.builds() and not native.available() and native.why() == "PTST_NATIVE=0"
        assert K.generation_key(cfg, t, data).get("numerics") == eager
    finally:
        monkeypatch.delenv("PTST_NATIVE")
        native.reset()
