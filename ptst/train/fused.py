"""The decoder's RMSNorms, MLP SiLU products and rotary embeddings on the fused kernels during LoRA training
(`native_train.c`'s `ptst_rms_forward/backward`, `ptst_silu_forward/backward`, `ptst_rope`).

Llama's RMSNorm is eight eager operations forward (a cast to fp32, the square, the mean, the epsilon, the inverse
square root, the product, the cast back, the weight) and about a dozen backward, each a pass over the [tokens,
hidden] activations, with an fp32 copy of them kept for the backward pass; its MLP's `act_fn(gate) * up` is two
forward and three backward; its rotary embedding (`apply_rotary_pos_emb`) five forward, for queries and keys each,
and as many backward. With a frozen norm weight (LoRA) a kernel does each forward in one pass, keeping only one
number a row for the norm, and each backward in one more. They compute what those operations compute: in fp32,
with a bf16 model's roundings where its operations round (bf16(w * bf16(x * r)) and bf16(g * w) for the norm,
bf16(bf16(silu(g)) * u) and each product's gradient for the MLP, each product and the sum for the rotation). The
norm's and SiLU's sums and exponential run otherwise than torch's, so their results can differ in the last bits,
as any two kernels' do; the rotation is the model's bit for bit, forward and backward.

Only the classes written as Llama's are taken (NORMS, MLPS and ATTENTIONS: the families whose forward is that
code; `tests/train/test_fused.py` checks each against its own forward and gradients), on CPU tensors in bf16 or
fp32, where the kernels build (`PTST_NATIVE=0`: the model's own forward). A call that does not fit (another device
or dtype, a trainable norm weight in full fine-tuning) runs the model's own forward. The attention's forward is its
own: only the module's `apply_rotary_pos_emb` runs on the kernel for the call (`rope`; the module's own function for
what the kernel does not take), where a probe finds it gives the kernel's numbers bit for bit (`_same`)."""

from __future__ import annotations

import inspect
from functools import cache, partial
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
# The attention classes whose forward rotates queries and keys with their module's `apply_rotary_pos_emb` in Llama's
# form (Phi-3 rotates part of each head: not these); each module's function is also checked against `rope` (`_same`)
ATTENTIONS = ("LlamaAttention", "MistralAttention", "Qwen2Attention", "Qwen3Attention")
ROPE = "apply_rotary_pos_emb"


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


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rope_call(x, cos, sin, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return _rope_call(grad, cos, sin, 1), None, None


def _rope_call(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, backward: int) -> torch.Tensor:
    """`ptst_rope` on x [B, H, T, D] (any strides with D contiguous), cos/sin [B or 1, T, D] contiguous."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    y = torch.empty_like(x)  # x's strides where x is dense, else contiguous: D contiguous either way
    b, h, t, d = x.shape
    native.kernels().ptst_rope(x.data_ptr(), x.stride(0), x.stride(1), x.stride(2), y.data_ptr(), y.stride(0),
                               y.stride(1), y.stride(2), cos.data_ptr(), sin.data_ptr(),
                               0 if cos.shape[0] == 1 else t * d, b, h, t, d, backward, _f32(x))
    return y


def _kernel_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> \
        tuple[torch.Tensor, torch.Tensor] | None:
    """Llama's `apply_rotary_pos_emb(q, k, cos, sin)` on the kernel, where it takes the call (q, k [B, H, T, D],
    cos and sin [B or 1, T, D], one dtype, no gradient for cos and sin); else None."""
    if q.dim() == 4 and cos.dim() == 3 and cos.shape == sin.shape and \
            cos.shape[-2:] == q.shape[-2:] == k.shape[-2:] and cos.shape[0] in (1, q.shape[0]) and \
            q.shape[-1] % 2 == 0 and native.takes(q, k, cos, sin) and not (cos.requires_grad or sin.requires_grad):
        cos, sin = cos.contiguous(), sin.contiguous()
        return _Rope.apply(q, cos, sin), _Rope.apply(k, cos, sin)
    return None


def rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *args: Any, own: Any,
         **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A module's `apply_rotary_pos_emb` (`own`), on the kernel where it takes the call (`_kernel_rope`; only with
    the default unsqueeze_dim of 1 and no other argument), else `own` with the call's arguments."""
    plain = not args and set(kwargs) <= {"unsqueeze_dim"} and kwargs.get("unsqueeze_dim", 1) == 1
    return (plain and _kernel_rope(q, k, cos, sin)) or own(q, k, cos, sin, *args, **kwargs)


def _norm_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """A fused norm class's forward: the kernel where the call fits it, else the model's own."""
    w = self.weight
    if not native.takes(x, w) or w.requires_grad:
        return self._own_forward(x)
    return _Norm.apply(x.contiguous(), w.detach().contiguous(), float(self.variance_epsilon))


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """A fused MLP class's forward: down(silu(gate(x)) * up(x)), the product on the kernel where it fits."""
    g, u = self.gate_proj(x), self.up_proj(x)
    fit = native.takes(g, u) and g.shape == u.shape
    h = _SiluMul.apply(g.contiguous(), u.contiguous()) if fit else self.act_fn(g) * u
    return self.down_proj(h)


def _attention_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    """A fused attention class's forward: its own, with `rope` as its module's `apply_rotary_pos_emb` for the call
    (the same numbers as Llama's, checked by `_same`; restored after it, also on an error)."""
    names = _globals(type(self)._own_forward)
    own = names[ROPE]
    names[ROPE] = partial(rope, own=own)
    try:
        return self._own_forward(*args, **kwargs)
    finally:
        names[ROPE] = own


def _globals(forward: Any) -> dict[str, Any]:
    """The module namespace a (possibly decorated) forward looks its names up in."""
    return inspect.unwrap(forward).__globals__


@cache
def _same(own: Any) -> bool:
    """Whether a module's `apply_rotary_pos_emb` gives the kernel's numbers, bit for bit, in bf16 and fp32 (a probe)."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        q, k = torch.randn(2, 3, 5, 32, generator=g).to(dtype), torch.randn(2, 1, 5, 32, generator=g).to(dtype)
        cos, sin = torch.randn(2, 5, 32, generator=g).to(dtype), torch.randn(2, 5, 32, generator=g).to(dtype)
        try:
            want = own(q, k, cos, sin)
        except Exception:  # noqa: BLE001 - another signature: not Llama's form
            return False
        got = _kernel_rope(q, k, cos, sin)
        if got is None or not all(torch.equal(a, b) for a, b in zip(want, got, strict=True)):
            return False
    return True


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
    n = {"norms": 0, "mlps": 0, "attention": 0}
    for m in lm.modules():
        name = type(m).__name__
        if name in NORMS and hasattr(m, "variance_epsilon") and not m.weight.requires_grad:
            m.__class__ = fused_class(type(m), _norm_forward)
            n["norms"] += 1
        elif name in MLPS and type(getattr(m, "act_fn", None)).__name__ in SILU and \
                all(hasattr(m, p) for p in ("gate_proj", "up_proj", "down_proj")):
            m.__class__ = fused_class(type(m), _mlp_forward)
            n["mlps"] += 1
        elif name in ATTENTIONS and callable(own := _globals(type(m).forward).get(ROPE)) and _same(own):
            m.__class__ = fused_class(type(m), _attention_forward)
            n["attention"] += 1
    return n
