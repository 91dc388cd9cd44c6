"""The chunked LM-head loss (`ptst.train.loss`) against F.cross_entropy on the full logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from ptst.train import loss as head_loss


def _case(rows: int, vocab: int = 97, hidden: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(hidden, vocab, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(vocab, hidden, generator=g))
    head.weight.requires_grad_(False)
    h = torch.randn(rows, hidden, generator=g)
    t = torch.randint(0, vocab, (rows,), generator=g)
    return head, h, t


def _reference(head, h, t, scale):
    x = h.clone().requires_grad_(True)
    loss = F.cross_entropy(head(x).float(), t, reduction="sum")
    (loss * scale).backward()
    return loss.detach(), x.grad


def _chunked(head, h, t, scale, chunk):
    x = h.clone().requires_grad_(True)
    loss = head_loss.head_loss(x, head, t, chunk=chunk)
    (loss * scale).backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize(("rows", "chunk"), [(1, 4), (7, 3), (12, 4), (12, 100), (5, 1)])
def test_fp32_loss_and_gradient_equal_the_full_logits(rows, chunk):
    head, h, t = _case(rows)
    ref_loss, ref_grad = _reference(head, h, t, 1 / 7)
    loss, grad = _chunked(head, h, t, 1 / 7, chunk)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_ignored_targets_add_no_loss_and_no_gradient():
    head, h, t = _case(9)
    t[[1, 4, 8]] = -100  # F.cross_entropy's ignore_index
    ref_loss, ref_grad = _reference(head, h, t, 0.5)
    loss, grad = _chunked(head, h, t, 0.5, 4)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert grad[[1, 4, 8]].abs().max() == 0


def test_bf16_autocast_matches_to_bf16_rounding():
    head, h, t = _case(33, vocab=211, hidden=32, seed=1)
    head.weight.data = head.weight.data.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_loss, ref_grad = _reference(head, h, t, 0.125)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, grad = _chunked(head, h, t, 0.125, 8)
    assert grad.dtype == h.dtype == torch.float32
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-3)  # the same bf16 logits, fp32 softmax
    torch.testing.assert_close(grad, ref_grad, rtol=2e-2, atol=2e-3)  # the scale applied after the bf16 product


def test_no_rows_is_zero_loss_and_no_gradient_without_grad():
    head, h, t = _case(0)
    x = h.clone().requires_grad_(True)
    loss = head_loss.head_loss(x, head, t, chunk=4)
    loss.backward()
    assert loss.item() == 0.0 and x.grad.shape == (0, 16)
    head, h, t = _case(6)
    with torch.no_grad():  # nothing needs a gradient: none is computed, the loss is the same
        loss = head_loss.head_loss(h, head, t, chunk=4)
    assert torch.allclose(loss, _reference(head, h, t, 1.0)[0])


@pytest.mark.filterwarnings("ignore:torch.is_autocast_cpu_enabled:UserWarning")
@pytest.mark.filterwarnings("ignore:torch.get_autocast_cpu_dtype:UserWarning")
def test_torch_before_2_4_reads_autocast_the_old_way(monkeypatch):
    head, h, t = _case(10, vocab=53, hidden=16, seed=2)
    head.weight.data = head.weight.data.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _chunked(head, h, t, 1.0, 4)
    monkeypatch.setattr(head_loss, "_AUTOCAST_DTYPE", None)  # torch 2.2/2.3: per-device functions, no device arg
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _chunked(head, h, t, 1.0, 4)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_only_a_frozen_plain_head_is_chunked():
    head, _, _ = _case(2)
    assert head_loss.supported(head, None)
    assert not head_loss.supported(head, 30.0)  # soft-capping: the full path
    head.weight.requires_grad_(True)
    assert not head_loss.supported(head, None)  # a trained head would need its own gradient
    assert not head_loss.supported(torch.nn.Linear(4, 8, bias=True).requires_grad_(False), None)
    assert head_loss.chunk_rows(49152) == 85 and head_loss.chunk_rows(10 ** 9) == 1
    assert head_loss.chunk_rows(49152, "cuda") == 1365  # 256 MiB of logits on an accelerator
    with pytest.raises(ValueError, match="frozen"):
        head_loss.head_loss(torch.zeros(2, 16), head, torch.zeros(2, dtype=torch.long))  # a trained head
    head.weight.requires_grad_(False)
    head.register_forward_pre_hook(lambda *a: None)  # e.g. ZeRO-3 / FSDP gathering the weight first
    assert not head_loss.supported(head, None)


@pytest.mark.parametrize("bf16", [False, True])
def test_response_loss_gives_the_same_loss_and_gradients_chunked_or_not(bf16):
    from peft import LoraConfig, get_peft_model

    from ptst.testing import tiny_llama, tiny_tokenizer
    from ptst.train.model import ResponseLoss, autocast

    tok = tiny_tokenizer("llama2")
    base = tiny_llama(tok, seed=5, hidden=32, layers=2)
    if bf16:  # ptst's CPU training: frozen base weights in bf16 under bf16 autocast, LoRA weights fp32
        base = base.to(torch.bfloat16)
    lm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                         init_lora_weights=False))
    module = ResponseLoss(lm).train()
    assert head_loss.supported(module.core().get_output_embeddings(), None)  # the chunked path is the one taken
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, tok.vocab_size, (3, 11), generator=g)
    gather = torch.tensor([2, 3, 4, 12, 13, 30, 31, 32])
    targets = torch.randint(3, tok.vocab_size, (8,), generator=g)
    out = {}
    for chunked in (False, True):
        module.chunked_head = chunked
        module.zero_grad(set_to_none=True)
        with autocast("bf16" if bf16 else "fp32", "cpu"):
            loss = module(input_ids=ids, gather=gather, targets=targets)
        (loss / 8).backward()
        out[chunked] = loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}
    tol = {"rtol": 2e-2, "atol": 1e-3} if bf16 else {"rtol": 1e-5, "atol": 1e-6}  # bf16: products round by row count
    torch.testing.assert_close(out[True][0], out[False][0], rtol=1e-6 if not bf16 else 1e-4, atol=1e-3)
    assert out[True][1].keys() == out[False][1].keys() and out[True][1]
    for n, grad in out[True][1].items():
        torch.testing.assert_close(grad, out[False][1][n], msg=n, **tol)


def test_lora_inputs_kept_in_bf16_change_no_bit_of_the_loss_or_gradients():
    """ptst.train.model.keep_input_dtype: PEFT's fp32 cast of each LoRA input, which autocast undoes, skipped."""
    from peft import LoraConfig, get_peft_model

    from ptst.testing import tiny_llama, tiny_tokenizer
    from ptst.train.model import ResponseLoss, autocast, keep_input_dtype

    tok = tiny_tokenizer("llama2")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, tok.vocab_size, (3, 11), generator=g)
    gather, targets = torch.tensor([2, 3, 4, 12, 13, 30, 31, 32]), torch.randint(3, tok.vocab_size, (8,), generator=g)
    out = []
    for keep in (False, True):
        torch.manual_seed(1)
        lm = get_peft_model(tiny_llama(tok, seed=5, hidden=32, layers=2).to(torch.bfloat16),
                            LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                       init_lora_weights=False))
        if keep:
            keep_input_dtype(lm)
        flags = {m.cast_input_dtype_enabled for m in lm.modules() if hasattr(m, "lora_A")}
        assert flags == {not keep}
        module = ResponseLoss(lm).train()
        with autocast("bf16", "cpu"):
            loss = module(input_ids=ids, gather=gather, targets=targets)
        loss.backward()
        out.append((loss.detach(), {n: p.grad for n, p in lm.named_parameters() if p.requires_grad}))
    assert torch.equal(out[0][0], out[1][0]) and out[0][1].keys() == out[1][1].keys()
    assert all(torch.equal(out[0][1][n], out[1][1][n]) for n in out[0][1]), "a gradient changed"
    with pytest.raises(RuntimeError):  # outside autocast the bf16 input meets the fp32 adapter: refused, loudly
        module(input_ids=ids, gather=gather, targets=targets)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("which", ["kernels", "portable", "torch"])
