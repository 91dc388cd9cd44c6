"""llama.cpp systems for bench_generate: greedy decoding of a GGUF one prompt at a time and batched (low-level API).

Both take token ids and return the generated ids of each prompt, cut after the first stop token (which is kept:
ptst counts the end-of-turn token as generated). Greedy is a plain argmax over the last position's logits, ties
to the lowest id as torch.argmax does, so no llama.cpp sampler settings can change it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL_HINT = ("llama.cpp systems need llama-cpp-python, which is not installed: run `make bench-deps` "
                "(builds llama-cpp-python==0.3.36 from source, ~6 min on 2 cores)")


def require() -> Any:
    """The llama_cpp module, or SystemExit with one line saying how to install it."""
    try:
        import llama_cpp
    except ImportError:
        raise SystemExit(INSTALL_HINT) from None
    return llama_cpp


def gguf_path(model: str) -> str:
    from ptst.models import resolve

    ref = resolve(model)
    if ref.gguf_file is None:
        raise SystemExit(f"llama.cpp systems need a GGUF model; {model!r} resolves to {ref.path} (no .gguf file)")
    return str(Path(ref.path) / ref.gguf_file)


@contextmanager
def _no_extra_buffer_types(L: Any) -> Iterator[None]:
    """Make `Llama` load the weights with use_extra_bufts=False, which it has no argument for. The extra
    buffer types are where ggml's AMX kernels live (picked when the CPU reports amx_int8); in the benchmark VM
    they die with a general-protection fault at their first `ldtilecfg`. For this Q4_1 GGUF AMX is the only extra
    buffer type (no CPU_REPACK layout), so without it the weights run on the plain AVX2/AVX-512 kernels."""
    default = L.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    L.llama_model_default_params = params
    try:
        yield
    finally:
        L.llama_model_default_params = default


def round_up(n: int, to: int = 256) -> int:
    return -(-n // to) * to


class LlamaCpp:
    """One GGUF loaded by `llama_cpp.Llama`: its tokenizer, single-stream decoding, and the model pointer the
    batched contexts share (the weights are loaded once)."""

    def __init__(self, path: str, threads: int, n_ctx: int) -> None:
        llama_cpp = require()
        self.L = llama_cpp.llama_cpp
        with _no_extra_buffer_types(self.L):
            self.llm = llama_cpp.Llama(model_path=path, n_ctx=round_up(n_ctx), n_threads=threads, n_batch=512,
                                       verbose=False, logits_all=False)
        self.threads, self.version = threads, str(llama_cpp.__version__)
        self.n_vocab = self.llm.n_vocab()

    def close(self) -> None:
        self.llm.close()

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def argmax(self, ctx: Any, i: int) -> int:
        import numpy as np

        row = np.ctypeslib.as_array(self.L.llama_get_logits_ith(ctx, i), shape=(self.n_vocab,))
        return int(row.argmax())

    def single(self, prompts: list[list[int]], max_new: int, stops: set[int]) -> list[list[int]]:
        """One prompt at a time through `Llama.eval` (prefill in n_batch pieces, then one token per call)."""
        outs = []
        for ids in prompts:
            self.llm.reset()
            self.llm.eval(ids)
            row: list[int] = []
            while True:
                row.append(self.argmax(self.llm.ctx, -1))
                if row[-1] in stops or len(row) >= max_new:
                    break
                self.llm.eval(row[-1:])
            outs.append(row)
        return outs


KV_MODES = ("split", "unified", "shared")


class Batched:
    """All prompts of a call decoded together in one llama.cpp context: one sequence id per prompt, the whole
    prefill in one `llama_decode` (llama.cpp splits it into n_ubatch pieces), then one token per live sequence
    per step. The context is made once for the largest call (`n_seq` prompts, `n_ctx` KV cells) with the
    single-stream context's settings, and its memory cleared between calls.

    KV modes: "split" (llama.cpp's default) gives each sequence its own n_ctx / n_seq cells; "unified" has all
    sequences share one buffer of sum(prompt + max_new) cells (attention masks the others out); "shared" is
    unified with the prompts' common prefix (the template's system prompt) prefilled once, its tokens carrying
    every sequence id, as ptst's prefix cache does."""

    def __init__(self, lc: LlamaCpp, n_seq: int, n_ctx: int, n_prefill: int, kv: str) -> None:
        if kv not in KV_MODES:
            raise ValueError(f"kv must be one of {KV_MODES}, got {kv!r}")
        self.lc, self.L, self.n_seq, self.kv = lc, lc.L, n_seq, kv
        src = lc.llm.context_params  # the single-stream context's settings (flash attention off, f16 KV, ...)
        p = type(src).from_buffer_copy(src)
        p.n_ctx = n_ctx
        p.n_batch = max(n_prefill, n_seq)  # the whole prefill is one llama_decode call
        p.n_ubatch = 512
        p.n_seq_max = n_seq
        p.n_threads = p.n_threads_batch = lc.threads
        p.kv_unified = kv != "split"
        p.no_perf = True
        self.n_batch = p.n_batch
        self.ctx = self.L.llama_init_from_model(lc.llm.model, p)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context (n_ctx {n_ctx}, n_seq_max {n_seq})")
        self.batch = self.L.llama_batch_init(self.n_batch, 0, n_seq if kv == "shared" else 1)

    @staticmethod
    def sizes(prompt_lens: list[list[int]], max_new: int, kv: str) -> tuple[int, int, int]:
        """(n_seq, n_ctx, n_prefill) big enough for every call, given each call's prompt lengths."""
        n_seq, n_prefill = max(len(c) for c in prompt_lens), max(sum(c) for c in prompt_lens)
        if kv == "split":  # each sequence gets n_ctx / n_seq cells, which llama.cpp pads to a multiple of 256
            return n_seq, n_seq * round_up(max(n + max_new for c in prompt_lens for n in c)), n_prefill
        return n_seq, round_up(max(sum(n + max_new for n in c) for c in prompt_lens)), n_prefill

    def close(self) -> None:
        if self.ctx:
            self.L.llama_batch_free(self.batch)
            self.L.llama_free(self.ctx)
            self.ctx = None

    def _put(self, k: int, token: int, pos: int, seqs: range | list[int], logits: bool) -> None:
        b = self.batch
        b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = token, pos, len(seqs), logits
        for j, s in enumerate(seqs):
            b.seq_id[k][j] = s

    def _prefill(self, prompts: list[list[int]]) -> list[int]:
        """Every prompt into the cache in one decode; the batch index of each prompt's last-token logits."""
        prefix = 0
        if self.kv == "shared" and len(prompts) > 1:  # each prompt keeps one token of its own for its logits
            first = prompts[0]
            limit = min(map(len, prompts)) - 1
            while prefix < limit and all(p[prefix] == first[prefix] for p in prompts):
                prefix += 1
        everyone = range(len(prompts))
        for pos in range(prefix):
            self._put(pos, prompts[0][pos], pos, everyone, False)
        k, heads = prefix, []
        for s, ids in enumerate(prompts):
            for pos in range(prefix, len(ids)):
                self._put(k, ids[pos], pos, [s], pos == len(ids) - 1)
                k += 1
            heads.append(k - 1)
        self._decode(k)
        return heads

    def _decode(self, n_tokens: int) -> None:
        self.batch.n_tokens = n_tokens
        rc = self.L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} for a batch of {n_tokens} tokens "
                               "(1: no KV slot, the context is too small)")

    def generate(self, prompts: list[list[int]], max_new: int, stops: set[int]) -> list[list[int]]:
        if len(prompts) > self.n_seq or sum(map(len, prompts)) > self.n_batch:
            raise ValueError(f"{len(prompts)} prompts / {sum(map(len, prompts))} tokens exceed the context's "
                             f"{self.n_seq} sequences / {self.n_batch}-token batch")
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), False)  # metadata: cells free
        heads = self._prefill(prompts)
        outs: list[list[int]] = [[] for _ in prompts]
        live = list(range(len(prompts)))
        while live:
            still = []
            for s, head in zip(live, heads, strict=True):
                outs[s].append(self.lc.argmax(self.ctx, head))
                if outs[s][-1] not in stops and len(outs[s]) < max_new:
                    still.append(s)
            live, heads = still, list(range(len(still)))
            for j, s in enumerate(live):
                self._put(j, outs[s][-1], len(prompts[s]) + len(outs[s]) - 1, [s], True)
            if live:
                self._decode(len(live))
        return outs
