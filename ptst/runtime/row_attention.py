"""Training's per-row attention on a packed row (`ptst.runtime.packing`), one autograd node for all its rows.

Eager attention runs a row as some fifteen autograd operations each way: the key and value heads repeated for each
query head (`repeat_kv`, a copy, and a sum in the backward pass), the scores' product, the scaling, a causal mask
built and applied, softmax in fp32, the cast back, the values' product, and the splits and concatenations of the
packed row. Here a row's query heads are grouped by the key/value head they share ([Hkv, G * L, D]: each key read
for its G query heads in one product, nothing repeated), the scaling, mask and softmax are one pass of the fused
kernels (`native_softmax.c`'s `ptst_causal_softmax`), and the backward pass is written out: dP = dO V^T, the
softmax's gradient in one more pass (`ptst_causal_softmax_backward`, scaled, 0 at the unseen keys), then
dQ = dS K, dK = dS^T Q (summing over the G query heads by itself), dV = P^T dO. The products stay torch's (oneDNN's
bf16 or MKL's fp32). The probabilities are kept for the backward pass in the model's dtype (bf16 for a bf16 model,
where eager attention keeps them in fp32: a bf16 rounding of each, the one the values' product already sees), for
rows of up to SAVED_MAX_KEYS keys; longer rows compute them again there.

Used only where `wanted` says: a gradient is wanted, no attention dropout, CPU tensors the kernels take with their
AVX-512 path (fp32 only up to FP32_MAX_KEYS keys); the prefill and evaluation keep the eager path, so generated
answers do not change."""

from __future__ import annotations

from typing import Any

import torch

from ptst.runtime import native

# fp32 rows longer than this keep SDPA's flash kernel (packing.EAGER_MAX_KEYS), which was faster there: 8 rows of
# 257-445 tokens with SmolLM2-135M's heads, forward and backward, 63.0 against 55.8 ms (bf16: 32.7 against 60.5)
FP32_MAX_KEYS = 256
# A row that sees more keys than this keeps no probabilities for the backward pass, which computes them again (one
# more product and softmax pass, the same numbers), so memory stays linear in a row's length, as with SDPA's flash
# kernel: kept, 1,024-token rows in bf16 would hold 19 MB a row and layer (SmolLM2-135M), 4.5 GB for a batch of 8
SAVED_MAX_KEYS = 256


def wanted(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, dropout: float, training: bool,
           keys: int) -> bool:
    """Whether a call takes this path: a gradient is wanted, no attention dropout, the kernels fit with their
    AVX-512 path, and the model is bf16 or its longest row sees at most FP32_MAX_KEYS keys (`keys`)."""
    grads = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    return grads and not (training and dropout > 0) and native.takes(query, key, value) and native.wide() and \
        (query.dtype == torch.bfloat16 or keys <= FP32_MAX_KEYS)


def _f32(x: torch.Tensor) -> int:
    return int(x.dtype == torch.float32)


def _grouped(x: torch.Tensor, kv: int) -> torch.Tensor:
    """[H, L, D] -> [Hkv, G * L, D] (a copy): the query heads that share key/value head h, one after the other."""
    h, n, d = x.shape
    return x.reshape(kv, (h // kv) * n, d)


class _Rows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,  # type: ignore[override]
                lengths: list[int], prefix: int, scale: float) -> torch.Tensor:
        kv, heads = k.shape[1], q.shape[1]
        lib, out, probs, start = native.kernels(), [], [], 0
        for n in lengths:
            qr = _grouped(q[0, :, start: start + n], kv)
            kr, vr = _keys(k, prefix, start, n), _keys(v, prefix, start, n)
            s = _probabilities(lib, qr, kr, n, prefix, scale)
            out.append(torch.bmm(s, vr).view(heads, n, -1))
            probs.append(s if prefix + n <= SAVED_MAX_KEYS else None)  # longer: computed again in backward
            start += n
        ctx.save_for_backward(q, k, v)
        ctx.probs, ctx.lengths, ctx.prefix, ctx.scale = probs, lengths, prefix, scale
        return torch.cat(out, dim=1).transpose(0, 1)[None].contiguous()  # [1, T, H, D], as the built-ins return

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        q, k, v = ctx.saved_tensors
        kv, prefix, lib = k.shape[1], ctx.prefix, native.kernels()
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        g = grad[0].transpose(0, 1)  # [H, T, D]
        start = 0
        for n, p in zip(ctx.lengths, ctx.probs, strict=True):
            qr, do = _grouped(q[0, :, start: start + n], kv), _grouped(g[:, start: start + n], kv)
            kr, vr = _keys(k, prefix, start, n), _keys(v, prefix, start, n)
            if p is None:
                p = _probabilities(lib, qr, kr, n, prefix, ctx.scale)
            ds = torch.bmm(do, vr.transpose(1, 2))  # dP, then in place the scores' gradient
            lib.ptst_causal_softmax_backward(p.data_ptr(), ds.data_ptr(), ds.shape[0] * ds.shape[1], n, prefix,
                                             ctx.scale, _f32(ds))
            dq[0, :, start: start + n] = torch.bmm(ds, kr).view(q.shape[1], n, -1)
            dkr, dvr = torch.bmm(ds.transpose(1, 2), qr), torch.bmm(p.transpose(1, 2), do)
            dk[0, :, prefix + start: prefix + start + n] = dkr[:, prefix:]
            dv[0, :, prefix + start: prefix + start + n] = dvr[:, prefix:]
            if prefix:
                dk[0, :, :prefix] += dkr[:, :prefix]
                dv[0, :, :prefix] += dvr[:, :prefix]
            start += n
        ctx.probs = None
        return dq, dk, dv, None, None, None


def _probabilities(lib: Any, qr: torch.Tensor, kr: torch.Tensor, n: int, prefix: int, scale: float) -> torch.Tensor:
    """A row's attention probabilities [Hkv, G * n, prefix + n]: the scores' product, then the kernel's pass."""
    s = torch.bmm(qr, kr.transpose(1, 2))
    lib.ptst_causal_softmax(s.data_ptr(), s.shape[0] * s.shape[1], n, prefix, scale, _f32(s))
    return s


def _keys(x: torch.Tensor, prefix: int, start: int, n: int) -> torch.Tensor:
    """Key/value head rows a packed row's queries see: the shared prefix's, then its own ([Hkv, prefix + n, D])."""
    own = x[0, :, prefix + start: prefix + start + n]
    return torch.cat([x[0, :, :prefix], own], dim=1) if prefix else own


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, lengths: list[int], scale: float) \
        -> torch.Tensor:
    """query [1, H, T, D]; key/value [1, Hkv, P + T, D] (P: a shared prefix's, already in the cache); `lengths`
    the packed rows' (summing to T). Returns [1, T, H, D]."""
    prefix = key.shape[2] - query.shape[2]
    return _Rows.apply(query, key.contiguous(), value.contiguous(), lengths, prefix, scale)
