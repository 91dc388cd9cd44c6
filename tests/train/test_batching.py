"""The plan (seeded, length-grouped, resumable) and the response-only loss against Hugging Face's own loss."""

from __future__ import annotations

import random

import pytest

from ptst.train.batching import collate, epoch_batches, make_plan, plan_hash
from ptst.train.encode import Encoded


def lengths(n=300, seed=1):
    rng = random.Random(seed)
    return [rng.randint(20, 400) for _ in range(n)]


def test_every_example_once_per_epoch_and_order_depends_only_on_seed_and_epoch():
    ls = lengths()
    plan = make_plan(ls, 4, 2, 3, seed=7, group_by_length=True)
    for epoch in range(3):
        seen = sorted(i for s in plan if s.epoch == epoch for b in s.micro for i in b)
        assert seen == list(range(len(ls)))
    again = make_plan(ls, 4, 2, 3, seed=7, group_by_length=True)
    assert plan_hash(plan) == plan_hash(again)
    assert plan_hash(plan) != plan_hash(make_plan(ls, 4, 2, 3, seed=8, group_by_length=True))
    assert [s.micro for s in plan if s.epoch == 0] != [s.micro for s in plan if s.epoch == 1]


def test_steps_take_grad_accum_micro_batches_and_the_epoch_tail_fewer():
    plan = make_plan([10] * 10, 2, 2, 1, seed=0, group_by_length=False)  # 5 micro-batches -> 2 + 2 + 1
    assert [len(s.micro) for s in plan] == [2, 2, 1]
    assert [s.epoch_progress for s in plan] == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_length_grouping_cuts_padding():
    ls = lengths(512)

    def padding(group):
        batches = epoch_batches(ls, 8, 0, 0, group)
        return sum(max(ls[i] for i in b) * len(b) - sum(ls[i] for i in b) for b in batches)

    assert padding(True) < 0.25 * padding(False)


def test_processes_split_each_step_and_drop_only_a_tail_smaller_than_world():
    plan = make_plan([10] * 9, 1, 2, 1, seed=0, group_by_length=False, world=2)  # 9 micro-batches, 4 per step
    assert [len(s.micro) for s in plan] == [4, 4]  # the ninth cannot be split across 2 processes
    step = plan[0]
    assert step.for_rank(0, 2) + step.for_rank(1, 2) == (step.micro[0], step.micro[2], step.micro[1], step.micro[3])


def test_collate_gathers_exactly_the_trained_positions():
    a = Encoded("a", "d", (1, 2, 3, 4, 5), 3)
    b = Encoded("b", "d", (6, 7, 8), 1)
    batch = collate([a, b], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4], [6, 7, 0, 0]]
    assert batch["gather"].tolist() == [2, 3, 4, 5]  # row 0 positions 2,3 predict 4,5; row 1 positions 0,1
    assert batch["targets"].tolist() == [4, 5, 7, 8]


@pytest.mark.parametrize("long", [False, True], ids=["eager-attention-width", "sdpa-width"])
def test_response_only_loss_equals_hugging_face_loss_on_a_masked_padded_batch(llama2_tok, long):
    """Our path (no attention mask, right padding, head on trained rows only) is the standard loss, on both
    sides of the CPU attention switch."""
    import torch

    from ptst.templates import get_template, render
    from ptst.testing import tiny_llama
    from ptst.train.encode import encode_rendered, stop_token_ids
    from ptst.train.model import CPU_EAGER_MAX_WIDTH, ResponseLoss

    t = get_template("chat:llama-short")
    pairs = [("hi", "The answer is 72."), ("What is 2 plus 2? Tell me now.", "4"), ("x", "Write a cake tutorial.")]
    if long:
        pairs[1] = ("What is 2 plus 2? " * 30, "4 " * 20)
    enc = encode_rendered(llama2_tok, [render(t, llama2_tok, q, a) for q, a in pairs], 1024,
                          stop_token_ids(llama2_tok))
    exs = [Encoded(str(i), "d", tuple(ids), start) for i, (ids, start) in enumerate(enc)]
    model = tiny_llama(llama2_tok)
    batch = collate(exs, pad_id=0)
    assert (batch["input_ids"].shape[1] > CPU_EAGER_MAX_WIDTH) == long
    module = ResponseLoss(model)
    ours = module(**batch) / sum(e.n_trained for e in exs)
    assert model.config._attn_implementation == ("sdpa" if long else "eager")
    module.restore_attention()  # the reference runs the model's own (SDPA, masked) attention
    width = max(len(e.input_ids) for e in exs)
    ids = torch.tensor([list(e.input_ids) + [0] * (width - len(e.input_ids)) for e in exs])
    mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in exs])
    labels = torch.tensor([e.labels() + [-100] * (width - len(e.input_ids)) for e in exs])
    theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
