"""ptst's own decoding loop: KV cache, left padding, and finished rows dropped from the batch as they end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ptst.runtime.cache import cache_arg
from ptst.runtime.rows import left_pad

# Two savings over transformers' generate(): rows that end early (a refusal after 40 tokens) leave the batch and
# its KV cache instead of riding along until the longest answer ends, and a prefix every prompt shares (the
# safety system prompt of a safe-test template, ~110 tokens on SmolLM2) is run through the model once, not per row.


@dataclass(frozen=True)
class Decoded:
    token_ids: list[int]  # generated tokens, the end-of-turn token included when there was one
    finish_reason: str  # "stop" | "length"


def greedy(logits: Any, block: int = 1024) -> Any:
    """`logits.argmax(-1)` for [B, V] logits, the same index (the first maximum), in two passes over blocks: the
    maximum of each block of `block` logits, then the argmax inside each row's first best block. torch's argmax
    over a 49k vocabulary runs one thread a row (4.3 ms for 48 rows on a 2-core Xeon, 7% of a decoding step); the
    block maxima vectorise (0.5 ms)."""
    import torch

    b, v = logits.shape
    if v % block or v < 4 * block:
        return logits.argmax(-1)
    blocks = logits.view(b, v // block, block)
    best = blocks.amax(-1).argmax(-1)
    return best * block + blocks[torch.arange(b, device=logits.device), best].argmax(-1)


def make_sampler(temperature: float, top_p: float, seed: int, device: Any) -> Callable[[Any], Any]:
    """Greedy (temperature 0) or temperature + nucleus sampling with a private, seeded generator."""
    import torch

    if temperature == 0:
        return greedy
    gen = torch.Generator(device=device).manual_seed(seed)

    def sample(logits: Any) -> Any:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        if top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keeps the smallest prefix reaching top_p, >= 1 token
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1)

    return sample


def _prefill(model: Any, rows: Sequence[Sequence[int]], pad_id: int, prefix: int) -> tuple[Any, Any, Any, Any]:
    """Run the prompts through the model: (cache, attention mask, last position ids, logits of the last token).

    With `prefix` > 0 the shared prefix (the system prompt, under a safe-test template) is computed once and
    its KV cache repeated over the batch; each row's own suffix is left-padded after it: [prefix][pad][suffix].
    """
    import torch
    from transformers import DynamicCache

    dev, kw = model.device, cache_arg(model)
    cache = DynamicCache(config=model.config)
    ids, smask = left_pad([r[prefix:] for r in rows], pad_id)
    sids, smask_t = torch.tensor(ids, device=dev), torch.tensor(smask, device=dev)
    pos = (smask_t.cumsum(-1) - 1).masked_fill(smask_t == 0, 1) + prefix  # as generate() does for left padding
    mask = smask_t
    if prefix:
        head = torch.tensor([list(rows[0][:prefix])], device=dev)
        model(input_ids=head, position_ids=torch.arange(prefix, device=dev)[None], **{kw: cache},
              use_cache=True, logits_to_keep=1)
        cache.batch_repeat_interleave(len(rows))
        mask = torch.cat([smask_t.new_ones((len(rows), prefix)), smask_t], dim=1)
    out = model(input_ids=sids, attention_mask=mask, position_ids=pos, **{kw: cache}, use_cache=True,
                logits_to_keep=1)
    return cache, mask, pos[:, -1:], out.logits[:, -1, :]


def packed_forward(model: Any, rows: Sequence[Sequence[int]], prefix: int) -> tuple[Any, Any, list[int], list[int]]:
    """The prompts through the model's own forward without padding: the shared prefix once (a cache of batch size
    one), then every row's suffix concatenated in one row with per-row attention (`ptst.runtime.packing`).
    Returns (the packed DynamicCache [1, Hkv, prefix + T, D] per layer, each row's last-token logits [B, V], the
    suffix lengths, the segment boundaries [0, e_1, ..., T])."""
    import torch
    from transformers import DynamicCache

    from ptst.runtime import packing

    dev, kw = model.device, cache_arg(model)
    suffixes = [list(r[prefix:]) for r in rows]
    lengths = [len(x) for x in suffixes]
    ends = torch.tensor(lengths, device=dev).cumsum(0)
    segments = [0, *ends.tolist()]
    flat = torch.tensor([[t for x in suffixes for t in x]], device=dev)
    pos = torch.tensor([[prefix + i for n in lengths for i in range(n)]], device=dev)
    packed = DynamicCache(config=model.config)
    with packing.attention(model):
        if prefix:
            model(input_ids=torch.tensor([list(rows[0][:prefix])], device=dev), **{kw: packed},
                  use_cache=True, logits_to_keep=1, **{packing.SEGMENTS: [0, prefix]})
        logits = model(input_ids=flat, position_ids=pos, **{kw: packed}, use_cache=True,
                       logits_to_keep=ends - 1, **{packing.SEGMENTS: segments}).logits[0]
    return packed, logits, lengths, segments


def _prefill_packed(model: Any, rows: Sequence[Sequence[int]], pad_id: int, prefix: int) -> tuple[Any, Any, Any, Any]:
    """`_prefill` without computing the padding: the rows' suffixes run concatenated in one row with per-row
    attention (`ptst.runtime.packing`; after the shared prefix, from a cache of batch size one), then their keys and
    values are laid out left-padded, [prefix][pad][suffix], for the decoding steps, as `_prefill` leaves them."""
    import torch
    from transformers import DynamicCache

    dev = model.device
    packed, logits, lengths, segments = packed_forward(model, rows, prefix)
    suffixes = [list(r[prefix:]) for r in rows]
    width = max(lengths)
    cache = DynamicCache(config=model.config)
    layers: list[Any] = list(packed.layers)  # plain full-attention layers: can_pack checked the model
    for i, layer in enumerate(layers):
        k_in, v_in = layer.keys, layer.values  # [1, Hkv, prefix + T, D]
        k = k_in.new_zeros((len(rows), k_in.shape[1], prefix + width, k_in.shape[3]))
        v = v_in.new_zeros((len(rows), v_in.shape[1], prefix + width, v_in.shape[3]))
        k[:, :, :prefix], v[:, :, :prefix] = k_in[:, :, :prefix], v_in[:, :, :prefix]
        for b, (s, n) in enumerate(zip(segments[:-1], lengths, strict=True)):
            k[b, :, prefix + width - n:] = k_in[0, :, prefix + s: prefix + s + n]
            v[b, :, prefix + width - n:] = v_in[0, :, prefix + s: prefix + s + n]
        cache.update(k, v, i)
    _, smask = left_pad(suffixes, pad_id)
    mask = torch.cat([torch.ones((len(rows), prefix), dtype=torch.long, device=dev),
                      torch.tensor(smask, device=dev)], dim=1)
    last = torch.tensor([[prefix + n - 1] for n in lengths], device=dev)
    return cache, mask, last, logits


def decode_loop(model: Any, rows: Sequence[Sequence[int]], pad_id: int, *, max_new_tokens: int,
                stop_ids: set[int], sampler: Callable[[Any], Any], prefix: int = 0,
                stop_check: Callable[[list[int]], bool] | None = None,
                on_step: Callable[[int], None] | None = None, pack: bool = False) -> list[Decoded]:
    """Generate for a batch of token rows; a row leaves the batch at its first stop token, stop string or limit.
    `pack`: prefill rows of different lengths without padding (`_prefill_packed`; models `ptst.runtime.packing`
    supports)."""
    import torch

    uneven = len({len(r) for r in rows}) > 1
    cache_kw = cache_arg(model)
    cache, mask, last, logits = (_prefill_packed if pack and uneven else _prefill)(model, rows, pad_id, prefix)
    n = len(rows)
    live = list(range(n))
    tokens: list[list[int]] = [[] for _ in range(n)]
    reasons = ["length"] * n
    for step in range(max_new_tokens):
        nxt = sampler(logits)
        keep = []
        for j, (row, tok) in enumerate(zip(live, nxt.tolist(), strict=True)):
            tokens[row].append(tok)
            if tok in stop_ids or (stop_check is not None and stop_check(tokens[row])):
                reasons[row] = "stop"
            else:
                keep.append(j)
        if on_step is not None:
            on_step(len(live))
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(live):
            idx = torch.tensor(keep, device=nxt.device)
            cache.batch_select_indices(idx)
            mask, nxt, last = mask[idx], nxt[idx], last[idx]
            live = [live[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        last = last + 1
        logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last, **{cache_kw: cache},
                       use_cache=True).logits[:, -1, :]
    return [Decoded(t, r) for t, r in zip(tokens, reasons, strict=True)]
