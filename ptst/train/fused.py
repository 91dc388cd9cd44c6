"""The decoder's RMSNorms and MLP SiLU products on the fused kernels during LoRA training (`native.c`'s
`ptst_rms_forward/backward`, `ptst_silu_forward/backward`).

Llama's RMSNorm is eight eager operations forward (a cast to fp32, the square, the mean, the epsilon, the inverse
square root, the product, the cast back, the weight) and about a dozen backward, each a pass over the [tokens,
hidden] activations, with an fp32 copy of them kept for the backward pass; its MLP's `act_fn(gate) * up` is two
forward and three backward. With a frozen norm weight (LoRA) a kernel does each forward in one pass, keeping only
one number a row for the norm, and each backward in one more. They compute what those operations compute: in
fp32, with a bf16 model's roundings where its operations round (bf16(w * bf16(x * r)) and bf16(g * w) for the norm,
bf16(bf16(silu(g)) * u) and each product's gradient for the MLP). The sums and the exponential run otherwise than
torch's, so results can differ in the last bits, as any two kernels' do.

Only the classes written as Llama's are taken (NORMS and MLPS: the families whose forward is that code;
`tests/train/test_fused.py` checks each against its own forward and gradients), on CPU tensors in bf16 or fp32,
where the kernels build (`PTST_NATIVE=0`: the model's own forward). A call that does not fit (another device or
dtype, a trainable norm weight in full fine-tuning) runs the model's own forward."""

from __future__ import annotations

from typing import Any

import torch

from ptst.runtime import native

# The RMSNorm classes whose forward is Llama's: fp32 norm, cast to the input's dtype, then times the weight
# (OLMo-2 multiplies before the cast and Gemma by 1 + weight: not these)
NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "MixtralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm", "Phi3RMSNorm",
         "SmolLM3RMSNorm")
# The MLP classes whose forward is Llama's down(act(gate(x)) * up(x)); taken where act is SiLU (Phi-3 fuses gate
# and up in one product, Mixtral routes to experts: not these)
MLPS = ("LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP", "SmolLM3MLP")
SILU = ("SiLU", "SiLUActivation")
_DTYPES = (torch.bfloat16, torch.float32)


def _f32(x: torch.Tensor) -> int:
    return int(x.dtype == torch.float32)


class _Norm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        h = x.shape[-1]
        y = torch.empty_like(x)
        rinv = torch.empty(x.numel() // h, dtype=torch.float32)
        native.kernels().ptst_rms_forward(x.data_ptr(), w.data_ptr(), eps, x.numel() // h, h, y.data_ptr(),
                                          rinv.data_ptr(), _f32(x))
        ctx.save_for_backward(x, w, rinv)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, w, rinv = ctx.saved_tensors
        g = grad.contiguous()
        dx = torch.empty_like(x)
        h = x.shape[-1]
        native.kernels().ptst_rms_backward(x.data_ptr(), w.data_ptr(), g.data_ptr(), rinv.data_ptr(),
                                           x.numel() // h, h, dx.data_ptr(), _f32(x))
        return dx, None, None


class _SiluMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        y = torch.empty_like(g)
        native.kernels().ptst_silu_forward(g.data_ptr(), u.data_ptr(), g.numel(), y.data_ptr(), _f32(g))
        ctx.save_for_backward(g, u)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, u = ctx.saved_tensors
        dy = grad.contiguous()
        dg, du = torch.empty_like(g), torch.empty_like(u)
        native.kernels().ptst_silu_backward(g.data_ptr(), u.data_ptr(), dy.data_ptr(), g.numel(), dg.data_ptr(),
                                            du.data_ptr(), _f32(g))
        return dg, du


def fits(*xs: torch.Tensor) -> bool:
    """Whether the kernels take these tensors: CPU tensors of one dtype, bf16 or fp32, where the kernels build."""
    return all(x.device.type == "cpu" and x.dtype == xs[0].dtype for x in xs) and xs[0].dtype in _DTYPES and \
        native.available()


def _norm_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """A fused norm class's forward: the kernel where the call fits it, else the model's own."""
    w = self.weight
    if not fits(x, w) or w.requires_grad:
        return self._own_forward(x)
    return _Norm.apply(x.contiguous(), w.detach().contiguous(), float(self.variance_epsilon))


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """A fused MLP class's forward: down(silu(gate(x)) * up(x)), the product on the kernel where it fits."""
    g, u = self.gate_proj(x), self.up_proj(x)
    h = _SiluMul.apply(g.contiguous(), u.contiguous()) if fits(g, u) and g.shape == u.shape else self.act_fn(g) * u
    return self.down_proj(h)


_FUSED: dict[str, Any] = {}  # a class's qualified name -> its fused subclass (made once)


def fused_class(cls: Any, forward: Any) -> Any:
    """`cls` with `forward`: a subclass, so that what re-binds a module's forward by its class (transformers'
    `kernels` integration, on every `train()`/`eval()`) keeps it; `_own_forward` is the class's own."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name not in _FUSED:
        _FUSED[name] = type(f"Fused{cls.__name__}", (cls,), {"forward": forward, "_own_forward": cls.forward,
                                                             "__module__": __name__})
    return _FUSED[name]


def use_fused_layers(lm: Any) -> dict[str, int]:
    """Run every Llama-form RMSNorm with a frozen weight and every Llama-form SiLU MLP of `lm` on the kernels (in
    place, by class); returns how many of each ({} where the kernels do not build)."""
    if not native.available():
        return {}
    n = {"norms": 0, "mlps": 0}
    for m in lm.modules():
        name = type(m).__name__
        if name in NORMS and hasattr(m, "variance_epsilon") and not m.weight.requires_grad:
            m.__class__ = fused_class(type(m), _norm_forward)
            n["norms"] += 1
        elif name in MLPS and type(getattr(m, "act_fn", None)).__name__ in SILU and \
                all(hasattr(m, p) for p in ("gate_proj", "up_proj", "down_proj")):
            m.__class__ = fused_class(type(m), _mlp_forward)
            n["mlps"] += 1
    return n
