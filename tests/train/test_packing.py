"""Padding-free training batches: a micro-batch's rows concatenated in one row, positions restarting per row, and
a run that logs the losses of padded batches."""

from __future__ import annotations

import pytest
import torch

from ptst.train.batching import collate
from tests.train.test_prefix import SYSTEM, rows


@pytest.mark.parametrize("share", [False, True])
def test_collate_packs_the_rows_with_restarting_positions(share):
    ex = rows(SYSTEM)
    padded, packed = collate(ex, 0, share_prefix=share), collate(ex, 0, share_prefix=share, pack=True)
    p = len(SYSTEM) if share else 0
    lengths = [len(e.input_ids) - 1 - p for e in ex]
    assert packed["input_ids"].shape == (1, sum(lengths))
    assert packed["segments"].tolist() == [0, 35 - p, 70 - 2 * p, 106 - 3 * p, 141 - 4 * p]
    assert packed["position_ids"].tolist() == [[p + i for n in lengths for i in range(n)]]
    assert (packed["input_ids"] != 0).all()  # no padding anywhere
    assert torch.equal(packed["targets"], padded["targets"])
    # the same tokens sit at the gathered positions, in the same order
    assert torch.equal(packed["input_ids"].view(-1)[packed["gather"]], padded["input_ids"].view(-1)[padded["gather"]])
    assert ("prefix_ids" in packed) == share


def test_training_padding_free_or_padded_gives_the_same_losses(make_cfg, tmp_path):
    """Three steps under chat:llama with and without packing (and the shared prefix) log the same losses."""
    import json

    from ptst.train import run

    logs = {}
    for free in (True, False):
        out = tmp_path / f"free-{free}"
        run(make_cfg(template="chat:llama", epochs=1, batch_size=4, lr=1e-4, padding_free=free), out)
        logs[free] = [json.loads(x)["loss"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(logs[True]) == 3
    assert logs[True] == pytest.approx(logs[False], rel=1e-5)
