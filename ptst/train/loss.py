"""The LM head and the summed cross-entropy over the trained rows, a chunk of rows at a time.

`F.cross_entropy(lm_head(rows).float(), targets)` materialises the [rows, vocabulary] logits in fp32, their
log-softmax and, in the backward pass, a gradient of the same size: with SmolLM2's 49k vocabulary and a batch of
1,742 trained rows, three fresh 342 MB buffers a step. Allocations that large come straight from the operating
system page by page, and in a training process on the 2-core Xeon (amx_bf16) they cost more than the arithmetic: the
log-softmax of such a batch took 410-684 ms in the step against ~100 ms alone, an empty-and-fill of its size 543 ms
(docs/performance.md, "Training"). `head_loss` computes the same sum a chunk of rows at a time (each chunk's logits
under 16 MiB on a CPU, so the allocator reuses one buffer; 256 MiB on an accelerator), keeping only the rows. Where
the rows need a gradient it is computed in the same forward pass, from the same logits: the loss is a sum, so its
gradient for the rows is sum_r (softmax(z_r) - onehot(t_r)) W, which the backward pass only scales by grad_out. So
each chunk's logits are computed once, not again in the backward pass (before: three products with the head a chunk,
now two), and no log-probabilities, one-hot gradients or casts of the chunk are written: on the fused kernels
(`xent_`, `native_softmax.c`; with their AVX-512 path) one pass over a chunk finds each row's largest logit, one
sums the exponentials and one writes the gradient over the logits in their own dtype. On the 2-core Xeon (amx_bf16),
1,000 rows in bf16 took 192-196 ms against 470-528 ms for the chunked path before (the products alone: 232-256 ms
for its three), 1.04-1.10x on a pass of `bench_train.py` (docs/performance.md). Without them, torch's operations
compute the same in fp32. The result equals F.cross_entropy on the full logits up to float rounding: the exponential
is Cephes' (~1 ulp), and in bf16 the gradient is rounded before the scale grad_out is applied (before: after). Only
for a frozen head without bias or soft-capping (`supported`): the weight gets no gradient here."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from ptst.runtime import native

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
        """The loss, and where the rows need a gradient, that gradient too, for a grad_out of 1: a chunk's logits
        are needed for both, so they are computed once (the loss is a sum, so backward only scales it)."""
        dtype = _compute_dtype(h, weight)
        want = ctx.needs_input_grad[0]
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad = torch.empty_like(h) if want else None
        with torch.autocast(h.device.type, enabled=False):
            w = weight.to(dtype)
            for i in range(0, h.shape[0], chunk):
                z = F.linear(h[i: i + chunk].to(dtype), w)
                total += xent_(z, targets[i: i + chunk].contiguous(), want).sum()
                if grad is not None:
                    grad[i: i + chunk] = z.mm(w).to(h.dtype)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable  # the head's own second derivative is not computed
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        if grad is None:
            return None, None, None, None
        return grad * grad_out.to(grad.dtype), None, None, None


def xent_(z: torch.Tensor, targets: torch.Tensor, grad: bool) -> torch.Tensor:
    """Each row's cross-entropy [R] (fp32) of the logits z [R, V] (any float dtype) at `targets` [R] (IGNORE: 0).
    With `grad`, z is overwritten by the gradient of their sum for the logits, softmax(z) - onehot(target) in z's
    dtype (a zero row for an ignored target). On the fused kernels (`native_softmax.c`'s `ptst_xent`) where they
    take z (a CPU tensor in bf16 or fp32) with their AVX-512 path: one pass for the row's largest logit, one for
    the sum of exponentials, one writing the gradient. Elsewhere torch's operations, the same in fp32: on the
    portable build they were the faster (1,000 fp32 rows: 931 against 1,075-1,139 ms, the Xeon capped to AVX2)."""
    if z.is_contiguous() and native.takes(z) and native.wide() and targets.dtype == torch.int64 and \
            targets.device.type == "cpu":
        loss = torch.empty(z.shape[0], dtype=torch.float32)
        native.kernels().ptst_xent(z.data_ptr(), z.shape[0], z.shape[1], targets.data_ptr(), loss.data_ptr(),
                                   int(grad), int(z.dtype == torch.float32))
        return loss
    x = z.float()
    lse = torch.logsumexp(x, dim=-1)
    keep, at = targets != IGNORE, targets.clamp_min(0)[:, None]
    loss = torch.where(keep, lse - x.gather(1, at)[:, 0], torch.zeros_like(lse))
    if grad:
        d = (x - lse[:, None]).exp_()
        d.scatter_(1, at, d.gather(1, at) - 1)
        z.copy_(d.mul_(keep[:, None]))
    return loss


def head_loss(rows: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int | None = None) -> \
        torch.Tensor:
    """sum over rows of cross_entropy(head(rows), targets), in fp32; `rows` [R, hidden], `targets` [R]. Only for a
    head `supported` takes (the weight gets no gradient here)."""
    if not supported(head, None):
        raise ValueError("head_loss needs a frozen, unhooked torch.nn.Linear head without bias (see supported)")
    return _HeadLoss.apply(rows, head.weight, targets,
                           chunk or chunk_rows(head.weight.shape[0], rows.device.type))
