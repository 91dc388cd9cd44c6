"""The LM head and the summed cross-entropy over the trained rows, a chunk of rows at a time.

`F.cross_entropy(lm_head(rows).float(), targets)` materialises the [rows, vocabulary] logits in fp32, their
log-softmax and, in the backward pass, a gradient of the same size: with SmolLM2's 49k vocabulary and a batch of
1,742 trained rows, three fresh 342 MB buffers a step. Allocations that large come straight from the operating
system page by page, and in a training process on the 2-core Xeon (amx_bf16) they cost more than the arithmetic:
the log-softmax of such a batch took 410-684 ms in the step against ~100 ms alone, an empty-and-fill of its size
543 ms (docs/performance.md, "Training"). `head_loss` computes the same sum a chunk of rows at a time (each
chunk's logits under 16 MiB, so the allocator reuses one buffer), and the gradient of the rows' hidden states in
the same pass, while each chunk's softmax is at hand: no logits outlive their chunk.

The arithmetic is the autograd path's: the head's product in the autocast dtype where autocast is on (as
`F.linear` would run it), softmax and loss in fp32, the logits' gradient cast back to that dtype for the product
with the weight. One difference in rounding: the gradient is computed before the loss's scale (the caller's
division by the number of trained tokens) is known, so the scale multiplies the product instead of the logits'
gradient; both are exact to the dtype's rounding. Only for a frozen head without bias or soft-capping
(`supported`): the weight gets no gradient here."""

from __future__ import annotations

from typing import Any

import torch

CHUNK_BYTES = 16 << 20  # one chunk's fp32 logits; glibc reuses freed blocks below its 32 MiB mmap threshold


def supported(head: Any, softcap: float | None) -> bool:
    """A plain frozen Linear head without bias, and no logit soft-capping."""
    return (isinstance(head, torch.nn.Linear) and head.bias is None and not head.weight.requires_grad
            and not softcap)


def chunk_rows(vocab: int) -> int:
    return max(1, CHUNK_BYTES // (4 * vocab))


def _compute_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    dev = h.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return torch.promote_types(h.dtype, weight.dtype)


class _HeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                chunk: int) -> torch.Tensor:
        dtype = _compute_dtype(h, weight)
        w = weight.to(dtype)
        need_grad = ctx.needs_input_grad[0]
        grad = torch.empty_like(h) if need_grad else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for i in range(0, h.shape[0], chunk):
                logits = torch.nn.functional.linear(h[i: i + chunk].to(dtype), w).float()  # [C, V]
                t = targets[i: i + chunk]
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                if grad is not None:  # d(sum of CE)/d(logits) = softmax - one-hot, then through the head
                    probs = logits.sub_(lse[:, None]).exp_()
                    probs[torch.arange(t.shape[0], device=t.device), t] -= 1.0
                    grad[i: i + chunk] = (probs.to(dtype) @ w).to(h.dtype)
        ctx.save_for_backward(grad if grad is not None else h.new_empty(0))
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad * grad_out.to(grad.dtype) if ctx.needs_input_grad[0] else None), None, None, None


def head_loss(rows: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int | None = None) -> \
        torch.Tensor:
    """sum over rows of cross_entropy(head(rows), targets), in fp32; `rows` [R, hidden], `targets` [R]."""
    return _HeadLoss.apply(rows, head.weight, targets, chunk or chunk_rows(head.weight.shape[0]))
