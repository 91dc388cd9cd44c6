"""Training examples: load the data set and its mixes, render each under its template, label only the response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptst.data import load_dataset
from ptst.errors import PtstError
from ptst.io import sha256_text
from ptst.templates import fingerprint, frame, get_template

IGNORE = -100
TRAIN_FORMAT = ("{input}", "{response}")


@dataclass(frozen=True)
class Encoded:
    """One tokenized example: positions `start:` of `input_ids` are trained (the response through the first
    end-of-turn token after it); everything before is context. Nothing follows the trained span."""

    id: str
    source: str
    input_ids: tuple[int, ...]
    start: int

    @property
    def n_trained(self) -> int:
        return len(self.input_ids) - self.start

    def labels(self) -> list[int]:
        return [IGNORE] * self.start + list(self.input_ids[self.start:])


@dataclass(frozen=True)
class Part:
    """What one data set contributed to the training set (the main set first, then each mix)."""

    data: str
    name: str
    split: str | None
    sha256: str
    licence: str | None
    non_commercial: bool
    limit: int | None
    template: str
    fingerprint: str
    train_format_sha256: str
    train_format: str
    rows_fingerprint: str  # the loaded rows' fingerprint (ptst.data.Dataset.fingerprint)
    n_loaded: int
    n_used: int
    n_dropped_truncated: int
    response_tokens: int
    total_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TrainSet:
    examples: tuple[Encoded, ...]
    parts: tuple[Part, ...]

    @property
    def response_tokens(self) -> int:
        return sum(p.response_tokens for p in self.parts)

    @property
    def total_tokens(self) -> int:
        return sum(p.total_tokens for p in self.parts)


def stop_token_ids(tok: Any) -> frozenset[int]:
    """Every special (control) token: the first one after a response is its end-of-turn marker
    (</s> for Llama-2 / Mistral, <|im_end|> for ChatML, <|eot_id|> for Llama 3, the EOS of text mode)."""
    ids = set(getattr(tok, "all_special_ids", []) or [])
    for i, added in (getattr(tok, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(i))
    if getattr(tok, "eos_token_id", None) is not None:
        ids.add(int(tok.eos_token_id))
    return frozenset(ids)


def label_span(offsets: list[tuple[int, int]], ids: list[int], resp_start: int, resp_end: int,
               stops: frozenset[int]) -> tuple[int, int]:
    """Token span [first, last] to train: from the first token that ends past the response start (a token
    straddling scaffolding and response is trained) through the first stop token after the response."""
    n = len(ids)
    first = next((i for i, (s, e) in enumerate(offsets) if e > resp_start and e > s), n)
    after = next((i for i in range(first, n) if offsets[i][0] >= resp_end), n)
    stop = next((i for i in range(after, n) if ids[i] in stops), None)
    return first, (stop if stop is not None else after - 1)


def encode_rendered(tok: Any, rendered: list[Any], max_len: int, stops: frozenset[int]) -> list[tuple[list[int],
                                                                                                       int] | None]:
    """Tokenize rendered examples; (ids, first_trained) each, or None when truncation removed the response."""
    if not getattr(tok, "is_fast", False):
        raise PtstError("training needs a fast (Rust) tokenizer: response masks come from its offset mapping")
    enc = tok([r.text for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
    out: list[tuple[list[int], int] | None] = []
    for r, ids, offs in zip(rendered, enc["input_ids"], enc["offset_mapping"], strict=True):
        first, last = label_span([tuple(o) for o in offs], ids, r.response_start, r.response_end, stops)
        first = max(first, 1)  # position 0 has no context to predict it from
        keep = min(last + 1, max_len)  # nothing after the end-of-turn token; then truncate from the right
        out.append((list(ids[:keep]), first) if first < keep else None)
    return out


def load_examples(spec: str, split: str | None, data_dir: str | None, limit: int | None, seed: int) -> Any:
    """A `ptst.data` Dataset (name, split, examples, sha256, licence, non_commercial)."""
    try:
        return load_dataset(spec, split=split, data_dir=data_dir, limit=limit, seed=seed)
    except PtstError:
        raise
    except (KeyError, ValueError, OSError) as e:
        raise PtstError(f"data set {spec!r}: {e}") from None


def _shape(t: Any, tok: Any) -> Any:
    """One rendering of the conversation's shape, filled per example: exactly `render(t, tok, input, response)`
    (the function evaluation and serving use), without a chat-template call per example."""
    return frame(t, tok, t.system is not None, ["user"], response=True)


def train_format(template_name: str, tok: Any) -> tuple[str, str]:
    """The training text of the placeholder example under a template on this tokenizer, and its sha256 (what
    spec.json records, so a finished run can tell when ptst's rendering changed)."""
    t = get_template(template_name)
    return _format_of(t, _shape(t, tok))


def _format_of(t: Any, shape: Any) -> tuple[str, str]:
    text = shape.fill(t.system, [TRAIN_FORMAT[0]], TRAIN_FORMAT[1]).text
    return text, sha256_text(text)


def encode_part(data: str, ds: Any, template_name: str, tok: Any, max_len: int, limit: int | None,
                stops: frozenset[int]) -> tuple[list[Encoded], Part]:
    t = get_template(template_name)
    shape = _shape(t, tok)
    fmt_text, fmt_sha = _format_of(t, shape)
    examples = list(ds.examples)
    missing = [ex.id for ex in examples if not isinstance(ex.response, str)]
    if missing:
        raise PtstError(f"data set {data!r}: {len(missing)} of {len(examples)} examples have no target response "
                        f"(first: {missing[0]}); training needs a fine-tuning set")
    rendered = [shape.fill(t.system, [ex.input], ex.response) for ex in examples]
    encoded = encode_rendered(tok, rendered, max_len, stops)
    kept = [Encoded(ex.id, data, tuple(e[0]), e[1]) for ex, e in zip(examples, encoded, strict=True) if e]
    part = Part(
        data=data, name=str(getattr(ds, "name", data)), split=getattr(ds, "split", None),
        sha256=str(getattr(ds, "sha256", "")), licence=getattr(ds, "licence", None),
        non_commercial=bool(getattr(ds, "non_commercial", False)), limit=limit, template=t.name,
        fingerprint=fingerprint(t, tok), train_format_sha256=fmt_sha, train_format=fmt_text,
        rows_fingerprint=str(getattr(ds, "fingerprint", "")),
        n_loaded=len(examples), n_used=len(kept), n_dropped_truncated=len(examples) - len(kept),
        response_tokens=sum(e.n_trained for e in kept), total_tokens=sum(len(e.input_ids) for e in kept),
    )
    return kept, part


def build_train_set(cfg: Any, tok: Any) -> TrainSet:
    """The main set plus every mix, encoded; one clear error when nothing trainable remains."""
    stops = stop_token_ids(tok)
    main = load_examples(cfg.data, cfg.split, cfg.data_dir, cfg.limit, cfg.seed)
    examples, part = encode_part(cfg.data, main, cfg.template, tok, cfg.max_len, cfg.limit, stops)
    parts = [part]
    for m in cfg.mix:
        ds = load_examples(m.data, m.split, cfg.data_dir, m.n, cfg.seed)
        if len(ds.examples) < m.n:
            raise PtstError(f"mix {m.data}:{m.n}: the data set has only {len(ds.examples)} examples")
        more, mpart = encode_part(m.data, ds, m.template or cfg.template, tok, cfg.max_len, m.n, stops)
        examples += more
        parts.append(mpart)
    for p in parts:
        if p.n_used == 0:
            raise PtstError(f"data set {p.data!r}: no usable examples: all {p.n_loaded} responses were cut off by "
                            f"max_len={cfg.max_len} (raise --max-len)" if p.n_loaded else
                            f"data set {p.data!r} is empty")
    return TrainSet(tuple(examples), tuple(parts))
