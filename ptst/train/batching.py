"""The training plan: a seeded, length-grouped order of micro-batches per epoch, and their collation."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from ptst.io import stable_hash
from ptst.runtime.rows import shared_prefix as common_prefix
from ptst.train.encode import Encoded

MEGABATCH = 64  # micro-batches per length-sorted window: little padding, order still random across windows


@dataclass(frozen=True)
class Step:
    """One optimizer step: the micro-batches (example indices) it consumes across all processes."""

    epoch: int
    index_in_epoch: int
    steps_in_epoch: int
    micro: tuple[tuple[int, ...], ...]

    @property
    def epoch_progress(self) -> float:
        return self.epoch + (self.index_in_epoch + 1) / self.steps_in_epoch

    def for_rank(self, rank: int, world: int) -> tuple[tuple[int, ...], ...]:
        return self.micro[rank::world]


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool) -> list[list[int]]:
    """Micro-batches for one epoch. The order depends only on (seed, epoch), so a resumed run replays it."""
    rng = random.Random(f"ptst-train:{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    window = batch_size * MEGABATCH
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def make_plan(lengths: Sequence[int], batch_size: int, grad_accum: int, epochs: int, seed: int,
              group_by_length: bool, world: int = 1) -> list[Step]:
    """Every optimizer step of the run. A step takes grad_accum micro-batches per process; the last step of an
    epoch may take fewer. With several processes, an epoch's final < world leftover micro-batches are dropped."""
    steps: list[Step] = []
    per_step = grad_accum * world
    for epoch in range(epochs):
        batches = epoch_batches(lengths, batch_size, seed, epoch, group_by_length)
        chunks = [batches[i:i + per_step] for i in range(0, len(batches), per_step)]
        chunks = [c[: len(c) - len(c) % world] for c in chunks]
        chunks = [c for c in chunks if c]
        steps += [Step(epoch, i, len(chunks), tuple(tuple(b) for b in c)) for i, c in enumerate(chunks)]
    return steps


def plan_hash(steps: Sequence[Step]) -> str:
    return stable_hash([[s.epoch, [list(b) for b in s.micro]] for s in steps])


# Shorter shared prefixes are not worth a second decoder pass. A safety system prompt (chat:llama) is ~110 tokens.
MIN_SHARED_PREFIX = 16


def shared_prefix(examples: Sequence[Encoded]) -> int:
    """Length of the token prefix every example shares, ending before any position that predicts a trained
    token (each example keeps at least its last context token after the prefix)."""
    return common_prefix([e.input_ids[: e.start] for e in examples]) if len(examples) > 1 else 0


def collate(examples: Sequence[Encoded], pad_id: int, share_prefix: bool = False, pack: bool = False) -> dict[str, Any]:
    """Right-padded inputs (the last token of each example is only a target) plus the flat positions whose
    hidden states predict a trained token. No attention mask: with right padding under causal attention a real
    token never sees a pad, and pad positions are never read.

    With `share_prefix`, a prefix all rows share (the system prompt of a single-template batch) of at least
    MIN_SHARED_PREFIX tokens comes back once as `prefix_ids` [1, P]; `input_ids` and `gather` then cover the
    positions after it.

    With `pack`, no padding at all: the rows (after any shared prefix) are concatenated into `input_ids` [1, T]
    with `position_ids` restarting at every row (at P after a prefix) and `segments` [B + 1], the rows'
    boundaries, for the per-row attention of `ptst.runtime.packing`."""
    import torch

    p = shared_prefix(examples) if share_prefix else 0
    p = p if p >= MIN_SHARED_PREFIX else 0
    rows = [e.input_ids[p:-1] for e in examples]
    width = sum(map(len, rows)) if pack else max(map(len, rows))
    ids = torch.full((1 if pack else len(examples), width), pad_id, dtype=torch.long)
    gather: list[int] = []
    targets: list[int] = []
    offset = 0
    for b, (e, x) in enumerate(zip(examples, rows, strict=True)):
        at = offset if pack else b * width
        ids.view(-1)[at: at + len(x)] = torch.tensor(x, dtype=torch.long)
        gather += range(at + e.start - 1 - p, at + len(e.input_ids) - 1 - p)
        targets += e.input_ids[e.start:]
        offset += len(x)
    out = {"input_ids": ids, "gather": torch.tensor(gather, dtype=torch.long),
           "targets": torch.tensor(targets, dtype=torch.long)}
    if pack:
        out["position_ids"] = torch.tensor([[p + i for x in rows for i in range(len(x))]], dtype=torch.long)
        out["segments"] = torch.tensor([0] + list(accumulate(map(len, rows))), dtype=torch.long)
    if p:
        out["prefix_ids"] = torch.tensor([examples[0].input_ids[:p]], dtype=torch.long)
    return out
