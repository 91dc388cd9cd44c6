"""The fast engine's bf16 and fp32 models on ptst's fused kernels (`ptst.runtime.native`). The decoding step: per
layer its four packed linear layers and three kernels (attention with the rotary embedding and the cache write; the
residual sum with the next RMSNorm; the MLP's SiLU product) instead of ~40 eager operations, and (bf16) the LM head's
fp32 rescoring in one more. The prefill: the same norm and SiLU kernels, and its attention on the packed prompt tokens
(`prompt_attention`: no padded layout, no per-row copy of the shared prefix). Same arithmetic as the eager bf16
engine (fp32 residual stream, norms, rotary embedding, attention and head candidates; each linear layer's input
rounded once; the rows' own values kept in bf16, which holds the bf16 projection's output exactly), in other
summation orders: its answers are close to the eager engine's, not equal (docs/performance.md). An fp32 model runs
the same kernels with every activation and value in fp32 (nothing rounded; the LM head is its own fp32 product):
the eager fp32 engine's arithmetic in other summation orders and with another exp's last ulp."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

if TYPE_CHECKING:  # the engine imports this module
    from ptst.runtime.fast import DecodeCache, FastLM

LANES = 64  # the AVX-512 path reads the prefix's transposed keys 64 columns at a time


def prefix_transposed(keys: list[torch.Tensor]) -> list[torch.Tensor]:
    """The shared prefix's keys [Hkv, P, D] per layer as [Hkv, D, PP] (PP: P rounded up to 64, zero columns)."""
    out = []
    for k in keys:
        hkv, p, d = k.shape
        t = k.new_zeros((hkv, d, -(-p // LANES) * LANES))
        t[:, :, :p] = k.transpose(1, 2)
        out.append(t)
    return out


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def step(fast: FastLM, lib: Any, ids: torch.Tensor, positions: torch.Tensor, cache: DecodeCache,
         col: int) -> torch.Tensor:
    """`FastLM.step` for a bf16 or fp32 model: one token per row, keys/values written at column `col`; the
    logits [B, V]."""
    b, d, hq, hkv = ids.shape[0], fast.head_dim, fast.n_heads, fast.n_kv
    f32 = int(fast.dtype == torch.float32)
    p = cache.prefix
    if not 0 <= col < cache.keys[0].shape[1] or p + col + 1 > cache.mask.shape[1]:  # the kernel would write past them
        raise IndexError(f"column {col} is outside the cache ({cache.keys[0].shape[1]} columns)")
    if p and cache.prefix_keys_t is None:
        cache.prefix_keys_t = prefix_transposed(cache.prefix_keys)
    if not all(t.is_contiguous() for t in (*cache.keys, *cache.values, *cache.prefix_keys, *cache.prefix_values)):
        raise ValueError("the fused step reads the cache's tensors as contiguous arrays")
    vtype = torch.float32 if f32 else torch.bfloat16  # a bf16 model's own values in bf16: exact (its projection's)
    if cache.values[0].dtype != vtype:
        cache.values = [v.to(vtype) for v in cache.values]
    x = F.embedding(ids, fast.embed).to(torch.float32)
    if fast.embed_scale is not None:
        x = x * fast.embed_scale.to(x.dtype)
    x = x.contiguous()
    cos, sin = fast.core.rotary_emb(x, positions[:, None])  # [B, 1, D], fp32
    cos, sin = cos[:, 0].contiguous(), fast._signed(sin)[:, 0].contiguous()
    mask = cache.mask
    if mask.dtype != torch.float32 or not mask.is_contiguous():
        mask = mask.to(torch.float32).contiguous()
    h = torch.empty(x.shape, dtype=fast.dtype)
    att = torch.empty((b, hq * d), dtype=fast.dtype)
    layers = fast.layers
    lib.ptst_add_rms(x.data_ptr(), None, layers[0].norm1.data_ptr(), layers[0].eps1, b, x.shape[1], h.data_ptr(),
                     f32)
    for i, ly in enumerate(layers):
        qkv = ly.qkv(h).contiguous()
        kc, vc = cache.keys[i], cache.values[i]
        pkt = cache.prefix_keys_t[i] if p and cache.prefix_keys_t is not None else None
        lib.ptst_decode_attention(
            qkv.data_ptr(), qkv.shape[1], cos.data_ptr(), sin.data_ptr(), kc.data_ptr(), vc.data_ptr(), kc.shape[1],
            col, col + 1, _ptr(cache.prefix_keys[i] if p else None), _ptr(pkt), pkt.shape[2] if pkt is not None else 0,
            _ptr(cache.prefix_values[i] if p else None), p, mask.data_ptr(), mask.shape[1], b, hq, hkv, d,
            fast.scaling, att.data_ptr(), f32)
        o = ly.o(att).contiguous()  # held in a name: a pointer to a temporary's freed memory would be read
        lib.ptst_add_rms(x.data_ptr(), o.data_ptr(), ly.norm2.data_ptr(), ly.eps2, b, x.shape[1], h.data_ptr(), f32)
        down = ly.down(silu_mul(lib, ly.gate_up(h))).contiguous()
        if i + 1 < len(layers):
            nxt = layers[i + 1]
            lib.ptst_add_rms(x.data_ptr(), down.data_ptr(), nxt.norm1.data_ptr(), nxt.eps1, b, x.shape[1],
                             h.data_ptr(), f32)
        else:
            x = x + down
    return fast._head(x)


def rms(lib: Any, x: torch.Tensor, w: torch.Tensor, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """The RMSNorm of fp32 rows x [N, H] times w, in `dtype` (bf16: rounded once; fp32) (`FastLM._rms`; x
    unchanged)."""
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=dtype)
    lib.ptst_add_rms(x.data_ptr(), None, w.data_ptr(), eps, x.shape[0], x.shape[1], out.data_ptr(),
                     int(dtype == torch.float32))
    return out


def silu_mul(lib: Any, gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up of rows [N, 2I] (gate, then up): in bf16 bf16(bf16(silu(gate)) * up), the model's two
    roundings; in fp32 nothing rounded."""
    gate_up = gate_up.contiguous()
    out = torch.empty((gate_up.shape[0], gate_up.shape[1] // 2), dtype=gate_up.dtype)
    lib.ptst_silu_mul(gate_up.data_ptr(), gate_up.shape[0], out.shape[1], out.data_ptr(),
                      int(gate_up.dtype == torch.float32))
    return out


def prompt_attention(fast: FastLM, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, keys: torch.Tensor,
                     values: torch.Tensor, starts: torch.Tensor, s: int, prefix: tuple[torch.Tensor, torch.Tensor,
                                                                                        torch.Tensor] | None,
                     b: int) -> torch.Tensor:
    """`FastLM.prompts`' attention for one layer on the kernels: the packed tokens' qkv [T, *] (bf16; row r's tokens
    are rows starts[r] .. starts[r + 1] - 1, in order, at the last of the row's first `s` cache columns), their
    rotary tables cos/sin [T, D] (sin's first half negated); writes their keys (fp32) and values (bf16) into the
    layer's cache and returns the attention's output [T, Hq * D] (bf16). For an fp32 model qkv, the values and the
    output are fp32. `prefix`: the shared prefix's keys, keys transposed (`prefix_transposed`) and values, or None."""
    d, hq, hkv, lib = fast.head_dim, fast.n_heads, fast.n_kv, fast.native
    assert lib is not None
    qkv = qkv.contiguous()
    out = torch.empty((qkv.shape[0], hq * d), dtype=qkv.dtype)
    pk, pkt, pv = prefix if prefix is not None else (None, None, None)
    lib.ptst_prefill_attention(
        qkv.data_ptr(), qkv.shape[1], cos.data_ptr(), sin.data_ptr(), keys.data_ptr(), values.data_ptr(),
        keys.shape[1], starts.data_ptr(), s, _ptr(pk), _ptr(pkt), pkt.shape[2] if pkt is not None else 0, _ptr(pv),
        pk.shape[1] if pk is not None else 0, b, hq, hkv, d, fast.scaling, out.data_ptr(),
        int(qkv.dtype == torch.float32))
    return out


def head(fast: FastLM, h: torch.Tensor) -> torch.Tensor:
    """`FastLM._head`'s bf16 product and `FastLM._refine` on the kernels: the logits [N, V] (fp32) of the fp32
    normed rows h [N, H], every candidate for a row's maximum computed again in fp32."""
    lib, head = fast.native, fast.lm_head
    assert lib is not None
    h = h.contiguous()
    logits = head(h.to(torch.bfloat16)).contiguous()
    out = torch.empty(logits.shape, dtype=torch.float32)
    bias = None if head.bias is None else head.bias.to(torch.float32).contiguous()
    slack = 1.25 * torch.finfo(torch.bfloat16).eps + 2 * h.shape[-1] * torch.finfo(torch.float32).eps
    lib.ptst_head_refine(logits.data_ptr(), logits.shape[0], logits.shape[1], h.data_ptr(), h.shape[1],
                         head.weight.data_ptr(), _ptr(bias), slack, fast.head_norm, out.data_ptr())
    return out