def test_each_rows_loss_and_its_gradient_for_the_logits(which, dtype, tmp_path, monkeypatch):
    """`xent_` on the fused kernels (AVX-512 and portable builds) and on torch's operations, against
    F.cross_entropy and softmax - onehot; 1,005 columns (not a multiple of 16), one ignored row."""
    from ptst.runtime import native

    if which == "torch":
        monkeypatch.setattr(native, "takes", lambda *xs: False)
    elif not native.available():
        pytest.skip(f"the fused kernels do not build here: {native.why()}")
    elif which == "portable":
        lib = native.load(native.build(tmp_path, extra=("-mno-avx512f",)))
        monkeypatch.setattr(native, "kernels", lambda: lib)
    if which != "torch":  # the kernel, whichever build this CPU has (ptst takes it only with the AVX-512 path)
        monkeypatch.setattr(native, "wide", lambda: True)
    g = torch.Generator().manual_seed(3)
    z = (torch.randn(7, 1005, generator=g) * 4).to(dtype)
    t = torch.randint(0, z.shape[1], (7,), generator=g)
    t[2] = head_loss.IGNORE
    x = z.float()
    want = torch.softmax(x, -1) - F.one_hot(t.clamp_min(0), z.shape[1])
    want[2] = 0
    kept = z.clone()
    torch.testing.assert_close(head_loss.xent_(kept, t, grad=False), F.cross_entropy(x, t, reduction="none"),
                               rtol=1e-6, atol=1e-5)
    assert torch.equal(kept, z)  # without a gradient the logits stay as they are
    got = z.clone()
    torch.testing.assert_close(head_loss.xent_(got, t, grad=True), F.cross_entropy(x, t, reduction="none"),
                               rtol=1e-6, atol=1e-5)
    assert got.dtype == dtype and got[2].abs().max() == 0
    # fp32: the exponential to ~1 ulp; bf16: the same value rounded to bf16, a near-tie apart at most
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 2 ** -7, "atol": 1e-7}
    torch.testing.assert_close(got.float(), want.to(dtype).float(), **tol)
