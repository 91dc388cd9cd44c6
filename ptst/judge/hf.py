"""A transformers causal LM as a scorer: batched greedy generation and continuation log-likelihoods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ptst.models import load_model, load_tokenizer


@dataclass
class LoadedLM:
    """A model, its tokenizer (left padding, a pad token), and the spec it was loaded from."""

    model: Any
    tok: Any
    spec: str

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device


def load_lm(spec: str, device: str | None = None, dtype: str | None = None) -> LoadedLM:
    return LoadedLM(load_model(spec, device=device, dtype=dtype), load_tokenizer(spec), spec)


def starts_with_bos(lm: LoadedLM, text: str) -> bool:
    bos = getattr(lm.tok, "bos_token", None)
    return bool(bos) and text.startswith(str(bos))


def encode_prompt(lm: LoadedLM, text: str) -> list[int]:
    """Token ids of a full prompt: the tokenizer's special tokens are added unless the text already has its BOS."""
    ids = lm.tok(text, add_special_tokens=not starts_with_bos(lm, text))["input_ids"]
    return list(ids)


def clip_tokens(lm: LoadedLM, text: str, max_tokens: int) -> str:
    """`text` cut to its first `max_tokens` tokens (unchanged when shorter), as HarmBench clips generations."""
    ids = lm.tok(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else str(lm.tok.decode(ids[:max_tokens], skip_special_tokens=True))


def greedy_generate(lm: LoadedLM, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy continuations of `prompts` (left-padded batches), decoded without special tokens."""
    import torch

    pad = lm.tok.pad_token_id if lm.tok.pad_token_id is not None else lm.tok.eos_token_id
    outs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        rows = [encode_prompt(lm, p) for p in prompts[start: start + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=lm.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=lm.device)
        with torch.no_grad():
            gen = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                                    pad_token_id=pad, temperature=None, top_p=None, top_k=None)
        outs.extend(str(lm.tok.decode(g[width:], skip_special_tokens=True)) for g in gen)
    return outs


@dataclass(frozen=True)
class ContinuationScore:
    """Sum of log-probs of a continuation's tokens given its context; `greedy` is True when every token is
    the arg-max (lm-eval's `is_greedy`)."""

    logprob: float
    n_tokens: int
    greedy: bool


def continuation_logprobs(lm: LoadedLM, pairs: Sequence[tuple[str, str]], batch_size: int = 8,
                          ) -> list[ContinuationScore]:
    """log P(continuation | context) per pair; context and continuation are tokenized apart and joined
    (the lm-eval convention), so the continuation's tokens are the same whatever the context."""
    import torch

    pad = lm.tok.pad_token_id if lm.tok.pad_token_id is not None else lm.tok.eos_token_id
    out: list[ContinuationScore] = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start: start + batch_size]
        ctx = [encode_prompt(lm, c) for c, _ in batch]
        cont = [list(lm.tok(x, add_special_tokens=False)["input_ids"]) for _, x in batch]
        if any(not c for c in cont) or any(not c for c in ctx):
            raise ValueError("an empty context or continuation cannot be scored")
        rows = [a + b for a, b in zip(ctx, cont, strict=True)]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=lm.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=lm.device)
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for i, (a, b) in enumerate(zip(ctx, cont, strict=True)):
            pos = torch.arange(len(a) - 1, len(a) + len(b) - 1, device=lm.device)
            target = torch.tensor(b, device=lm.device)
            rows_lp = logp[i, pos]
            out.append(ContinuationScore(float(rows_lp.gather(1, target[:, None]).sum()), len(b),
                                         bool((rows_lp.argmax(-1) == target).all())))
    return out
