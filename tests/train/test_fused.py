"""The frozen RMSNorms and the MLPs' SiLU products on the fused kernels during LoRA training (ptst.train.fused):
each family's own forward and its autograd gradients, reproduced in bf16 (to a bf16 bit or two, as any two
kernels' sums differ) and fp32, on the AVX-512 path and the portable one."""

from __future__ import annotations

import importlib
from functools import partial

import pytest
import torch

from ptst.runtime import native
from ptst.train import fused as fn

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no fused kernels here: {native.why()}")


def _classes(names: tuple[str, ...] = fn.NORMS, suffix: str = "RMSNorm") -> list[type]:
    out = []
    for name in names:
        family = name[: -len(suffix)].lower()
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
    assert fn.use_fused_layers(fused) == {"norms": 1, "mlps": 0, "attention": 0}
    return own, fused


def _ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The most bf16 steps between two bf16 tensors' elements."""
    ia, ib = (t.view(torch.int16).int() for t in (a, b))
    return int((ia - ib).abs().max())


def _both(own: torch.nn.Module, fused: torch.nn.Module, shape: tuple[int, ...], scale: float,
          dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Both modules' outputs on the same input, and the inputs after one backward pass of the same gradient."""
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(shape, generator=g) * scale).to(dtype)
    up = torch.randn(shape, generator=g).to(dtype)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = own(xa), fused(xb)
    ya.backward(up)
    yb.backward(up)
    return ya, yb, xa, xb


