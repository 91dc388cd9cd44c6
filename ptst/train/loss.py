"""The LM head and the summed cross-entropy over the trained rows, a chunk of rows at a time.

`F.cross_entropy(lm_head(rows).float(), targets)` materialises the [rows, vocabulary] logits in fp32, their
log-softmax and, in the backward pass, a gradient of the same size: with SmolLM2's 49k vocabulary and a batch of
1,742 trained rows, three fresh 342 MB buffers a step. Allocations that large come straight from the operating
system page by page, and in a training process on the 2-core Xeon (amx_bf16) they cost more than the arithmetic: the
log-softmax of such a batch took 410-684 ms in the step against ~100 ms alone, an empty-and-fill of its size 543 ms
(docs/performance.md, "Training"). `head_loss` computes the same sum a chunk of rows at a time (each chunk's logits
under 16 MiB on a CPU, so the allocator reuses one buffer; 256 MiB on an accelerator), keeping only the rows; the
backward pass computes each chunk's logits again (one more product with the head, a few percent of a step) and takes
autograd's own steps on them: nll_loss's gradient, the log-softmax backward kernel, the casts and the product with
the weight. In fp32 the gradients were the old path's bit for bit on the Xeon (MKL's products there do not depend on
how many rows they run on); in bf16 oneDNN's products round differently for different row counts, so they differ by
bf16 rounding, as the old path's own would for another batch. Only for a frozen head without bias or soft-capping
(`supported`): the weight gets no gradient here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

CHUNK_BYTES = 16 << 20  # one chunk's fp32 logits; glibc reuses freed blocks below its 32 MiB mmap threshold
# On an accelerator the caching allocator reuses any size, and small products waste its launches: larger chunks.
CHUNK_BYTES_ACCELERATOR = 256 << 20
IGNORE = -100  # a target left out of the loss, as F.cross_entropy's default ignore_index
_AUTOCAST_DTYPE = getattr(torch, "get_autocast_dtype", None)  # torch < 2.4 has per-device functions instead


def supported(head: Any, softcap: float | None) -> bool:
    """A plain, frozen, unhooked `torch.nn.Linear` head without bias, and no logit soft-capping. Anything else (a
    trained head, a PEFT or quantised wrapper, a head whose hooks gather its weight first, as DeepSpeed ZeRO-3's
    and FSDP's do) keeps the full path, which calls the module."""
    return (type(head) is torch.nn.Linear and head.bias is None and not head.weight.requires_grad
            and head.weight.numel() > 0 and not softcap and not head._forward_hooks
            and not head._forward_pre_hooks and not hasattr(head, "_hf_hook"))


def chunk_rows(vocab: int, device_type: str = "cpu") -> int:
    """Rows per chunk: as many as keep one chunk's fp32 logits within CHUNK_BYTES (on a CPU) or
    CHUNK_BYTES_ACCELERATOR (elsewhere)."""
    return max(1, (CHUNK_BYTES if device_type == "cpu" else CHUNK_BYTES_ACCELERATOR) // (4 * vocab))


def _compute_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype `F.linear(h, weight)` would compute in here: autocast's where it is on."""
    dev = h.device.type
    if _AUTOCAST_DTYPE is not None:  # torch >= 2.4: one call for every device
        on, dtype = torch.is_autocast_enabled(dev), _AUTOCAST_DTYPE(dev)
    elif dev == "cpu":
        on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    else:
        on, dtype = torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
    return dtype if on else torch.promote_types(h.dtype, weight.dtype)


class _HeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                chunk: int) -> torch.Tensor:
        dtype = _compute_dtype(h, weight)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for i, logp in _log_probs(h, weight.to(dtype), dtype, chunk):
                total += F.nll_loss(logp, targets[i: i + chunk], reduction="sum", ignore_index=IGNORE)
        ctx.save_for_backward(h, weight, targets)
        ctx.chunk, ctx.dtype = chunk, dtype
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable  # the head's own second derivative is not computed
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        """Each chunk's logits again, then autograd's own steps for them: nll_loss's gradient (-grad_out at the
        target), log-softmax's backward kernel, the cast back to the product's dtype, the product with the
        weight, the cast to the rows' dtype."""
        h, weight, targets = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        dtype, grad = ctx.dtype, torch.empty_like(h)
        g = grad_out.to(torch.float32)
        with torch.autocast(h.device.type, enabled=False), torch.no_grad():
            w = weight.to(dtype)
            for i, logp in _log_probs(h, w, dtype, ctx.chunk):
                t = targets[i: i + ctx.chunk]
                # nll_loss's gradient: -grad_out at each target; none for an ignored one (no host sync on a GPU)
                d_logp = torch.zeros_like(logp).scatter_(
                    1, t.clamp_min(0)[:, None], torch.where(t != IGNORE, -g, torch.zeros_like(g))[:, None])
                d_logits = torch._log_softmax_backward_data(d_logp, logp, -1, torch.float32)
                grad[i: i + ctx.chunk] = d_logits.to(dtype).mm(w).to(h.dtype)
        return grad, None, None, None


def _log_probs(h: torch.Tensor, w: torch.Tensor, dtype: torch.dtype, chunk: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Each chunk's first row and its fp32 log-probabilities: the head's logits as `head(rows).float()` computes
    them under autocast (or without it; `w`: the weight in `dtype`), then log-softmax."""
    for i in range(0, h.shape[0], chunk):
        yield i, torch.log_softmax(F.linear(h[i: i + chunk].to(dtype), w).float(), dim=-1)


def head_loss(rows: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int | None = None) -> \
        torch.Tensor:
    """sum over rows of cross_entropy(head(rows), targets), in fp32; `rows` [R, hidden], `targets` [R]. Only for a
    head `supported` takes (the weight gets no gradient here)."""
    if not supported(head, None):
        raise ValueError("head_loss needs a frozen, unhooked torch.nn.Linear head without bias (see supported)")
    return _HeadLoss.apply(rows, head.weight, targets,
                           chunk or chunk_rows(head.weight.shape[0], rows.device.type))
