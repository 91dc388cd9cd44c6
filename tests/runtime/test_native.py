"""ptst's fused CPU kernels (ptst/runtime/native.c) against torch references: both the AVX-512 path (where this CPU
has it, head size 64/128) and the portable path (head sizes 64/128 built with -mno-avx512f, and any other size), for
bf16 and fp32 models, and the fused decoding step against the eager one. Skipped where no C compiler is present."""

from __future__ import annotations

import os

import pytest

from ptst.generate.base import Decoding, PromptItem
from ptst.generate.hf import HFBackend
from ptst.runtime import native
from ptst.runtime.rows import shared_prefix
from tests.generate.conftest import PROMPTS, lively_llama

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not native.available(), reason=f"fused kernels unavailable: {native.why()}")


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """The kernels as ptst builds them, and the portable path alone."""
    portable = native.load(native.build(tmp_path_factory.mktemp("kernels"), extra=("-mno-avx512f",)))
    return {"native": native.kernels(), "portable": portable}


def _rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _attention_case(b, hq, hkv, d, p, wt, col, seed=0, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn((b, (hq + 2 * hkv) * d), generator=g).to(dtype)
    ang = torch.randn((b, d // 2), generator=g)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    kc = torch.randn((hkv * b, wt, d), generator=g)
    vc = torch.randn((hkv * b, wt, d), generator=g).to(dtype)  # the rows' own values: bf16 for a bf16 model
    pk, pv = torch.randn((hkv, p, d), generator=g), torch.randn((hkv, p, d), generator=g)
    mask = torch.zeros((b, p + wt))
    for r in range(b):  # left padding: row r's first r % 3 own columns hold no token
        mask[r, p: p + r % 3] = float("-inf")
        kc.view(hkv, b, wt, d)[:, r, : r % 3] = float("nan")  # never read: a pad column's NaN must not leak
    return qkv, cos, sin, kc, vc, pk, pv, mask


def _run_attention(lib, case, b, hq, hkv, d, p, col, scaling=0.3):
    from ptst.runtime.fused import prefix_transposed

    qkv, cos, sin, kc, vc, pk, pv, mask = case
    signed = torch.cat([-sin[:, : d // 2], sin[:, d // 2:]], -1).contiguous()
    pkt = prefix_transposed([pk])[0] if p else None
    out = torch.empty((b, hq * d), dtype=qkv.dtype)
    lib.ptst_decode_attention(qkv.data_ptr(), qkv.shape[1], cos.data_ptr(), signed.data_ptr(), kc.data_ptr(),
                              vc.data_ptr(), kc.shape[1], col, col + 1, pk.data_ptr() if p else None,
                              pkt.data_ptr() if p else None, pkt.shape[2] if p else 0, pv.data_ptr() if p else None,
                              p, mask.data_ptr(), mask.shape[1], b, hq, hkv, d, scaling, out.data_ptr(),
                              int(qkv.dtype == torch.float32))
    return out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("which", ["native", "portable"])
@pytest.mark.parametrize(("hq", "hkv", "d", "p"), [(9, 3, 64, 109), (4, 2, 128, 17), (2, 2, 64, 0), (6, 2, 24, 5)])
def test_decode_attention_matches_the_reference(libs, which, hq, hkv, d, p, dtype):
    """Rotary embedding, cache write, grouped-query scores against the shared prefix and the row's own columns,
    softmax over both with left padding masked, and the values: equal to an fp32 torch reference within the
    output's bf16 rounding (a bf16 model) or fp32's summation-order error (an fp32 model); the new key and value
    are written at the column, rotated."""
    b, wt, col = 7, 12, 9
    case = _attention_case(b, hq, hkv, d, p, wt, col, dtype=dtype)
    qkv, cos, sin, kc, vc, pk, pv, mask = case
    before_k, before_v = kc.clone(), vc.clone()
    out = _run_attention(libs[which], case, b, hq, hkv, d, p, col)
    x = qkv.float()
    q = _rope(x[:, : hq * d].view(b, hq, d), cos[:, None], sin[:, None])
    k = _rope(x[:, hq * d: (hq + hkv) * d].view(b, hkv, d), cos[:, None], sin[:, None])
    v = qkv[:, (hq + hkv) * d:].view(b, hkv, d)  # stored as they come
    keys, values = kc.view(hkv, b, wt, d), vc.view(hkv, b, wt, d)
    torch.testing.assert_close(keys[:, :, col], k.transpose(0, 1), rtol=1e-6, atol=1e-6)
    assert torch.equal(values[:, :, col], v.transpose(0, 1))
    others = torch.ones(wt, dtype=torch.bool)
    others[col] = False
    assert torch.equal(keys[:, :, others].nan_to_num(7.0), before_k.view(hkv, b, wt, d)[:, :, others].nan_to_num(7.0))
    assert torch.equal(values[:, :, others], before_v.view(hkv, b, wt, d)[:, :, others])
    g = hq // hkv
    want = torch.empty((b, hq, d))
    for r in range(b):
        live = mask[r, : p + col + 1] == 0
        for h in range(hkv):
            kk = torch.cat([pk[h], keys[h, r, : col + 1]])[live]
            vv = torch.cat([pv[h], values[h, r, : col + 1].float()])[live]
            want[r, h * g: (h + 1) * g] = torch.softmax(q[r, h * g: (h + 1) * g] @ kk.T * 0.3, -1) @ vv
    got = out.float().view(b, hq, d)
    assert not got.isnan().any()
    if dtype == torch.bfloat16:
        torch.testing.assert_close(got, want, rtol=2 ** -7, atol=1e-5)
    else:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # a bf16 rounding would be ~4e-3


@pytest.mark.parametrize("which", ["native", "portable"])
def test_add_rms_and_silu_product_round_as_torch(libs, which):
    """The residual sum is torch's fp32 sum exactly; the norm and the SiLU product equal torch's bf16 results
    (the model's own roundings) but for an occasional last bit of the norm's sum order or exp's last ulp."""
    lib = libs[which]
    g = torch.Generator().manual_seed(1)
    rows, h = 5, 72
    x = torch.randn((rows, h), generator=g) * 3
    delta = torch.randn((rows, h), generator=g).to(torch.bfloat16)
    w = torch.randn(h, generator=g)
    out = torch.empty((rows, h), dtype=torch.bfloat16)
    want_x = x + delta
    want = (w * (want_x * torch.rsqrt(want_x.pow(2).mean(-1, keepdim=True) + 1e-5))).to(torch.bfloat16)
    lib.ptst_add_rms(x.data_ptr(), delta.data_ptr(), w.data_ptr(), 1e-5, rows, h, out.data_ptr(), 0)
    assert torch.equal(x, want_x)
    torch.testing.assert_close(out.float(), want.float(), rtol=2 ** -7, atol=0)
    assert (out == want).float().mean() > 0.95

    n = 200  # not a multiple of 16: the vector loop and its scalar tail
    gate_up = (torch.randn((rows, 2 * n), generator=g) * 4).to(torch.bfloat16)
    gate_up[0, :4] = torch.tensor([-100.0, 100.0, 0.0, -0.0])
    act = torch.empty((rows, n), dtype=torch.bfloat16)
    lib.ptst_silu_mul(gate_up.data_ptr(), rows, n, act.data_ptr(), 0)
    gate, up = gate_up.chunk(2, dim=-1)
    want = torch.nn.functional.silu(gate) * up
    assert (act == want).float().mean() > 0.99
    torch.testing.assert_close(act.float(), want.float(), rtol=2 ** -7, atol=0)


@pytest.mark.parametrize("which", ["native", "portable"])
def test_add_rms_and_silu_product_in_fp32(libs, which):
    """An fp32 model's: the residual sum is torch's exactly, the norm and the SiLU product torch's fp32 results
    within the sum order's and exp's last ulps, nothing rounded to bf16."""
    lib = libs[which]
    g = torch.Generator().manual_seed(2)
    rows, h = 5, 72
    x = torch.randn((rows, h), generator=g) * 3
    delta, w = torch.randn((rows, h), generator=g), torch.randn(h, generator=g)
    out = torch.empty((rows, h))
    want_x = x + delta
    want = w * (want_x * torch.rsqrt(want_x.pow(2).mean(-1, keepdim=True) + 1e-5))
    lib.ptst_add_rms(x.data_ptr(), delta.data_ptr(), w.data_ptr(), 1e-5, rows, h, out.data_ptr(), 1)
    assert torch.equal(x, want_x)
    torch.testing.assert_close(out, want, rtol=4e-7, atol=1e-7)
    assert not torch.equal(out.to(torch.bfloat16).float(), out)  # not rounded to bf16

    n = 200
    gate_up = torch.randn((rows, 2 * n), generator=g) * 4
    gate_up[0, :4] = torch.tensor([-100.0, 100.0, 0.0, -0.0])
    act = torch.empty((rows, n))
    lib.ptst_silu_mul(gate_up.data_ptr(), rows, n, act.data_ptr(), 1)
    gate, up = gate_up.chunk(2, dim=-1)
    torch.testing.assert_close(act, torch.nn.functional.silu(gate) * up, rtol=4e-7, atol=1e-30)


def _fp32_runs_fused(dtype):
    if dtype == torch.float32 and not native.wide():
        pytest.skip("an fp32 model runs on the kernels only with their AVX-512 path")


def test_fp32_keeps_the_eager_engine_without_the_avx512_path(llama2_tok, monkeypatch):
    """On AVX2 (here torch capped to it, as `make quickstart-avx2` emulates) the portable path is no faster than
    the eager fp32 step: an fp32 model keeps the eager engine, a bf16 model the kernels."""
    from ptst.runtime.fast import FastLM

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    model = lively_llama(llama2_tok, hidden=128)
    assert not native.wide() and FastLM(model).native is None
    assert FastLM(model.to(torch.bfloat16)).native is not None


def _bf16_model(tok, hidden):
    return lively_llama(tok, hidden=hidden).to(torch.bfloat16)


@pytest.mark.parametrize(("dtype", "hidden"), [(torch.bfloat16, 128), (torch.bfloat16, 32), (torch.float32, 128)])
@pytest.mark.parametrize("prefix", [6, 0])
def test_fused_prefill_and_step_match_the_eager_ones(llama2_tok, dtype, hidden, prefix):
    """A prefill (left-padded rows, with and without a shared prefix) and one step on the kernels (head size 64, the
    AVX-512 path where present, and 16): logits and cache equal the eager engine's within bf16's rounding of the
    linear layers' inputs (a bf16 model; the rows' own values bf16, exactly the projection's) or fp32's
    summation-order error (an fp32 model: nothing rounded, the values fp32)."""
    from ptst.runtime.fast import FastLM

    _fp32_runs_fused(dtype)
    model = lively_llama(llama2_tok, hidden=hidden).to(dtype)
    rows = [llama2_tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    rows = [rows[0][:6] + r for r in rows] if prefix else rows
    assert (shared_prefix(rows) > 0) == (prefix > 0)
    fused, eager = FastLM(model), FastLM(model, fused_kernels=False)
    assert fused.native is not None and eager.native is None
    with torch.inference_mode():
        caches = []
        for engine in (fused, eager):
            cache, logits, last, col = engine.prefill(rows, shared_prefix(rows), 3)
            out = engine.step(logits.argmax(-1) * 0 + 7, last + 1, cache, col)  # the same next token for both
            caches.append((cache, logits, out))
    (cf, pf, lf), (ce, pe, le) = caches
    logits_tol, cache_tol = (0.05, 0.05) if dtype == torch.bfloat16 else (1e-5, 1e-4)  # bf16 would be ~4e-3
    for a, b in ((pf, pe), (lf, le)):
        assert not a.isnan().any()
        assert (a - b).abs().max() < logits_tol * b.abs().max()
    assert {v.dtype for v in cf.values} == {dtype}
    for a, b in zip(cf.keys + cf.values, ce.keys + ce.values, strict=True):
        assert (a.float() - b).abs().max() < cache_tol * b.abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_fused_engine_answers_through_the_stream(llama2_tok, dtype):
    """End to end through the hf backend's stream (continuous batching: more prompts than the batch, rows
    refilled and caches merged), greedy: an fp32 model's answers on the kernels are the eager engine's, token for
    token; a bf16 model's mostly the same tokens (other summation orders in bf16)."""
    _fp32_runs_fused(dtype)
    model = lively_llama(llama2_tok, hidden=128).to(dtype)
    items = [PromptItem(str(i), p) for i, p in enumerate(PROMPTS * 2)]
    outs = []
    for fused in (True, False):
        backend = HFBackend(model, llama2_tok, batch_size=3, progress=False, fused_kernels=fused)
        assert (backend.fast.native is not None) is fused
        outs.append([c.text for c in backend.generate(items, Decoding(max_new_tokens=8))])
    assert all(outs[0]) and len(outs[0]) == len(items)
    same = sum(a == b for a, b in zip(*outs, strict=True))
    assert same == len(items) if dtype == torch.float32 else same >= len(items) // 2


def test_the_build_is_cached_per_source_and_cpu_and_refuses_clearly(tmp_path, monkeypatch):
    """One build per source, compiler, flags and CPU (a second call reuses it); a failing compiler is one line."""
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    first = native.build(tmp_path)
    assert native.build(tmp_path) == first and [p.name for p in tmp_path.iterdir()] == [first.name]
    assert first.stat().st_mode & 0o044 or os.umask(os.umask(0)) & 0o044  # readable by others unless the umask says no
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # torch capped to AVX2 (an emulated AVX2 CPU): so is the build
    capped = native.build(tmp_path)
    assert capped != first and native.load(capped).ptst_native_version() == native.VERSION
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setattr(native, "_cpu_signature", lambda: "another cpu")
    assert native.build(tmp_path) != first
    monkeypatch.setattr(native, "FLAGS", ("-this-flag-does-not-exist",))
    with pytest.raises(RuntimeError, match="could not build native.c"):
        native.build(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))  # no half-written library left behind
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(native.shutil, "which", lambda _: None)
    with pytest.raises(RuntimeError, match="no C compiler"):
        native.build(tmp_path)


def test_a_build_that_does_not_load_stops_with_one_line(monkeypatch):
    """Keys say the kernels run where they build (`builds`, no torch needed); a build that then fails to load must
    not let the eager engine run under that key: `kernels()` raises, naming PTST_NATIVE=0."""
    from ptst.errors import PtstError

    def broken(path):
        raise OSError("undefined symbol: omp_get_thread_num")

    native.reset()
    monkeypatch.setattr(native, "load", broken)
    try:
        assert native.builds()
        with pytest.raises(PtstError, match="built .* but did not load: undefined symbol.*PTST_NATIVE=0"):
            native.kernels()
    finally:
        monkeypatch.undo()
        native.reset()
    assert native.available()


def test_a_step_past_the_cache_is_refused(llama2_tok):
    """The kernel writes the new key and value at column `col` without bounds checks: the step refuses a column
    outside the cache (the eager step's indexed write would raise too) rather than write past it."""
    from ptst.runtime.fast import FastLM

    engine = FastLM(_bf16_model(llama2_tok, 128))
    rows = [llama2_tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS[:2]]
    with torch.inference_mode():
        cache, logits, last, col = engine.prefill(rows, 0, 2)
        width = cache.keys[0].shape[1]
        engine.step(logits.argmax(-1), last + 1, cache, width - 1)  # the last column: fine
        with pytest.raises(IndexError, match="outside the cache"):
            engine.step(logits.argmax(-1), last + 1, cache, width)


def test_fused_engine_on_a_grouped_query_qwen2_with_biases(llama2_tok):
    """Qwen2's biased q/k/v projections and grouped-query heads (4 over 2, head size 64: the AVX-512 path where
    present) through the kernels: prefill and step logits close to the eager engine's, answers mostly the same."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ptst.runtime.fast import FastLM
    from tests.runtime.test_fast import lively

    cfg = Qwen2Config(vocab_size=len(llama2_tok), hidden_size=256, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=llama2_tok.eos_token_id,
                      pad_token_id=llama2_tok.pad_token_id)
    model = lively(Qwen2ForCausalLM(cfg)).to(torch.bfloat16)
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    rows = [llama2_tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    rows = [rows[0][:6] + r for r in rows]
    out = []
    for fused in (True, False):
        engine = FastLM(model, fused_kernels=fused)
        assert (engine.native is not None) is fused and engine.head_dim == 64
        with torch.inference_mode():
            cache, logits, last, col = engine.prefill(rows, shared_prefix(rows), 3)
            out.append((logits, engine.step(logits.argmax(-1) * 0 + 7, last + 1, cache, col)))
    for a, b in zip(*out, strict=True):
        assert not a.isnan().any() and (a - b).abs().max() < 0.05 * b.abs().max()


def test_the_throughput_record_names_the_fused_kernels(llama2_tok):
    """A generations file's throughput record (beside the key) says whether the fused kernels made the answers."""
    from ptst.generate.runner import how_made, throughput
    from ptst.specs.generate import GenerateConfig

    cfg = GenerateConfig(data="advbench", template="chat:llama", model="m", dtype="bf16", device="cpu")
    model = _bf16_model(llama2_tok, 128)
    for fused, want in ((True, "hf fast+fused bfloat16"), (False, "hf fast bfloat16")):
        t = throughput(HFBackend(model, llama2_tok, progress=False, fused_kernels=fused), cfg, 1, 10, 1.0)
        assert t["kernels"] == ("fused" if fused else None) and how_made(t).startswith(want + ", batch")
