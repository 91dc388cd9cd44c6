"""Hugging Face backend: batched, left-padded, length-sorted generation with a KV cache (greedy by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ptst.errors import PtstError
from ptst.generate.base import Completion, Decoding, OnDone, PromptItem
from ptst.generate.progress import GenProgress
from ptst.generate.stops import first_stop, stop_token_ids, truncate_at_stop


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (least padding; an OOM shows at once)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Left-pad token rows to one length: (input_ids, attention_mask)."""
    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return ids, mask


def _step_meter(progress: GenProgress, stops: Any) -> Any:
    """A never-stopping StoppingCriteria that counts live rows per decoding step for the tokens/s display."""
    import torch
    from transformers import StoppingCriteria

    class StepMeter(StoppingCriteria):
        def __init__(self) -> None:
            self.live: Any = None
            self.counted = 0

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            last = input_ids[:, -1]
            if self.live is None:
                self.live = torch.ones_like(last, dtype=torch.bool)
            n = int(self.live.sum())
            self.counted += n
            progress.advance(tokens=n)
            self.live &= ~torch.isin(last, stops)
            return torch.zeros_like(last, dtype=torch.bool)

    return StepMeter()


class HFBackend:
    """Generation with a loaded `transformers` causal LM (optionally PEFT-wrapped).

    `generate` is a plain blocking call with no shared mutable state besides the model, so one worker thread
    (e.g. a serving loop that forms batches) can call it repeatedly. Prompts are the exact rendered text,
    tokenized without special tokens (templates already carry BOS where the model wants one).
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, progress: bool = True) -> None:
        if batch_size < 1:
            raise PtstError("batch_size must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer, model)
        if not self.stop_ids:
            raise PtstError("the tokenizer has no EOS or end-of-turn token: generation could never stop early")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.stop_ids[0]

    def _generation_config(self, d: Decoding) -> Any:
        from transformers import GenerationConfig

        # Every knob that shapes the distribution is set explicitly: a model's own generation_config
        # (repetition_penalty 1.1, top_k 20, ...) must not leak into a measured result.
        kw: dict[str, Any] = dict(
            max_new_tokens=d.max_new_tokens, do_sample=not d.greedy, num_beams=1, repetition_penalty=1.0,
            no_repeat_ngram_size=0, eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id,
            stop_strings=list(d.stop) or None,
        )
        if d.greedy:
            kw.update(temperature=1.0, top_p=1.0, top_k=50, min_p=None, typical_p=1.0)
        else:
            kw.update(temperature=d.temperature, top_p=d.top_p, top_k=0, typical_p=1.0)
        return GenerationConfig(**kw)

    def encode(self, items: Sequence[PromptItem]) -> list[list[int]]:
        texts = [it.rendered for it in items]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        for it, row in zip(items, ids, strict=True):
            if not row:
                raise PtstError(f"item {it.id}: the rendered prompt is empty")
        return [list(r) for r in ids]

    def generate(self, items: Sequence[PromptItem], decoding: Decoding,
                 on_done: OnDone | None = None) -> list[Completion]:
        """One completion per item, in input order; `on_done(index, completion)` fires as each batch finishes."""
        import torch

        encoded = self.encode(items)
        results: list[Completion | None] = [None] * len(items)
        gen_cfg = self._generation_config(decoding)
        with GenProgress(len(items), "generating", self.progress) as bar, torch.inference_mode():
            for n, batch in enumerate(length_sorted_batches([len(r) for r in encoded], self.batch_size)):
                outs = self._run_batch([encoded[i] for i in batch], decoding, gen_cfg, bar, seed_offset=n)
                for i, c in zip(batch, outs, strict=True):
                    results[i] = c
                    if on_done is not None:
                        on_done(i, c)
        return [c for c in results if c is not None]

    def _run_batch(self, rows: list[list[int]], d: Decoding, gen_cfg: Any, bar: GenProgress,
                   seed_offset: int) -> list[Completion]:
        import torch

        dev = self.model.device
        ids, mask = left_pad(rows, self.pad_id)
        input_ids = torch.tensor(ids, device=dev)
        attention_mask = torch.tensor(mask, device=dev)
        meter = _step_meter(bar, torch.tensor(self.stop_ids, device=dev)) if bar.enabled else None
        fork_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices, enabled=not d.greedy):
            if not d.greedy:  # sampled answers depend on (seed, batch composition), like any batched sampler
                torch.manual_seed(d.seed * 1_000_003 + seed_offset)
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, generation_config=gen_cfg,
                stopping_criteria=[meter] if meter is not None else None,
                tokenizer=self.tokenizer if d.stop else None,
            )
        new = out[:, input_ids.shape[1]:].tolist()
        comps = [self._completion(row, d) for row in new]
        bar.advance(prompts=len(rows), tokens=sum(c.n_tokens or 0 for c in comps) - (meter.counted if meter else 0))
        return comps

    def _completion(self, row: list[int], d: Decoding) -> Completion:
        stops = set(self.stop_ids)
        end = first_stop(row, stops)
        if end >= 0:
            body, n = row[:end], end + 1  # the end-of-turn token counts as generated
        else:
            body = row
            if self.pad_id not in stops:  # a row finished by a stop string is padded to the batch length
                while body and body[-1] == self.pad_id:
                    body = body[:-1]
            n = len(body)
        text, cut = truncate_at_stop(self.tokenizer.decode(body, skip_special_tokens=True), d.stop)
        finish = "stop" if (end >= 0 or cut or n < d.max_new_tokens) else "length"
        return Completion(text=text, finish_reason=finish, n_tokens=n)
