"""Hugging Face backend: batched, left-padded, length-sorted generation with a KV cache (greedy by default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ptst.errors import PtstError
from ptst.generate.base import Completion, Decoding, OnDone, PromptItem
from ptst.generate.progress import GenProgress
from ptst.generate.stops import completion, first_stop, stop_checker, stop_token_ids
from ptst.runtime.cache import cache_kind
from ptst.runtime.decode import decode_loop, make_sampler
from ptst.runtime.rows import left_pad, shared_prefix

# "fast": ptst.runtime.fast (Llama/Mistral/Qwen2 on CPU); "loop": ptst.runtime.decode over the model's own
# forward; "generate": transformers' generate(). "auto" takes the first that supports the model.
ENGINES = ("auto", "fast", "loop", "generate")
MIN_SHARED_PREFIX = 8  # shorter shared prefixes are not worth an extra forward pass
More = Callable[[int, Callable[[PromptItem], bool]], Sequence[PromptItem]]  # see HFBackend.generate


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (least padding; an OOM shows at once)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


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

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, progress: bool = True,
                 engine: str = "auto", prefix_cache: bool = True, packed_prefill: bool = True,
                 continuous: bool = True, fused_kernels: bool = True) -> None:
        if batch_size < 1:
            raise PtstError("batch_size must be >= 1")
        if engine not in ENGINES:
            raise PtstError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer, model)
        if not self.stop_ids:
            raise PtstError("the tokenizer has no EOS or end-of-turn token: generation could never stop early")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.stop_ids[0]
        kind = cache_kind(model)
        from ptst.runtime import fast  # heavy: torch
        from ptst.runtime.packing import can_pack  # heavy: torch

        if engine == "fast" and not fast.supported(model):
            raise PtstError(f"engine 'fast' supports {', '.join(fast.FAMILIES)} models on CPU without a PEFT "
                            f"wrapper (merge the adapter); this is a {type(model).__name__} on {model.device}")
        if engine == "auto":
            engine = "fast" if fast.supported(model) else "generate" if kind == "other" else "loop"
        self.engine = engine
        self.fast = fast.FastLM(model, batch_size, fused_kernels) if engine == "fast" else None
        self.prefix_cache = prefix_cache and engine in ("loop", "fast") and kind == "full"
        self.packed_prefill = packed_prefill and engine == "loop" and can_pack(model)
        self.continuous = continuous  # the fast engine: one stream, waiting prompts refill the batch
        self.prefix_hint: list[int] = []  # tokens every prompt will begin with, where the caller knows (`_prefix`)

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

    @property
    def admits_more(self) -> bool:
        """Whether `generate(..., more=...)` takes prompts that arrive while it runs (the fast engine's stream)."""
        return self.fast is not None and self.continuous

    def generate(self, items: Sequence[PromptItem], decoding: Decoding, on_done: OnDone | None = None,
                 more: More | None = None, limit: Callable[[PromptItem], int] | None = None) -> list[Completion]:
        """One completion per item, in input order; `on_done(index, completion)` fires as each row finishes (the
        fast engine's stream) or as each batch does (the other engines, and the fast one with continuous=False).
        `more(n, accept)`: up to n further items, each one `accept(item)` is true for, taken in order until the
        first it is not (that one waits for a later call); asked for while the stream has room (`admits_more`;
        the other engines never ask). Their completions follow the given items', in the order `more` gave them.
        `limit(item)`: the item's own limit on new tokens, at most `decoding.max_new_tokens` (a server's requests
        with different `max_tokens` in one stream); only where `admits_more`."""
        import torch

        if limit is not None and not self.admits_more:
            raise PtstError("per-item limits need the fast engine's stream (admits_more)")

        encoded = self.encode(items)
        results: list[Completion | None] = [None] * len(items)
        with GenProgress(len(items), "generating", self.progress) as bar, torch.inference_mode():
            if self.admits_more:  # one stream: finished rows' places go to waiting prompts
                answered: dict[int, Completion] = {}

                def done(i: int, c: Completion) -> None:
                    answered[i] = c
                    if on_done is not None:
                        on_done(i, c)

                n = self._stream(items, encoded, decoding, bar, done, more, limit)
                return [answered[i] for i in range(n)]
            for n, batch in enumerate(length_sorted_batches([len(r) for r in encoded], self.batch_size)):
                # sampled answers depend on (seed, batch composition), as with any batched sampler
                seed = decoding.seed * 1_000_003 + n
                rows = [encoded[i] for i in batch]
                run = self._generate_batch if self.engine == "generate" else self._loop_batch
                outs = run(rows, decoding, bar, seed)
                bar.advance(prompts=len(batch))
                for i, c in zip(batch, outs, strict=True):
                    results[i] = c
                    if on_done is not None:
                        on_done(i, c)
        return [c for c in results if c is not None]

    def _tensors(self, rows: list[list[int]]) -> tuple[Any, Any]:
        import torch

        ids, mask = left_pad(rows, self.pad_id)
        dev = self.model.device
        return torch.tensor(ids, device=dev), torch.tensor(mask, device=dev)

    def _stop_check(self, d: Decoding) -> Any:
        """A test on a row's tokens for `d.stop`'s strings, or None where there are none."""
        return stop_checker(self.tokenizer, d.stop)

    def _prefix(self, rows: list[list[int]]) -> int:
        """The tokens every row shares, run once: `prefix_hint` where every row begins with it (a server's
        template: a stream of one request shares it with the requests that join later, and incidental overlap
        of the first requests' own words does not make the stream refuse the next), else the rows' common
        prefix; none if shorter than MIN_SHARED_PREFIX."""
        if not self.prefix_cache or not rows:
            return 0
        hint = self.prefix_hint
        if len(hint) >= MIN_SHARED_PREFIX and all(len(r) > len(hint) and r[:len(hint)] == hint for r in rows):
            return len(hint)
        prefix = shared_prefix(rows) if len(rows) > 1 else 0
        return prefix if prefix >= MIN_SHARED_PREFIX else 0

    def _stream(self, items: Sequence[PromptItem], rows: list[list[int]], d: Decoding, bar: GenProgress,
                done: OnDone, more: More | None = None, limit: Callable[[PromptItem], int] | None = None) -> int:
        """The fast engine over every item (`rows`: their tokens) at once (`ptst.runtime.stream`: at most
        batch_size decoding together, waiting prompts refilling the batch); `done(index, completion)` as each row
        finishes. `more(n, accept)` gives up to n items that arrived since, each one `accept` passed (it begins
        with the stream's shared prefix); `limit(item)`: an item's own limit on new tokens. Returns how many items
        were answered (the given ones and the added ones)."""
        from ptst.runtime.stream import decode  # heavy: torch

        assert self.fast is not None
        prefix = self._prefix(rows)
        head, index = (rows[0][:prefix] if rows else []), list(range(len(rows)))  # stream row -> item index
        encoded: dict[str, list[int]] = {}  # by prompt text: `more` may give the items `accept` saw, or copies

        def accept(item: PromptItem) -> bool:
            """Whether an item can join: its prompt begins with the stream's shared prefix (one that cannot be
            tokenized waits for a call of its own, where its error is reported)."""
            try:
                row = encoded[item.rendered] = self.encode([item])[0]
            except PtstError:
                return False
            return len(row) > prefix and row[:prefix] == head

        def pull(n: int) -> list[tuple[list[int], int]]:
            assert more is not None
            got = [(encoded[it.rendered], d.max_new_tokens if limit is None else limit(it))
                   for it in list(more(n, accept))[:n]]
            encoded.clear()
            index.extend(range(len(index), len(index) + len(got)))
            return got

        def on_row(i: int, o: Any) -> None:
            bar.advance(prompts=1)
            done(index[i], self._completion(o.token_ids, d, o.finish_reason))

        decode(self.fast, rows, max_new_tokens=d.max_new_tokens, stop_ids=set(self.stop_ids),
               sampler=make_sampler(d.temperature, d.top_p, d.seed * 1_000_003, self.model.device),
               prefix=prefix, stop_check=self._stop_check(d), batch_size=self.batch_size,
               on_step=lambda n: bar.advance(tokens=n), on_row=on_row, more=pull if more is not None else None,
               limits=None if limit is None else [limit(it) for it in items])
        return len(index)

    def _loop_batch(self, rows: list[list[int]], d: Decoding, bar: GenProgress, seed: int) -> list[Completion]:
        sampler = make_sampler(d.temperature, d.top_p, seed, self.model.device)
        if self.fast is not None:  # batch by batch (continuous=False)
            from ptst.runtime.stream import decode  # heavy: torch

            outs = decode(self.fast, rows, max_new_tokens=d.max_new_tokens, stop_ids=set(self.stop_ids),
                          sampler=sampler, prefix=self._prefix(rows), stop_check=self._stop_check(d),
                          on_step=lambda live: bar.advance(tokens=live))
        else:
            outs = decode_loop(self.model, rows, self.pad_id, max_new_tokens=d.max_new_tokens,
                               stop_ids=set(self.stop_ids), stop_check=self._stop_check(d),
                               prefix=self._prefix(rows), sampler=sampler,
                               on_step=lambda live: bar.advance(tokens=live), pack=self.packed_prefill)
        return [self._completion(o.token_ids, d, o.finish_reason) for o in outs]

    def _generate_batch(self, rows: list[list[int]], d: Decoding, bar: GenProgress, seed: int) -> list[Completion]:
        """The fallback: transformers' own `generate` (rows stay in the batch until the longest one ends)."""
        import torch

        input_ids, attention_mask = self._tensors(rows)
        dev = input_ids.device
        meter = _step_meter(bar, torch.tensor(self.stop_ids, device=dev)) if bar.enabled else None
        fork_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices, enabled=not d.greedy):
            if not d.greedy:
                torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, generation_config=self._generation_config(d),
                stopping_criteria=[meter] if meter is not None else None,
                tokenizer=self.tokenizer if d.stop else None,
            )
        comps = [self._completion(self._trim(row), d, None) for row in out[:, input_ids.shape[1]:].tolist()]
        bar.advance(tokens=sum(c.n_tokens or 0 for c in comps) - (meter.counted if meter else 0))
        return comps

    def _trim(self, row: list[int]) -> list[int]:
        """A generate() row cut after its first stop token, or stripped of the padding after a stop string."""
        end = first_stop(row, set(self.stop_ids))
        if end >= 0:
            return row[: end + 1]
        if self.pad_id not in self.stop_ids:
            while row and row[-1] == self.pad_id:
                row = row[:-1]
        return row

    def _completion(self, row: list[int], d: Decoding, reason: str | None) -> Completion:
        return completion(self.tokenizer, self.stop_ids, row, d, reason)