def test_every_listed_family_is_in_this_transformers():
    assert {c.__name__ for c in _classes()} >= {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm"}


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_forward_and_gradient_are_the_models_own(cls, dtype):
    own, fused = _pair(cls, dtype)
    ya, yb, xa, xb = _both(own, fused, (3, 37, 96), 3.0, dtype)
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
    assert fn.use_fused_layers(m) == {"norms": 0, "mlps": 0, "attention": 0}  # trainable (full fine-tuning): not taken
    m.weight.requires_grad_(False)
    fn.use_fused_layers(m)
    m.weight.requires_grad_(True)  # made trainable afterwards: the call falls back, and the weight gets its grad
    m(torch.randn(2, 16)).sum().backward()
    assert m.weight.grad is not None


def test_lora_training_runs_every_norm_of_the_model_on_the_kernels(tiny_model_dir):
    from ptst.specs.train import TrainConfig
    from ptst.train.model import load_trainable

    cfg = TrainConfig(model=str(tiny_model_dir), data="x", template="chat:vanilla")
    lm = load_trainable(cfg, "fp32", str(tiny_model_dir))
    norms = [m for m in lm.modules() if "RMSNorm" in type(m).__name__]
    mlps = [m for m in lm.modules() if type(m).__name__.endswith("MLP")]
    lm.eval()
    lm.train()  # transformers re-binds each layer's forward by its class here (its `kernels` integration)
    assert len(norms) == 5 and all(m.forward.__func__ is fn._norm_forward for m in norms)
    assert len(mlps) == 2 and all(m.forward.__func__ is fn._mlp_forward for m in mlps)
    attention = [m for m in lm.modules() if type(m).__name__.endswith("Attention")]
    assert len(attention) == 2 and all(m.forward.__func__ is fn._attention_forward for m in attention)


@pytest.mark.parametrize("cls", _classes(fn.MLPS, "MLP"), ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_mlp_forward_and_gradients_are_the_models_own(cls, dtype):
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=48, intermediate_size=80, hidden_act="silu", num_attention_heads=4,
                      num_key_value_heads=4)
    torch.manual_seed(3)
    own = cls(cfg).to(dtype)
    fused = cls(cfg).to(dtype)
    fused.load_state_dict(own.state_dict())
    assert fn.use_fused_layers(fused) == {"norms": 0, "mlps": 1, "attention": 0}
    ya, yb, xa, xb = _both(own, fused, (2, 33, 48), 2.0, dtype)
    grads = [(p.grad, q.grad) for p, q in zip(own.parameters(), fused.parameters(), strict=True)]
    if dtype == torch.bfloat16:  # a bit of the SiLU's bf16 rounding moves every product after it a little
        torch.testing.assert_close(yb, ya, rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(xb.grad, xa.grad, rtol=2e-2, atol=2e-2)
        for a, b in grads:
            torch.testing.assert_close(b, a, rtol=2e-2, atol=5e-2)
    else:
        torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-6)
        for a, b in grads:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_the_silu_kernels_round_as_the_models_operations():
    """Element by element against the eager operations: bf16 outputs within a bf16 step (the kernel's exp is not
    torch's), fp32 to float rounding."""
    g = torch.Generator().manual_seed(5)
    for dtype in (torch.bfloat16, torch.float32):
        a = (torch.randn(4099, generator=g) * 4).to(dtype).requires_grad_(True)
        b = torch.randn(4099, generator=g).to(dtype).requires_grad_(True)
        dy = torch.randn(4099, generator=g).to(dtype)
        want = torch.nn.functional.silu(a) * b
        want.backward(dy)
        ga, gb = a.grad, b.grad
        a.grad = b.grad = None
        got = fn._SiluMul.apply(a, b)
        got.backward(dy)
        if dtype == torch.bfloat16:
            assert _ulps(got, want) <= 1 and _ulps(b.grad, gb) <= 1 and _ulps(a.grad, ga) <= 2
        else:
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(a.grad, ga, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(b.grad, gb, rtol=1e-6, atol=1e-7)


def test_the_portable_path_draws_the_same_masks_and_norms_alike(tmp_path, monkeypatch):
    """Built without AVX-512 (an AVX2 CPU): the dropout's masks are the same integers, so the same bits; the norm
    and the SiLU product agree with the AVX-512 path to a bf16 step."""
    from ptst.train import dropout as nd

    portable = native.load(native.build(tmp_path, extra=("-mno-avx512f",)))
    g = torch.Generator().manual_seed(6)
    x = torch.randn(37, 96, generator=g).to(torch.bfloat16)
    w = (torch.rand(96, generator=g) + 0.5).to(torch.bfloat16)
    up = torch.randn(37, 96, generator=g).to(torch.bfloat16)

    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        xr = x.clone().requires_grad_(True)
        y = fn._Norm.apply(xr, w, 1e-5)
        y.backward(up)
        return [nd.dropout(x, 0.3), y.detach(), xr.grad, fn._SiluMul.apply(x, up)]

    fast = run()
    monkeypatch.setattr(native, "kernels", lambda: portable)
    slow = run()
    assert torch.equal(fast[0], slow[0])
    assert all(_ulps(a, b) <= 2 for a, b in zip(fast[1:], slow[1:], strict=True))


def _rotary_functions() -> list:
    out = []
    for name in fn.ATTENTIONS:
        family = name[: -len("Attention")].lower()
        try:
            mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except ImportError:
            continue
        out.append(getattr(mod, fn.ROPE))
    return out


@pytest.mark.parametrize("own", _rotary_functions(), ids=lambda f: f.__module__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("build", ["native", "portable"])
def test_the_rotary_embedding_is_each_familys_bit_for_bit(own, dtype, build, tmp_path, monkeypatch):
    """Forward and gradient equal to the family's own `apply_rotary_pos_emb` under autograd: queries and keys as
    a projection's strided views, one cos/sin for the batch or one a row."""
    if build == "portable":
        portable = native.load(native.build(tmp_path, extra=("-mno-avx512f",)))
        monkeypatch.setattr(native, "kernels", lambda: portable)
    g = torch.Generator().manual_seed(7)
    for rows in (1, 2):
        q = (torch.randn(2, 11, 6, 64, generator=g) * 3).to(dtype).transpose(1, 2)
        k = (torch.randn(2, 11, 2, 64, generator=g) * 3).to(dtype).transpose(1, 2)
        cos, sin = (torch.randn(rows, 11, 64, generator=g).to(dtype) for _ in range(2))
        up = [torch.randn(2, 6, 11, 64, generator=g).to(dtype), torch.randn(2, 2, 11, 64, generator=g).to(dtype)]
        out = []
        for f in (own, partial(fn.rope, own=own)):
            qa, ka = q.detach().requires_grad_(True), k.detach().requires_grad_(True)
            got = f(qa, ka, cos, sin)
            torch.autograd.backward(list(got), up)
            out.append([*got, qa.grad, ka.grad])
        assert "Rope" in type(out[1][0].grad_fn).__name__  # the kernel ran
        assert all(torch.equal(a, b) for a, b in zip(*out, strict=True))


def test_an_attention_runs_the_kernel_only_inside_its_own_call(monkeypatch):
    from transformers.models.llama import modeling_llama

    from ptst.testing import tiny_llama, tiny_tokenizer

    own = modeling_llama.apply_rotary_pos_emb
    model = tiny_llama(tiny_tokenizer("llama2"), seed=2, hidden=64, layers=2)  # head size 32: the AVX-512 loop
    ids = torch.randint(3, 100, (2, 9))
    want = model(ids).logits
    assert fn.use_fused_layers(model)["attention"] == 2
    seen, rope = [], fn.rope
    monkeypatch.setattr(fn, "rope", lambda *a, **kw: seen.append(modeling_llama.apply_rotary_pos_emb) or
                        rope(*a, **kw))
    got = model(ids).logits
    assert len(seen) == 2 and all(f is not own for f in seen)  # each layer rotated through ptst's rope
    assert modeling_llama.apply_rotary_pos_emb is own  # and the module's own is back after the call
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # the norms' and MLPs' kernels sum otherwise
    monkeypatch.setattr(fn, "rope", lambda *a, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        model(ids)
    assert modeling_llama.apply_rotary_pos_emb is own  # restored after an error too


def test_a_module_whose_rotation_differs_is_not_fused():
    assert fn._same(_rotary_functions()[0])
    assert not fn._same(lambda q, k, cos, sin: (q * cos[:, None] + q * sin[:, None], k))  # not Llama's form
    assert not fn._same(lambda q, k, cos, sin, position_ids: (q, k))  # another signature
