"""Packed rows: several token rows concatenated into one, attention run per row (padding-free training and prefill).

The linear layers, norms and MLPs see exactly the real tokens (no padding rows), the rotary positions restart at
every row (`position_ids`), and attention is computed row by row on its own slice, so no row sees another and
the work is that of the rows alone (a dense block-diagonal mask over the packed row would cost the square of the
packed length). The per-row attention is an attention function registered with transformers'
`AttentionInterface` under `ATTENTION`; the row boundaries reach it as the `ptst_segments` keyword that the
model's forward passes through to its attention layers. With a shared prefix every row attends to the
prefix's keys and values first, from a cache of batch size one.

Used by training (`batching.collate(pack=True)`, `ResponseLoss`) and by the decoding loop's prefill
(`ptst.runtime.decode`), which runs a batch's prompts of different lengths without padding.

Supported for models that route attention through the interface (`_supports_attention_backend`) with full
attention in every layer and no attention-logit soft-capping; anything else keeps padded batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ptst.errors import PtstError
from ptst.runtime import row_attention
from ptst.runtime.cache import cache_kind

ATTENTION = "ptst_varlen"
SEGMENTS = "ptst_segments"  # keyword carrying the rows' boundaries [0, e_1, ..., T] in the packed row

# Per-row attention of at most this many keys runs as plain matmuls + softmax; longer rows use SDPA's kernel.
EAGER_MAX_KEYS = 256


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    from transformers.integrations.sdpa_attention import repeat_kv

    return repeat_kv(x, groups)


def _mask(q_len: int, prefix: int, device: torch.device) -> torch.Tensor:
    """[q_len, prefix + q_len] bool: every query sees the whole prefix, then its own row causally."""
    causal = torch.ones(q_len, q_len, dtype=torch.bool, device=device).tril()
    return torch.cat([torch.ones(q_len, prefix, dtype=torch.bool, device=device), causal], dim=1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix: int, scaling: float, dropout: float,
            training: bool) -> torch.Tensor:
    """One row: q [1, H, L, D], k/v [1, H, prefix + L, D] -> [1, H, L, D]."""
    n = q.shape[2]
    mask = _mask(n, prefix, q.device) if prefix else None
    if k.shape[2] > EAGER_MAX_KEYS:
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout if training else 0.0, is_causal=mask is None, scale=scaling)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling
    allowed = mask if mask is not None else torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=training)
    return torch.matmul(probs, v)


def varlen_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Any, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention-function signature. query [1, H, T, D]; key/value [1, Hkv, P + T, D] where P is the
    length of a shared prefix already in the cache (0 without one). Returns [1, T, H, D] as the built-ins do."""
    segments = kwargs.get(SEGMENTS)
    if segments is None or query.shape[0] != 1:
        raise PtstError(f"{ATTENTION} attention needs one packed row and its {SEGMENTS}")
    if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
        raise PtstError(f"{ATTENTION} attention supports neither sliding windows nor soft-capping")
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    lengths = [e - s for s, e in zip(segments[:-1], segments[1:], strict=True)]
    prefix = key.shape[2] - query.shape[2]
    if row_attention.wanted(query, key, value, dropout, module.training, prefix + max(lengths, default=0)):
        return row_attention.attention(query, key, value, lengths, scale), None
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    # split, not slicing: the backward of a slice writes a zero tensor of the whole packed row per row
    qs = query.split(lengths, dim=2)
    ks, vs = key.split([prefix, *lengths], dim=2), value.split([prefix, *lengths], dim=2)
    out = []
    for q, k, v in zip(qs, ks[1:], vs[1:], strict=True):
        if prefix:
            k, v = torch.cat([ks[0], k], dim=2), torch.cat([vs[0], v], dim=2)
        out.append(_attend(q, k, v, prefix, scale, dropout, module.training))
    return torch.cat(out, dim=2).transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `ATTENTION` a name `set_attn_implementation` accepts (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, varlen_attention)


@contextmanager
def attention(model: Any) -> Iterator[None]:
    """Run `model` with the per-row attention inside the block, its own implementation again after it."""
    register()
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def can_pack(core: Any) -> bool:
    """A model whose attention layers call the attention interface, with full attention in every layer and no
    soft-capped attention logits."""
    cfg = core.config
    softcap = getattr(cfg, "attn_logit_softcapping", None)
    return bool(getattr(core, "_supports_attention_backend", False)) and cache_kind(core) == "full" and not softcap
