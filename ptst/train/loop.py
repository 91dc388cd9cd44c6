"""The training loop: AdamW, warmup + cosine/constant LR, accumulation, clipping; carried by accelerate."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import JsonlAppender
from ptst.train import checkpoint as ck
from ptst.train.batching import collate, make_plan, plan_hash
from ptst.train.checkpoint import Progress
from ptst.train.encode import TrainSet


@dataclass(frozen=True)
class LoopResult:
    steps: int
    progress: Progress
    resumed_from: int | None


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warmup to 1, then cosine down to
    `min_ratio` at the end of training, or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    done = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * done))


def _bar(enabled: bool, total: int, completed: int) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)


def _one_step(acc: Any, module: Any, opt: Any, sched: Any, params: list[Any], data: TrainSet, step: Any,
              cfg: Any, precision: str, pad_id: int) -> dict[str, Any]:
    """Forward/backward every micro-batch of this process, then one clipped optimizer step. The summed loss is
    scaled by world / (trained tokens of the whole step), so after DDP's mean the gradient is the exact
    token-level mean over the step, however tokens fall across micro-batches and processes."""
    import torch

    from ptst.train.model import autocast

    examples = data.examples
    inner = acc.unwrap_model(module)
    share = cfg.share_prefix and getattr(inner, "can_share_prefix", False)
    pack = cfg.padding_free and getattr(inner, "can_pack", False)
    mine = step.for_rank(acc.process_index, acc.num_processes)
    trained = sum(examples[i].n_trained for b in step.micro for i in b)
    total = torch.zeros((), device=acc.device)
    for j, idx in enumerate(mine):
        batch = collate([examples[i] for i in idx], pad_id, share, pack)
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        with nullcontext() if j == len(mine) - 1 else acc.no_sync(module):
            with autocast(precision, acc.device.type):
                loss_sum = module(**batch)
            acc.backward(loss_sum * (acc.num_processes / trained))
        total += loss_sum.detach().float()
    grad_norm = acc.clip_grad_norm_(params, cfg.max_grad_norm)
    lr = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    loss = float(acc.reduce(total, reduction="sum").item()) / trained
    if not math.isfinite(loss):
        raise PtstError(f"training diverged: loss is {loss} at step {sched.last_epoch} (lower --lr?)")
    tokens = sum(len(examples[i].input_ids) for b in step.micro for i in b)
    # Under DeepSpeed the engine clips inside its own step and accelerate may return None (no norm before the
    # first step): logged as null.
    norm = None if grad_norm is None else float(grad_norm)
    return {"loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens, "trained": trained}


def train_loop(cfg: Any, data: TrainSet, lm: Any, out: Path, acc: Any, precision: str, pad_id: int,
               resume_ckpt: Path | None = None, show_progress: bool = False) -> LoopResult:
    """Run (or continue) the whole plan on `lm` in place; log every step, checkpoint every `save_every` steps
    (the last step included when it is a multiple, so a grid can evaluate `checkpoints: [..., total]`)."""
    import torch

    from ptst.train.model import ResponseLoss

    lengths = [len(e.input_ids) for e in data.examples]
    steps = make_plan(lengths, cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.seed, cfg.group_by_length,
                      acc.num_processes)
    if not steps:
        raise PtstError(f"{len(lengths)} examples make no full step across {acc.num_processes} processes")
    sha = plan_hash(steps)
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999), eps=1e-8)
    warmup = math.ceil(cfg.warmup_ratio * len(steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(lr_factor, total=len(steps), warmup=warmup,
                                                           schedule=cfg.schedule, min_ratio=cfg.min_lr_ratio))
    prog = ck.load(resume_ckpt, lm, opt, sched, sha) if resume_ckpt else Progress()
    resumed = prog.step if resume_ckpt else None
    module, opt = acc.prepare(ResponseLoss(lm), opt)
    log = JsonlAppender(out / "train_log.jsonl") if acc.is_main_process else None
    t0, seg_tokens, base_elapsed = time.perf_counter(), 0, prog.elapsed_s
    try:
        with _bar(show_progress and acc.is_main_process, len(steps), prog.step) as bar:
            task = bar.add_task("train", total=len(steps), completed=prog.step, loss="-", tps="-")
            for k in range(prog.step, len(steps)):
                r = _one_step(acc, module, opt, sched, params, data, steps[k], cfg, precision, pad_id)
                seg_tokens += r["tokens"]
                seg = time.perf_counter() - t0
                first = prog.first_loss if prog.first_loss is not None else r["loss"]
                prog = Progress(k + 1, prog.tokens + r["tokens"], prog.response_tokens + r["trained"],
                                base_elapsed + seg, r["loss"], first)
                bar.update(task, completed=k + 1, loss=f"{r['loss']:.4f}", tps=f"{seg_tokens / seg:,.0f}")
                if log is not None and ((k + 1) % cfg.log_every == 0 or k + 1 == len(steps)):
                    log.write({"step": k + 1, "epoch": round(steps[k].epoch_progress, 4), "loss": r["loss"],
                               "lr": r["lr"], "grad_norm": r["grad_norm"], "tokens": prog.tokens,
                               "tokens_per_s": round(seg_tokens / seg, 1), "elapsed_s": round(prog.elapsed_s, 3)})
                if cfg.save_every and (k + 1) % cfg.save_every == 0:  # the last step too: step-N = final
                    acc.wait_for_everyone()
                    if acc.is_main_process:
                        ck.save(out, lm, opt, sched, prog, sha, cfg.keep_checkpoints)
                    acc.wait_for_everyone()
    finally:
        acc.unwrap_model(module).restore_attention()
        if log is not None:
            log.close()
    return LoopResult(len(steps), prog, resumed)
