"""LoRA's dropout on the fused kernel (ptst.train.dropout): the keep rate, the scale, the same mask in the backward
pass, repeatable from torch's seed, independent of the threads; torch's own dropout where the kernels are off."""

from __future__ import annotations

import math

import pytest
import torch

from ptst.runtime import native
from ptst.train import dropout as nd

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no fused kernels here: {native.why()}")


def _x(n: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g) + 0.5).to(dtype)  # no zeros: a zero output is a dropped element


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_keeps_each_element_with_probability_one_minus_p(p):
    n = 2_000_003  # odd: the last element takes the low half of its pair's draw
    y = nd.dropout(_x(n), p)
    kept = int((y != 0).sum())
    sd = math.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 5 * sd, (kept, n * (1 - p), sd)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_elements_are_scaled_by_one_over_one_minus_p(dtype):
    x = _x(10_001, dtype)
    y = nd.dropout(x, 0.25)
    want = (x.float() * (1 / 0.75)).to(dtype)  # one rounding, of the fp32 product
    assert torch.equal(y[y != 0], want[y != 0])
    assert y.dtype == dtype and y.shape == x.shape


def test_the_backward_pass_uses_the_forward_mask():
    x = _x(50_000).requires_grad_(True)
    g = torch.randn(50_000)
    y = nd.dropout(x, 0.1)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(y != 0, g * (1 / 0.9), torch.zeros(())))  # scale rounded to fp32 once


def test_a_seed_repeats_the_masks_and_threads_do_not_change_them():
    x = _x(100_000)
    torch.manual_seed(7)
    a = nd.dropout(x, 0.5)
    torch.manual_seed(7)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b = nd.dropout(x, 0.5)
    finally:
        torch.set_num_threads(threads)
    c = nd.dropout(x, 0.5)  # the generator moved on: another mask
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_mode_and_p_zero_are_the_identity():
    x = _x(1000)
    d = nd.NativeDropout(0.2).eval()
    assert d(x) is x and nd.dropout(x, 0.0) is x


def test_lora_layers_get_the_kernel_and_spec_says_which_ran(tiny_model_dir):
    from ptst.specs.train import TrainConfig
    from ptst.train.model import load_trainable

    cfg = TrainConfig(model=str(tiny_model_dir), data="x", template="chat:vanilla")
    lm = load_trainable(cfg, "fp32", str(tiny_model_dir))
    drops = [d for m in lm.modules() if hasattr(m, "lora_dropout") for d in m.lora_dropout.values()]
    assert drops and all(type(d) is nd.NativeDropout and d.p == cfg.lora.dropout for d in drops)
    assert nd.masks(lm) == "torch"  # nothing has run yet
    lm(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.sum().backward()
    assert nd.masks(lm) == nd.KERNEL


def test_without_the_kernels_torch_draws_the_masks(tiny_model_dir, monkeypatch):
    from ptst.specs.train import TrainConfig
    from ptst.train.model import load_trainable

    monkeypatch.setenv("PTST_NATIVE", "0")
    native.reset()
    try:
        cfg = TrainConfig(model=str(tiny_model_dir), data="x", template="chat:vanilla")
        lm = load_trainable(cfg, "fp32", str(tiny_model_dir))
        lm(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.sum().backward()
        assert nd.masks(lm) == "torch"
        assert not any(isinstance(m, nd.NativeDropout) for m in lm.modules())
    finally:
        monkeypatch.delenv("PTST_NATIVE")
        native.reset()
