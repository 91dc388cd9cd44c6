"""When an answer ends: end-of-turn token ids of a tokenizer, and stop-string truncation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ptst.generate.base import Completion
from ptst.specs.decoding import Decoding

# End-of-turn / end-of-text tokens of the common chat families. Only the ones a tokenizer really has count, so a
# ChatML model stops at <|im_end|> even when its config's eos is <|endoftext|> (and the other way round).
END_OF_TURN_TOKENS = (
    "<|im_end|>",  # ChatML: SmolLM2, Qwen, Hermes
    "<|eot_id|>",  # Llama 3
    "<|eom_id|>",  # Llama 3.1 tool turns
    "<|end|>",  # Phi-3
    "<end_of_turn>",  # Gemma
    "<|endoftext|>",  # GPT-2 family, Qwen base, SmolLM2
    "<|end_of_text|>",  # Llama 3 base
    "</s>",  # Llama 2, Mistral
)


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """The ids that end an answer: the model's and tokenizer's EOS plus end-of-turn tokens present in the vocab."""
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    ids += _as_list(getattr(gen_cfg, "eos_token_id", None))
    ids += _as_list(getattr(tokenizer, "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in END_OF_TURN_TOKENS if t in vocab]
    return sorted(set(ids))


def truncate_at_stop(text: str, stop: Iterable[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop string (which is dropped, as OpenAI and vLLM do); True if one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def stop_checker(tokenizer: Any, stop: Sequence[str]) -> Callable[[list[int]], bool] | None:
    """A test on a row's tokens so far: whether their text now holds one of the `stop` strings (None where there
    are none). Decodes only the last 4k+4 tokens, where a stop string of k characters must lie (byte-level BPE's
    worst case), so a decoding loop can run it after every token."""
    if not stop:
        return None
    window = 4 * max(len(x) for x in stop) + 4
    return lambda toks: truncate_at_stop(tokenizer.decode(toks[-window:], skip_special_tokens=True), stop)[1]


def first_stop(token_ids: Sequence[int], stops: set[int]) -> int:
    """Index of the first stop token in `token_ids`, or -1."""
    for i, t in enumerate(token_ids):
        if t in stops:
            return i
    return -1


def completion(tokenizer: Any, stop_ids: Sequence[int], row: list[int], d: Decoding, reason: str | None) -> Completion:
    """A generated row (cut after its first stop token, if any) as a Completion: its text without the end-of-turn
    token (which counts as generated) and cut before a stop string; `reason` None: "stop" where it ended (a stop
    token or string, or fewer tokens than the limit), else "length"."""
    ended = bool(row) and row[-1] in stop_ids
    body = row[:-1] if ended else row
    text, cut = truncate_at_stop(tokenizer.decode(body, skip_special_tokens=True), d.stop)
    if reason is None:
        reason = "stop" if (ended or cut or len(row) < d.max_new_tokens) else "length"
    return Completion(text=text, finish_reason="stop" if cut else reason, n_tokens=len(row))
