"""LoRA's dropout on the fused kernels (`native.c`'s `ptst_dropout`): one pass over the input, no mask in memory.

PEFT puts an `nn.Dropout` before each adapted layer's `lora_A`. On a CPU torch draws its Bernoulli mask one element
at a time from its Mersenne Twister (4.3 ms for a [1700, 576] batch here, 8% of a LoRA step at the default dropout
0.05), then multiplies twice and keeps the mask for the backward pass. The kernel instead keeps element i when a
counter-based 32-bit draw at (seed, i) is >= p * 2^32, and writes x * 1/(1-p) or 0 in the same pass; the backward
pass is the same call on the gradient with the same seed, so the mask is never stored. The seed of each call is
drawn from torch's default generator, so `torch.manual_seed` (the run's seed) makes a run repeatable, and a resumed
run continues the generator as before.

The masks are other draws than torch's, with the same keep probability (to 2^-32): a run with dropout gets another
adapter than with `nn.Dropout` from the same seed, as from another seed. Used on CPU tensors in bf16 or fp32
where the kernels build (`PTST_NATIVE=0`: torch's own dropout); anything else falls back to `F.dropout`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ptst.runtime import native

KERNEL = "ptst-native"  # what spec.json records as the dropout's implementation when the kernel runs


def _call(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    y = torch.empty_like(x)
    thresh = min(round(p * 2**32), 2**32 - 1)
    native.kernels().ptst_dropout(x.data_ptr(), y.data_ptr(), x.numel(), thresh, 1.0 / (1.0 - p), seed,
                                  int(x.dtype == torch.float32))
    return y


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
        ctx.p, ctx.seed = p, seed
        return _call(x, p, seed)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return _call(grad.contiguous(), ctx.p, ctx.seed), None, None


def _kernel(x: torch.Tensor, p: float, training: bool) -> bool:
    return training and 0.0 < p < 1.0 and native.takes(x)


def _native(x: torch.Tensor, p: float) -> torch.Tensor:
    seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64).item())  # from torch's generator: seeded
    return _Dropout.apply(x.contiguous(), p, seed)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)` with the kernel's masks where it runs (a CPU tensor in bf16 or fp32)."""
    if not training or p == 0.0:
        return x
    return _native(x, p) if _kernel(x, p, training) else F.dropout(x, p, training)


class NativeDropout(torch.nn.Dropout):
    """An `nn.Dropout` (same `p`, same `train()`/`eval()`) whose masks come from the kernel where it fits."""

    ran_kernel = False  # set once a training forward has drawn its mask in the kernel (spec.json says which ran)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _kernel(x, self.p, self.training):
            return dropout(x, self.p, self.training)
        self.ran_kernel = True
        return _native(x, self.p)


def lora_dropouts(lm: Any) -> Iterator[tuple[torch.nn.ModuleDict, str, torch.nn.Dropout]]:
    """Each LoRA layer's dropout with p > 0, with the ModuleDict that holds it and its adapter's name."""
    for m in lm.modules():
        drops = getattr(m, "lora_dropout", None)
        if isinstance(drops, torch.nn.ModuleDict):
            for name, d in list(drops.items()):
                if isinstance(d, torch.nn.Dropout) and d.p > 0:
                    yield drops, name, d


def masks(lm: Any) -> str | None:
    """Which dropout drew the LoRA layers' masks in this process: KERNEL, "torch", or None without dropout."""
    drops = [d for _, _, d in lora_dropouts(lm)]
    if not drops:
        return None
    return KERNEL if any(isinstance(d, NativeDropout) and d.ran_kernel for d in drops) else "torch"


def use_native_dropout(lm: Any) -> int:
    """Put `NativeDropout` in place of every LoRA layer's `nn.Dropout` (in place; 0 where the kernels do not build
    or nothing has dropout); returns how many were replaced."""
    if not native.available():
        return 0
    n = 0
    for holder, name, d in lora_dropouts(lm):
        if type(d) is torch.nn.Dropout:
            holder[name] = NativeDropout(d.p).train(d.training)
            n += 1
    return n
