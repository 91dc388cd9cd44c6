"""Training's fused per-row attention (`ptst.runtime.row_attention`) against attention written out in float64,
on the kernels' AVX-512 path and the portable one, and when it is taken."""

from __future__ import annotations

import pytest
import torch

from ptst.runtime import native, row_attention

pytestmark = pytest.mark.skipif(not native.available(), reason=f"the fused kernels do not build here: {native.why()}")

LENGTHS = [17, 1, 40, 33]  # a one-token row, and rows that are not multiples of 16


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
    return native.load(native.build(tmp_path_factory.mktemp("kernels"), extra=("-mno-avx512f",)))


def _inputs(dtype, prefix, heads=6, kv=2, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = sum(LENGTHS)
    q = torch.randn(1, t, heads, d, generator=g).to(dtype).transpose(1, 2)  # strided, as a projection's view is
    k = torch.randn(1, kv, prefix + t, d, generator=g).to(dtype)
    v = torch.randn(1, kv, prefix + t, d, generator=g).to(dtype)
    return q, k, v, torch.randn(1, t, heads, d, generator=g).to(dtype)


def _reference(q, k, v, prefix, scale):
    """Each row in float64: its queries against the prefix and its own keys, causally."""
    groups = q.shape[1] // k.shape[1]
    kk, vv = (x.repeat_interleave(groups, dim=1) for x in (k, v))
    out, start = [], 0
    for n in LENGTHS:
        keys = torch.cat([kk[:, :, :prefix], kk[:, :, prefix + start: prefix + start + n]], dim=2)
        vals = torch.cat([vv[:, :, :prefix], vv[:, :, prefix + start: prefix + start + n]], dim=2)
        s = q[:, :, start: start + n] @ keys.transpose(2, 3) * scale
        seen = torch.ones(n, prefix + n, dtype=torch.bool).tril(prefix)
        out.append(torch.softmax(s.masked_fill(~seen, float("-inf")), dim=-1) @ vals)
        start += n
    return torch.cat(out, dim=2).transpose(1, 2)


def _run(fn, q, k, v, grad):
    q, k, v = (x.detach().clone().requires_grad_(True) for x in (q, k, v))
    out = fn(q, k, v)
    out.backward(grad)
    return [out.detach(), q.grad, k.grad, v.grad]


@pytest.mark.parametrize("build", ["native", "portable"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("prefix", [0, 5])
@pytest.mark.parametrize("saved", [256, 20])  # every row's probabilities kept / the longer rows' computed again
def test_output_and_gradients_are_attentions(build, dtype, prefix, saved, portable, monkeypatch):
    if build == "portable":
        monkeypatch.setattr(native, "kernels", lambda: portable)
    monkeypatch.setattr(row_attention, "SAVED_MAX_KEYS", saved)
    q, k, v, grad = _inputs(dtype, prefix)
    scale = 0.25
    got = _run(lambda a, b, c: row_attention.attention(a, b, c, LENGTHS, scale), q, k, v, grad)
    want = _run(lambda a, b, c: _reference(a, b, c, prefix, scale), q.double(), k.double(), v.double(),
                grad.double())
    for name, a, b in zip(["output", "dq", "dk", "dv"], got, want, strict=True):
        assert a.dtype == dtype and a.shape == b.shape, name
        if dtype == torch.float32:
            torch.testing.assert_close(a.double(), b, rtol=1e-5, atol=1e-5, msg=name)
        else:  # bf16 products and probabilities: a relative error of a few bf16 steps over the whole tensor
            assert float((a.double() - b).norm() / b.norm()) < 2e-2, name


def test_the_prefix_gathers_gradient_from_every_row():
    """The prefix's keys and values are seen by every row: their gradient is the sum over rows (mutation: rows
    that overwrite it instead would fail)."""
    q, k, v, grad = _inputs(torch.float32, 5, seed=1)
    got = _run(lambda a, b, c: row_attention.attention(a, b, c, LENGTHS, 0.25), q, k, v, grad)
    want = _run(lambda a, b, c: _reference(a, b, c, 5, 0.25), q.double(), k.double(), v.double(), grad.double())
    assert float(want[2][:, :, :5].abs().max()) > 0
    torch.testing.assert_close(got[2][:, :, :5].double(), want[2][:, :, :5], rtol=1e-5, atol=1e-5)


def test_taken_only_for_training_without_dropout_on_wide_kernels(monkeypatch):
    q, k, v, _ = _inputs(torch.float32, 0)
    q.requires_grad_(True)
    assert row_attention.wanted(q, k, v, 0.0, True, 64) == native.wide()
    monkeypatch.setattr(native, "wide", lambda: True)
    assert row_attention.wanted(q, k, v, 0.0, True, 64)
    assert row_attention.wanted(q, k, v, 0.1, False, 64)  # dropout only acts in training
    assert not row_attention.wanted(q, k, v, 0.1, True, 64)  # attention dropout: the eager path
    assert not row_attention.wanted(q, k, v, 0.0, True, row_attention.FP32_MAX_KEYS + 1)  # long fp32: SDPA
    qb, kb, vb = (x.to(torch.bfloat16) for x in (q.detach(), k, v))
    assert row_attention.wanted(qb.requires_grad_(True), kb, vb, 0.0, True, 10_000)  # bf16 at any length
    assert not row_attention.wanted(q, k.double(), v, 0.0, True, 64)  # mixed dtypes
    with torch.no_grad():  # the prefill and evaluation: no gradient, the eager path and its answers
        assert not row_attention.wanted(q, k, v, 0.0, False, 64)
    assert not row_attention.wanted(q.detach(), k, v, 0.0, True, 64)
    monkeypatch.setattr(native, "wide", lambda: False)  # the portable build: measured no faster in fp32
    assert not row_attention.wanted(q, k, v, 0.0, True, 64)
