"""The frozen RMSNorms on the fused kernels during LoRA training (ptst.train.norm): each family's own forward and
its autograd gradient, reproduced in bf16 (to the last bf16 bit, as any two kernels' sums differ) and fp32."""

from __future__ import annotations

import importlib

import pytest
import torch

from ptst.runtime import native
from ptst.train import norm as fn

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no fused kernels here: {native.why()}")


def _classes() -> list[type]:
    out = []
    for name in fn.NORMS:
        family = name[: -len("RMSNorm")].lower()
        try:
            mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except ImportError:
            continue
        out.append(getattr(mod, name))
    return out


def _pair(cls: type, dtype: torch.dtype, h: int = 96) -> tuple[torch.nn.Module, torch.nn.Module]:
    g = torch.Generator().manual_seed(1)
    own, fused = cls(h, eps=1e-5), cls(h, eps=1e-5)
    w = (torch.rand(h, generator=g) + 0.5).to(dtype)
    for m in (own, fused):
        m.to(dtype)
        m.weight.data.copy_(w)
        m.weight.requires_grad_(False)
    assert fn.use_fused_norms(fused) == 1
    return own, fused


def _ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The most bf16 steps between two bf16 tensors' elements."""
    ia, ib = (t.view(torch.int16).int() for t in (a, b))
    return int((ia - ib).abs().max())


def test_every_listed_family_is_in_this_transformers():
    assert {c.__name__ for c in _classes()} >= {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm"}


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_forward_and_gradient_are_the_models_own(cls, dtype):
    own, fused = _pair(cls, dtype)
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(3, 37, 96, generator=g) * 3).to(dtype)
    up = torch.randn(3, 37, 96, generator=g).to(dtype)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = own(xa), fused(xb)
    ya.backward(up)
    yb.backward(up)
    assert yb.dtype == dtype and yb.grad_fn is not None and "Norm" in type(yb.grad_fn).__name__
    if dtype == torch.bfloat16:
        assert _ulps(ya, yb) <= 1 and (ya != yb).float().mean() < 0.01
        assert _ulps(xa.grad, xb.grad) <= 2 and (xa.grad != xb.grad).float().mean() < 0.05
    else:
        torch.testing.assert_close(yb, ya, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-6)


def test_a_trainable_weight_keeps_the_models_own_forward():
    cls = _classes()[0]
    m = cls(16, eps=1e-6)
    assert fn.use_fused_norms(m) == 0  # trainable (full fine-tuning): not taken
    m.weight.requires_grad_(False)
    fn.use_fused_norms(m)
    m.weight.requires_grad_(True)  # made trainable afterwards: the call falls back, and the weight gets its grad
    m(torch.randn(2, 16)).sum().backward()
    assert m.weight.grad is not None


def test_lora_training_runs_every_norm_of_the_model_on_the_kernels(tiny_model_dir):
    from ptst.specs.train import TrainConfig
    from ptst.train.model import load_trainable

    cfg = TrainConfig(model=str(tiny_model_dir), data="x", template="chat:vanilla")
    lm = load_trainable(cfg, "fp32", str(tiny_model_dir))
    norms = [m for m in lm.modules() if "RMSNorm" in type(m).__name__]
    lm.eval()
    lm.train()  # transformers re-binds each layer's forward by its class here (its `kernels` integration)
    assert len(norms) == 5 and all(type(m).forward is fn._forward and m.forward.__func__ is fn._forward
                                   for m in norms)
