"""A decoding engine written for one model family (Llama, Mistral without a sliding window, Qwen2) on CPU: the
batched token-by-token part of generation, where transformers' general forward spends more time on bookkeeping
than on arithmetic.

Measured on SmolLM2-135M (48 AdvBench prompts under chat:llama, batch 48, bf16, 2-core Xeon): the general
forward spent 23% of its time concatenating the KV cache (`DynamicCache` grows by `torch.cat`, copying every
layer's keys and values at every step), 14% in attention that re-reads the safety prompt's keys once per row, and
most of the rest in small ops. This engine does the same arithmetic with:

- a preallocated fp32 cache written in place (one column per step), left-padded, head-major;
- the shared prefix (the safety system prompt) kept once, not once per row: its attention scores for all rows
  are one matrix product per key/value head, against the rows' own keys and values after it;
- grouped-query attention without repeating keys and values over the query heads;
- the query/key/value and gate/up projections fused, every weight packed once for the CPU's kernels (`Linear`);
- its own prefill (`FastLM.prefill`): linear layers on the prompts' real tokens only, attention on a padded
  layout after the prefix (prompts too long for that go through the model's own forward, `prefill_hf`).

The weights are the model's own (fused, packed copies), and each operation follows the model's own code: RMSNorm
in fp32, rotary embeddings from the model's own `rotary_emb` (so every rope scaling it supports), attention and its
softmax in fp32 (as SDPA accumulates). In fp32 the eager engine's answers equal transformers' greedy `generate`
token for token (tests/runtime/test_fast.py; the benchmark checks SmolLM2); on the fused kernels its sums run in
other orders, so only a near tie can part them (measured on the benchmark and the quickstart: docs/performance.md).

In bf16 (or fp16) only the linear layers run in the weights' dtype: the residual stream, norms, rotary embeddings
and attention stay in fp32, each linear layer's input is rounded once (the down projection's: its SiLU and product
in bf16, as the model's own), and the LM head's candidates for each row's maximum are computed again in fp32
(`FastLM._refine`), so greedy picks the fp32 argmax of the bf16 weights. The bf16 logits alone round to 1/8 near
20, and transformers' bf16 forward rounds every residual sum: on SmolLM2 (48 AdvBench prompts, 64 tokens) 32
answers of 48 equal the fp32 ones against 16 with every activation in bf16, for 3-5% of the speed
(docs/performance.md). Prompts too long for `FastLM.prefill` go through the model's own bf16 forward (`prefill_hf`).
A bf16 or fp32 model runs on ptst's fused kernels where they build (`ptst.runtime.fused`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from ptst.runtime import fused, native, packing
from ptst.runtime.decode import packed_forward
from ptst.runtime.linear import Linear

FAMILIES = ("llama", "mistral", "qwen2")
# A batch's prompts attend in one padded [B, heads, S, P + S] score tensor (fp32) when it has at most this many
# elements (256 MiB); longer prompts go through the model's own forward, attention row by row (`prefill_hf`).
PREFILL_SCORES_MAX = 1 << 26


def supported(model: Any) -> bool:
    """A plain (not PEFT-wrapped, unquantized) Llama/Mistral/Qwen2 causal LM on CPU in fp32/bf16/fp16 with full
    attention in every layer (a Mistral sliding window is refused) and SiLU MLPs."""
    cfg = getattr(model, "config", None)
    core = getattr(model, "model", None)
    if cfg is None or core is None or getattr(cfg, "model_type", None) not in FAMILIES:
        return False
    if getattr(cfg, "sliding_window", None) and (cfg.model_type == "mistral" or getattr(cfg, "use_sliding_window",
                                                                                          False)):
        return False
    if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return False
    try:
        dev, dtype = model.device, model.dtype
        layers = list(core.layers)
    except AttributeError:
        return False
    if dev.type != "cpu" or dtype not in (torch.float32, torch.bfloat16, torch.float16) or not layers:
        return False
    linear = [layers[0].self_attn.q_proj, layers[0].mlp.gate_proj, model.lm_head]
    return all(type(m) is torch.nn.Linear for m in linear) and packing.can_pack(model)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """SDPA over q [B, Hq, S, D] and grouped-query k/v [B, Hkv, L, D] (query head h reads key/value head
    h // (Hq / Hkv)), `mask` added to the scores. One fused kernel on CPU: on the quickstart's 48 prompts after the
    safety prompt (S 26, L 134, fp32) 4.5 ms a layer against 10.1 for matmuls, softmax and masking in separate
    ops, whose passes over the [B, H, S, L] scores dominated."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        try:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
        except TypeError:  # torch < 2.5: no enable_gqa
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _fp32(w: torch.Tensor) -> torch.Tensor:
    return w.detach().to(torch.float32)  # the same storage in an fp32 model


def _linear(mods: list[Any], batch_hint: int) -> Linear:
    return Linear([m.weight for m in mods], [m.bias for m in mods], batch_hint)


@dataclass(frozen=True)
class _Layer:
    norm1: torch.Tensor
    eps1: float
    qkv: Linear
    o: Linear
    norm2: torch.Tensor
    eps2: float
    gate_up: Linear
    down: Linear


class FastLM:
    """The decoding step of one model; build it once per model (`FastLM(model)`), it holds fused weights."""

    def __init__(self, model: Any, batch_hint: int = 16, fused_kernels: bool = True) -> None:
        """`fused_kernels`: a bf16 or fp32 model on ptst's compiled kernels where they build (`self.native`), else
        eager."""
        cfg = model.config
        self.model = model
        self.core = model.model
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        first = self.core.layers[0].self_attn
        self.head_dim = getattr(first, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.scaling = float(getattr(first, "scaling", self.head_dim ** -0.5))
        self.layers = []
        with torch.no_grad():
            for layer in self.core.layers:
                a, m = layer.self_attn, layer.mlp
                self.layers.append(_Layer(
                    _fp32(layer.input_layernorm.weight), float(layer.input_layernorm.variance_epsilon),
                    _linear([a.q_proj, a.k_proj, a.v_proj], batch_hint), _linear([a.o_proj], batch_hint),
                    _fp32(layer.post_attention_layernorm.weight),
                    float(layer.post_attention_layernorm.variance_epsilon),
                    _linear([m.gate_proj, m.up_proj], batch_hint), _linear([m.down_proj], batch_hint)))
            self.lm_head = _linear([model.lm_head], batch_hint)
            # the largest norm of a token's row of the head: bounds the error of its half-precision product
            w = self.lm_head.weight
            self.head_norm = 0.0 if w.dtype == torch.float32 else max(
                float(torch.linalg.vector_norm(w[i: i + 4096], dim=-1, dtype=torch.float32).amax())
                for i in range(0, w.shape[0], 4096))
        vocab = self.lm_head.weight.shape[0]
        self.head_block = next((k for k in range(1024, 63, -1) if vocab % k == 0), vocab)
        self.norm, self.norm_eps = _fp32(self.core.norm.weight), float(self.core.norm.variance_epsilon)
        self.embed = self.core.embed_tokens.weight
        self.dtype = self.embed.dtype  # the weights' and so the linear layers' inputs' (the residual stream: fp32)
        self.embed_scale = getattr(self.core.embed_tokens, "embed_scale", None)
        use = fused_kernels and self.head_dim % 2 == 0 and native.runs(str(self.dtype).removeprefix("torch."))
        self.native = native.kernels() if use else None

    @staticmethod
    def _norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        """The model's RMSNorm of the fp32 residual stream, times its weight (fp32): in an fp32 model exactly the
        model's own `w * h`."""
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def _rms(self, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        """`_norm`, rounded once to the weights' dtype for the linear layer it feeds (a fused kernel where built)."""
        if self.native is not None:
            return fused.rms(self.native, x, w, eps, self.dtype)
        return self._norm(x, w, eps).to(self.dtype)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """The next-token logits [N, V] of residual rows x [N, H] (fp32). In half precision the head's product
        runs in the weights' dtype, and every token that could be the row's maximum is computed again in fp32
        (`_refine`): the greedy choice is the fp32 argmax of the half-precision weights."""
        h = self._norm(x, self.norm, self.norm_eps)
        if self.dtype == torch.float32:
            return self.lm_head(h)
        if self.native is not None:  # bf16 here
            return fused.head(self, h)
        return self._refine(self.lm_head(h.to(self.dtype)).to(torch.float32), h)

    def _refine(self, logits: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Half-precision logits [N, V] with the candidates for each row's maximum replaced by their fp32 values
        from the fp32 hidden rows h [N, H]. A half-precision logit L_c is off from its fp32 value by at most its
        input's rounding (u |h| . |w_c| <= u ||h|| max_c ||w_c||, u = eps / 2) plus its own (u |L_c|) plus the
        fp32 sums' (at most H eps_fp32 |h| . |w_c| each, in oneDNN's product and here), so no token further than
        twice that below the row's half-precision maximum can be, or beat, the fp32 maximum: the window is
        (1.25 eps + 2 H eps_fp32) (||h|| max ||w_c|| + |max L|). The argmax of the result is the fp32 argmax of
        the half-precision weights. On SmolLM2-135M's benchmark answers: 6 candidates a row (median), 35 (p90), 389 at
        most, found block by block (`head_block` logits a block) so that the whole vocabulary is passed over once."""
        b, v = logits.shape
        blk = self.head_block
        blocks = logits.view(b, v // blk, blk)  # candidates found block by block: two small passes, not one large
        best = blocks.amax(-1)  # [N, V / blk]
        top = best.amax(-1)
        slack = 1.25 * torch.finfo(self.dtype).eps + 2 * h.shape[-1] * torch.finfo(torch.float32).eps
        low = top - slack * (h.norm(dim=-1) * self.head_norm + top.abs())  # NaN or inf rows: no candidates
        rows, blk_ids = (best >= low[:, None]).nonzero(as_tuple=True)
        hit, at = (blocks[rows, blk_ids] >= low[rows, None]).nonzero(as_tuple=True)
        rows, cols = rows[hit], blk_ids[hit] * blk + at
        exact = (h[rows] * self.lm_head.weight[cols].to(torch.float32)).sum(-1)
        if self.lm_head.bias is not None:
            exact = exact + self.lm_head.bias[cols].to(torch.float32)
        logits[rows, cols] = exact
        return logits

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """The model's `x * cos + rotate_half(x) * sin`, with rotate_half(x) * sin as roll(x) * sin_signed
        (`_signed`: the first half of sin negated): the same products, exactly, in two ops fewer."""
        return (x * cos) + (torch.roll(x, x.shape[-1] // 2, dims=-1) * sin)

    @staticmethod
    def _signed(sin: torch.Tensor) -> torch.Tensor:
        half = sin.shape[-1] // 2
        return torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)

    def step(self, ids: torch.Tensor, positions: torch.Tensor, cache: DecodeCache, col: int) -> torch.Tensor:
        """One token per row: ids [B], positions [B]; writes keys/values at column `col` of `cache`; returns the
        next-token logits [B, V]. Attention runs head-major ([Hkv, B, G, ...]) in fp32: the shared prefix's
        scores for every row and query head of a key/value head are one matrix product."""
        if self.native is not None:
            return fused.step(self, self.native, ids, positions, cache, col)
        b, d, hq, hkv = ids.shape[0], self.head_dim, self.n_heads, self.n_kv
        g, p = hq // hkv, cache.prefix
        x = F.embedding(ids, self.embed).to(torch.float32)
        if self.embed_scale is not None:
            x = x * self.embed_scale.to(x.dtype)
        cos, sin = self.core.rotary_emb(x, positions[:, None])  # [B, 1, D], fp32 (x's dtype)
        sin = self._signed(sin)
        width = col + 1
        mask = cache.mask[None, :, None, : p + width]  # [1, B, 1, P + W]
        for i, ly in enumerate(self.layers):
            qkv = ly.qkv(self._rms(x, ly.norm1, ly.eps1))
            qk = self._rope(qkv[:, : (hq + hkv) * d].view(b, hq + hkv, d), cos, sin)
            q = qk[:, :hq].view(b, hkv, g, d).transpose(0, 1)  # [Hkv, B, G, D], fp32 (the rotary's)
            kc, vc = cache.keys[i], cache.values[i]  # [Hkv*B, W_total, D], fp32, head-major
            kc.view(hkv, b, -1, d)[:, :, col] = qk[:, hq:].transpose(0, 1)
            vc.view(hkv, b, -1, d)[:, :, col] = qkv[:, (hq + hkv) * d:].view(b, hkv, d).transpose(0, 1)
            own = torch.bmm(kc[:, :width], q.reshape(hkv * b, g, d).transpose(1, 2))  # [Hkv*B, W, G]
            own = own.view(hkv, b, width, g).transpose(2, 3)
            if p:
                shared = torch.bmm(q.reshape(hkv, b * g, d), cache.prefix_keys[i].transpose(1, 2))  # [Hkv, B*G, P]
                scores = torch.cat([shared.view(hkv, b, g, p), own], dim=-1)
            else:
                scores = own
            probs = torch.softmax(scores * self.scaling + mask, dim=-1)  # [Hkv, B, G, P + W]
            out = torch.bmm(probs[..., p:].reshape(hkv * b, g, width), vc[:, :width]).view(hkv, b * g, d)
            if p:
                out = out + torch.bmm(probs[..., :p].reshape(hkv, b * g, p), cache.prefix_values[i])
            x = x + ly.o(out.view(hkv, b, g * d).transpose(0, 1).to(self.dtype).reshape(b, hq * d))
            x = self._mlp_residual(x, ly)
        return self._head(x)

    def _mlp_residual(self, x: torch.Tensor, ly: _Layer) -> torch.Tensor:
        gate_up = ly.gate_up(self._rms(x, ly.norm2, ly.eps2))
        if self.native is not None:
            return x + ly.down(fused.silu_mul(self.native, gate_up))
        gate, up = gate_up.chunk(2, dim=-1)
        return x + ly.down(F.silu(gate) * up)

    def prompts(self, ids: torch.Tensor, pos: torch.Tensor, row: torch.Tensor, col: torch.Tensor, b: int, s: int,
                keys: list[torch.Tensor], values: list[torch.Tensor],
                prefix: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor] | None] | None,
                mask: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Prompt tokens packed in one sequence (ids, pos [T]; token t belongs to row `row[t]` at column `col[t]`
        of a [B, S] left-padded layout): the linear layers run on the T real tokens only, attention (`_sdpa`, fp32)
        on the padded layout, each row causally after the shared prefix's keys/values (`prefix`, [Hkv, P, D] per layer,
        with the keys transposed for the fused kernels, `fused.prefix_transposed`, or None).
        Writes the rows' keys/values into `keys`/`values` ([B*Hkv, >= S, D] per layer) and returns the logits of
        the tokens at `last` (indices into T). `mask` [B, 1, S, P + S] is 0 where a query may attend, -inf not."""
        d, hq, hkv = self.head_dim, self.n_heads, self.n_kv
        t = ids.shape[0]
        pk, pv, pkt = prefix if prefix is not None else ([], [], None)
        p = pk[0].shape[1] if pk else 0
        x = F.embedding(ids, self.embed).to(torch.float32)
        if self.embed_scale is not None:
            x = x * self.embed_scale.to(x.dtype)
        cos, sin = self.core.rotary_emb(x[None], pos[None])
        cos, sin = cos[0, :, None], self._signed(sin[0, :, None])  # [T, 1, D]
        kernel = self.native is not None and values[0].dtype == self.dtype  # `prefill`'s rows on the kernels
        if kernel:
            starts = torch.cat([row.new_zeros(1), torch.bincount(row, minlength=b).cumsum(0)])  # rows in order
            rope = cos[:, 0].contiguous(), sin[:, 0].contiguous()
            pkt = fused.prefix_transposed(pk) if p and pkt is None else pkt
        for i, ly in enumerate(self.layers):
            qkv = ly.qkv(self._rms(x, ly.norm1, ly.eps1))
            if kernel:
                shared = (pk[i], pkt[i], pv[i]) if p and pkt is not None else None  # pkt: set above when p
                x = x + ly.o(fused.prompt_attention(self, qkv, *rope, keys[i], values[i], starts, s, shared, b))
                x = self._mlp_residual(x, ly)
                continue
            qk = self._rope(qkv[:, : (hq + hkv) * d].view(t, hq + hkv, d), cos, sin)  # fp32 (the rotary's)
            kc, vc = keys[i].view(hkv, b, -1, d), values[i].view(hkv, b, -1, d)
            kc[:, row, col] = qk[:, hq:].transpose(0, 1)
            vc[:, row, col] = qkv[:, (hq + hkv) * d:].view(t, hkv, d).transpose(0, 1).to(torch.float32)
            qp = qk.new_zeros((b, s, hq, d))
            qp[row, col] = qk[:, :hq]
            k, v = kc[:, :, :s].transpose(0, 1), vc[:, :, :s].transpose(0, 1)  # [B, Hkv, S, D]
            if p:  # the shared prefix's keys/values before every row's own (a copy per row, for one kernel call)
                k = torch.cat([pk[i][None].expand(b, -1, -1, -1), k], dim=2)
                v = torch.cat([pv[i][None].expand(b, -1, -1, -1), v], dim=2)
            out = _sdpa(qp.transpose(1, 2), k, v, mask, self.scaling)  # [B, Hq, S, D]
            x = x + ly.o(out.transpose(1, 2)[row, col].reshape(t, hq * d).to(self.dtype))
            x = self._mlp_residual(x, ly)
        return self._head(x[last])

    def prefill(self, rows: list[list[int]], prefix: int, max_new_tokens: int,
                shared: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None) -> tuple[
            DecodeCache, torch.Tensor, torch.Tensor, int]:
        """The prompts through `prompts` (the shared prefix first, once, then every row's own tokens after it),
        laid out for `step`. `shared`: the prefix's keys and values from an earlier prefill of the same prefix
        (not computed again). Returns (cache, logits of each row's last prompt token [B, V], each row's last
        position [B], the first free column)."""
        dev, dtype = self.embed.device, torch.float32  # keys and values kept in fp32 (see the module's docstring)
        vtype = self.dtype if self.native is not None else dtype  # the fused kernels' values: bf16 (exact) or fp32
        hkv, d = self.n_kv, self.head_dim
        pkeys, pvalues = shared if shared is not None and prefix else ([], [])
        if prefix and shared is None:
            kp = [torch.zeros((hkv, prefix, d), dtype=dtype, device=dev) for _ in self.layers]
            vp = [torch.zeros((hkv, prefix, d), dtype=vtype, device=dev) for _ in self.layers]
            at = torch.arange(prefix, device=dev)
            causal = torch.full((prefix, prefix), float("-inf"), device=dev).triu(1)[None, None]
            self.prompts(torch.tensor(rows[0][:prefix], device=dev), at, torch.zeros_like(at), at, 1, prefix,
                         kp, vp, None, causal, at[-1:])
            pkeys, pvalues = kp, [v.to(dtype) for v in vp]  # kept in fp32 (bf16 values convert exactly)
        lengths = [len(r) - prefix for r in rows]
        b, s = len(rows), max(lengths)
        total = s + max_new_tokens
        keys = [torch.zeros((b * hkv, total, d), dtype=dtype, device=dev) for _ in self.layers]
        values = [torch.zeros((b * hkv, total, d), dtype=vtype, device=dev) for _ in self.layers]
        n = torch.tensor(lengths, device=dev)
        row = torch.repeat_interleave(torch.arange(b, device=dev), n)
        starts = (s - n)[row]
        col = starts + torch.arange(row.shape[0], device=dev) - torch.repeat_interleave(n.cumsum(0) - n, n)
        ids = torch.tensor([tok for r in rows for tok in r[prefix:]], device=dev)
        pad = torch.arange(s, device=dev)[None, :] < (s - n)[:, None]  # [B, S]: left padding
        allowed = torch.ones((s, s), dtype=torch.bool, device=dev).tril()[None] & ~pad[:, None, :]
        allowed |= torch.eye(s, dtype=torch.bool, device=dev)[None]  # a pad query sees itself (no empty softmax)
        own = torch.zeros((b, s, s), device=dev).masked_fill(~allowed, float("-inf"))
        mask = torch.cat([torch.zeros((b, s, prefix), device=dev), own], dim=-1)[:, None]
        pkt = fused.prefix_transposed(pkeys) if prefix and self.native is not None else None  # once, for both
        logits = self.prompts(ids, col - s + prefix + n[row], row, col, b, s, keys, values,
                              (pkeys, pvalues, pkt) if prefix else None, mask, n.cumsum(0) - 1)
        decode_mask = torch.zeros((b, prefix + total), dtype=torch.float32, device=dev)
        decode_mask[:, prefix: prefix + s] = torch.where(pad, float("-inf"), 0.0)
        return DecodeCache(keys, values, pkeys, pvalues, prefix, decode_mask, pkt), logits, n + prefix - 1, s

@dataclass
class DecodeCache:
    """Keys and values laid out [Hkv*B, W, D] per layer, head-major (head h of row b at h*B + b), in fp32 (the
    values in bf16 on the fused kernels, which hold the bf16 projection's output exactly),
    left-padded: row b's prompt suffix ends at column `width - 1`, generated tokens follow in the same column for
    every row; `mask` [B, P + W] is 0 where a row has a real token (the prefix included) and -inf on its left
    padding. The shared prefix's keys/values [Hkv, P, D] are kept once."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    prefix_keys: list[torch.Tensor]
    prefix_values: list[torch.Tensor]
    prefix: int
    mask: torch.Tensor
    prefix_keys_t: list[torch.Tensor] | None = None  # the fused step's transposed copy (ptst.runtime.fused)

    def select(self, rows: torch.Tensor, width: int) -> None:
        """Keep only `rows` (a compaction after rows finished); columns past `width` are not copied."""
        b = self.mask.shape[0]
        for store in (self.keys, self.values):
            for i, t in enumerate(store):
                per_row = t.view(-1, b, *t.shape[1:])  # [Hkv, B, W_total, D]
                kept = t.new_empty((per_row.shape[0], len(rows), *t.shape[1:]))
                kept[:, :, :width] = per_row[:, rows, :width]
                store[i] = kept.view(-1, *t.shape[1:])
        self.mask = self.mask[rows]


def prefill_hf(model: Any, rows: list[list[int]], prefix: int, max_new_tokens: int) -> tuple[
        DecodeCache, torch.Tensor, torch.Tensor, int]:
    """`FastLM.prefill` through the model's own forward (packed, the shared prefix once, attention row by row),
    for prompts whose padded attention scores would not fit `PREFILL_SCORES_MAX`; keys and values laid out for
    `FastLM.step`. Returns (cache, logits of each row's last prompt token [B, V], each row's last
    position [B], the first free column)."""
    dev = model.device
    packed, logits, lengths, segments = packed_forward(model, rows, prefix)
    width = max(lengths)
    total = width + max_new_tokens
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    pkeys: list[torch.Tensor] = []
    pvalues: list[torch.Tensor] = []
    layers: list[Any] = list(packed.layers)  # plain full-attention layers: supported() checked can_pack
    for layer in layers:
        for src, own, shared in ((layer.keys, keys, pkeys), (layer.values, values, pvalues)):
            t = src.new_zeros((src.shape[1], len(rows), total, src.shape[3]), dtype=torch.float32)
            for b, (s, n) in enumerate(zip(segments[:-1], lengths, strict=True)):
                t[:, b, width - n: width] = src[0, :, prefix + s: prefix + s + n]
            own.append(t.view(-1, total, src.shape[3]))
            shared.append(src[0, :, :prefix].to(torch.float32).contiguous())  # a slice: `to` alone may not copy
    mask = torch.zeros((len(rows), prefix + total), dtype=torch.float32, device=dev)
    for b, n in enumerate(lengths):
        mask[b, prefix: prefix + width - n] = float("-inf")
    last = torch.tensor([prefix + n - 1 for n in lengths], device=dev)
    return DecodeCache(keys, values, pkeys, pvalues, prefix, mask), logits, last, width
