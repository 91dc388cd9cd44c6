"""Shared-prefix training: a prompt prefix every row of a micro-batch shares runs once, with the same loss and
gradients as the full rows (up to float rounding)."""

from __future__ import annotations

import pytest
import torch

from ptst.train.batching import MIN_SHARED_PREFIX, collate, shared_prefix
from ptst.train.encode import Encoded

SYSTEM = list(range(10, 10 + 24))  # 24 tokens every row shares, like a safety system prompt


def rows(prefix: list[int] = SYSTEM) -> list[Encoded]:
    """Four examples: shared prefix, a user turn of its own, a response of its own (trained)."""
    out = []
    for i, (user, resp) in enumerate([(5, 7), (9, 3), (2, 11), (6, 6)]):
        ctx = prefix + [40 + (i * 7 + j) % 50 for j in range(user)]
        ids = ctx + [100 + (i * 5 + j) % 60 for j in range(resp)]
        out.append(Encoded(f"e{i}", "t", tuple(ids), len(ctx)))
    return out


def test_shared_prefix_stops_before_the_first_trained_prediction():
    ex = rows()
    assert shared_prefix(ex) == len(SYSTEM)
    assert shared_prefix(ex[:1]) == 0  # one row: nothing to share
    # rows that agree beyond the system prompt, into a short context: the prefix ends at min(start) - 1
    same = [Encoded("a", "t", tuple(SYSTEM + [1, 2, 3, 4]), len(SYSTEM) + 2),
            Encoded("b", "t", tuple(SYSTEM + [1, 2, 3, 9, 9]), len(SYSTEM) + 3)]
    assert shared_prefix(same) == len(SYSTEM) + 1


def test_collate_splits_off_the_prefix_and_keeps_the_same_targets():
    ex = rows()
    full, shared = collate(ex, 0), collate(ex, 0, share_prefix=True)
    p = len(SYSTEM)
    assert "prefix_ids" not in full
    assert shared["prefix_ids"].tolist() == [SYSTEM]
    assert shared["input_ids"].shape == (4, full["input_ids"].shape[1] - p)
    assert torch.equal(shared["input_ids"], full["input_ids"][:, p:])
    assert torch.equal(shared["targets"], full["targets"])
    # the same (row, position) pairs are gathered, in the same order
    wf, ws = full["input_ids"].shape[1], shared["input_ids"].shape[1]
    pairs_full = [(int(g) // wf, int(g) % wf) for g in full["gather"]]
    pairs_shared = [(int(g) // ws, int(g) % ws + p) for g in shared["gather"]]
    assert pairs_full == pairs_shared


def test_a_short_common_prefix_is_not_split_off():
    ex = rows(prefix=SYSTEM[: MIN_SHARED_PREFIX - 1])
    assert "prefix_ids" not in collate(ex, 0, share_prefix=True)


def _loss_and_grads(module, batch):
    module.zero_grad(set_to_none=True)
    loss = module(**batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_loss_and_gradients_match_the_full_rows(attention, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from ptst.testing import tiny_llama, tiny_tokenizer
    from ptst.train import model as train_model

    # ResponseLoss picks eager attention up to CPU_EAGER_MAX_WIDTH on a CPU: move the switch to test both
    monkeypatch.setattr(train_model, "CPU_EAGER_MAX_WIDTH", 10_000 if attention == "eager" else 0)
    tok = tiny_tokenizer("llama2")
    base = tiny_llama(tok, seed=3, hidden=32, layers=3)
    base.set_attn_implementation("sdpa")
    lm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear",
                                         init_lora_weights=False))  # non-zero B: every path carries gradient
    module = train_model.ResponseLoss(lm).train()
    assert module.can_share_prefix
    ex = rows()
    loss_full, g_full = _loss_and_grads(module, collate(ex, 0))
    batch = collate(ex, 0, share_prefix=True)
    assert "prefix_ids" in batch
    loss_shared, g_shared = _loss_and_grads(module, batch)
    assert module.core().config._attn_implementation == attention
    torch.testing.assert_close(loss_shared, loss_full, rtol=1e-5, atol=1e-5)
    assert g_full.keys() == g_shared.keys() and len(g_full) > 0
    for name in g_full:
        torch.testing.assert_close(g_shared[name], g_full[name], rtol=1e-4, atol=1e-6, msg=name)
    # the gradient really flows through the shared prefix: LoRA weights of the first layer see it
    first = [n for n in g_full if "layers.0." in n]
    assert first and all(g_shared[n].abs().sum() > 0 for n in first)


def test_no_sharing_under_activation_checkpointing():
    from ptst.testing import tiny_llama, tiny_tokenizer
    from ptst.train.model import ResponseLoss

    model = tiny_llama(tiny_tokenizer("llama2"))
    assert ResponseLoss(model).can_share_prefix
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not ResponseLoss(model).can_share_prefix


def test_training_with_and_without_sharing_ends_at_the_same_adapter(make_cfg, tmp_path):
    """Three steps under chat:llama (the Llama-2 system prompt shared by every row) give the same losses. The
    weights are not compared: Adam's first steps move every weight by ~lr whatever its gradient's size, so
    rounding-level gradient differences show at the lr scale (the gradients themselves are compared above)."""
    import json

    from ptst.train import run

    runs = {}
    for share in (True, False):
        out = tmp_path / f"share-{share}"
        run(make_cfg(template="chat:llama", epochs=1, batch_size=4, lr=1e-4, share_prefix=share), out)
        runs[share] = out
    logs = {s: [json.loads(x)["loss"] for x in (o / "train_log.jsonl").read_text().splitlines()]
            for s, o in runs.items()}
    assert len(logs[True]) == 3
    assert logs[True] == pytest.approx(logs[False], rel=1e-5)
