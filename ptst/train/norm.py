"""The decoder's RMSNorms on the fused kernels during LoRA training (`native.c`'s `ptst_rms_forward/backward`).

Llama's RMSNorm is eight eager operations forward (a cast to fp32, the square, the mean, the epsilon, the inverse
square root, the product, the cast back, the weight) and about a dozen backward, each a pass over the [tokens,
hidden] activations, with an fp32 copy of them kept for the backward pass. With a frozen weight (LoRA) the kernel
does the forward in one pass, keeping only one number a row, and the gradient for the input in one more. It
computes what those operations compute, in fp32 with a bf16 model's two roundings (bf16(w * bf16(x * r))) and the
gradient's (bf16(g * w)); the sums run in another order than torch's, so results can differ in the last bits, as
any two kernels' do.

Only the norms written as Llama's are taken (NORMS, the class names of the families whose forward is that code;
`tests/train/test_norm.py` checks each against its own forward), on CPU tensors in bf16 or fp32 matching the
weight, where the kernels build (`PTST_NATIVE=0`: the model's own forward). A trainable weight (full fine-tuning)
keeps the model's own forward."""

from __future__ import annotations

from typing import Any

import torch

from ptst.runtime import native

# The RMSNorm classes whose forward is Llama's: fp32 norm, cast to the input's dtype, then times the weight
# (OLMo-2 multiplies before the cast and Gemma by 1 + weight: not these)
NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "MixtralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Phi3RMSNorm",
         "SmolLM3RMSNorm")


class _Norm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        h = x.shape[-1]
        rows = x.numel() // h
        y = torch.empty_like(x)
        rinv = torch.empty(rows, dtype=torch.float32)
        native.kernels().ptst_rms_forward(x.data_ptr(), w.data_ptr(), eps, rows, h, y.data_ptr(), rinv.data_ptr(),
                                          int(x.dtype == torch.float32))
        ctx.save_for_backward(x, w, rinv)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, w, rinv = ctx.saved_tensors
        g = grad.contiguous()
        dx = torch.empty_like(x)
        h = x.shape[-1]
        native.kernels().ptst_rms_backward(x.data_ptr(), w.data_ptr(), g.data_ptr(), rinv.data_ptr(),
                                           x.numel() // h, h, dx.data_ptr(), int(x.dtype == torch.float32))
        return dx, None, None


def _forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """The forward of a fused norm class: the kernel where the call fits it, else the model's own."""
    w = self.weight
    if x.device.type != "cpu" or x.dtype != w.dtype or x.dtype not in (torch.bfloat16, torch.float32) \
            or w.requires_grad:
        return self._own_forward(x)
    return _Norm.apply(x.contiguous(), w.detach().contiguous(), float(self.variance_epsilon))


_FUSED: dict[str, Any] = {}  # a norm class's qualified name -> its fused subclass (made once)


def fused_class(cls: Any) -> Any:
    """`cls` with the kernel's forward: a subclass, so that what re-binds a module's forward by its class
    (transformers' `kernels` integration, on every `train()`/`eval()`) keeps it."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in _FUSED:
        _FUSED[name] = type(f"Fused{cls.__name__}", (cls,), {"forward": _forward, "_own_forward": cls.forward,
                                                             "__module__": __name__})
    return _FUSED[name]


def use_fused_norms(lm: Any) -> int:
    """Run every Llama-form RMSNorm of `lm` whose weight is frozen on the kernels (in place, by its class; its own
    forward wherever a call does not fit them); returns how many. 0 where the kernels do not build."""
    if not native.available():
        return 0
    n = 0
    for m in lm.modules():
        if type(m).__name__ in NORMS and hasattr(m, "variance_epsilon") and not m.weight.requires_grad:
            m.__class__ = fused_class(type(m))
            n += 1
    return n
