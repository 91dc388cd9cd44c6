"""Helpfulness scorers: GSM8K (strict and flexible exact match), ARC (letter or log-likelihood), ChatDoctor
(reference overlap)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any

from ptst import metrics, templates
from ptst.errors import PtstError
from ptst.judge.hf import continuation_logprobs, load_lm
from ptst.records import Generation
from ptst.score.base import ScoreConfig, register_scorer


def _reference(g: Generation) -> str:
    if g.reference is None or not str(g.reference).strip():
        raise PtstError(f"generation {g.id!r} has no reference answer")
    return str(g.reference)


def _items(gens: Sequence[Generation], per: dict[str, Sequence[bool] | Sequence[float]]) -> dict[str, Any]:
    """Per-prompt scores, `{metric: {id: value}}` (booleans as 0/1): what paired comparisons between two cells
    (fine-tuned vs not, in the report) are computed from."""
    return {m: {g.id: float(v) for g, v in zip(gens, vals, strict=True)} for m, vals in per.items()}


# ---- GSM8K ----

_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?"
_STRICT = re.compile(r"####\s*(" + _NUM + ")")


def normalize_number(text: str) -> str | None:
    """'$1,234.50' -> '1234.5', '72.0' -> '72', '7.' -> '7'; None if it is not a number."""
    s = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    out = format(d.normalize(), "f")
    return "0" if out in ("-0", "0") else out


def gsm8k_strict(answer: str) -> str | None:
    """The number after the first `####` (the GSM8K answer format), normalised."""
    m = _STRICT.search(answer)
    return normalize_number(m.group(1)) if m else None


def gsm8k_flexible(answer: str) -> str | None:
    """The last number anywhere in the answer, normalised."""
    nums = re.findall(_NUM, answer)
    return normalize_number(nums[-1]) if nums else None


def _gsm8k_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy.strict": doc["strict"], "accuracy.flexible": doc["flexible"]}


@register_scorer("gsm8k", "gsm8k-v1", kind="helpfulness", metrics=_gsm8k_metrics)
def score_gsm8k(gens: Sequence[Generation], cfg: ScoreConfig) -> dict[str, Any]:
    strict, flexible = [], []
    for g in gens:
        ref_text = _reference(g)
        ref = normalize_number(ref_text.split("####")[-1])
        if ref is None:
            raise PtstError(f"generation {g.id!r}: reference {ref_text!r} is not a number")
        strict.append(gsm8k_strict(g.answer) == ref)
        flexible.append(gsm8k_flexible(g.answer) == ref)
    return {"n": len(gens), "strict": metrics.wilson(sum(strict), len(gens)).to_dict(),
            "flexible": metrics.wilson(sum(flexible), len(gens)).to_dict(),
            "strict_unparsed": sum(gsm8k_strict(g.answer) is None for g in gens),
            "flexible_unparsed": sum(gsm8k_flexible(g.answer) is None for g in gens),
            "items": _items(gens, {"strict": strict, "flexible": flexible})}


# ---- ARC ----

def arc_choices(g: Generation) -> list[tuple[str, str]]:
    """[(label, text)] from meta.choices: a list of {label, text} or HF's {label: [...], text: [...]}."""
    ch = g.meta.get("choices")
    if isinstance(ch, dict) and "label" in ch and "text" in ch:
        return [(str(lab), str(t)) for lab, t in zip(ch["label"], ch["text"], strict=True)]
    if isinstance(ch, list) and all(isinstance(c, dict) and "label" in c for c in ch):
        return [(str(c["label"]), str(c.get("text", ""))) for c in ch]
    return []


def extract_choice(answer: str, labels: Sequence[str], texts: Sequence[str] = ()) -> str | None:
    """The choice label an answer commits to; rules in order, the first that finds one wins:
    1. the last "answer is B" / "Answer: (B)" / "answer: option B";
    2. the answer starts with "B.", "B)", "B:", "(B)" or is just "B";
    3. exactly one distinct "(B)" appears anywhere;
    4. exactly one choice's text appears (case-insensitive, whole words)."""
    alt = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    said = re.findall(rf"[Aa]nswer(?:\s+is)?\s*[:\-]?\s*(?:(?:option|choice)\s+)?\(?({alt})\b\)?", answer)
    if said:
        return str(said[-1])
    m = re.match(rf"\s*(?:\(({alt})\)|({alt})(?:[.):]|\s*$))", answer)
    if m:
        return m.group(1) or m.group(2)
    paren = set(re.findall(rf"\(({alt})\)", answer))
    if len(paren) == 1:
        return paren.pop()
    low = answer.lower()
    hits = [lab for lab, t in zip(labels, texts, strict=False)
            if t.strip() and re.search(rf"\b{re.escape(t.strip().lower())}\b", low)]
    return hits[0] if len(hits) == 1 else None


def _arc_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """Every Rate in the doc (letter mode: accuracy, accuracy_extracted; loglik: accuracy, accuracy_norm)."""
    return {f"accuracy.{k}": v for k, v in doc.items() if isinstance(v, dict) and "k" in v}


@register_scorer("arc", "arc-v1", kind="helpfulness", metrics=_arc_metrics)
def score_arc(gens: Sequence[Generation], cfg: ScoreConfig) -> dict[str, Any]:
    if cfg.arc_mode == "loglik":
        return _arc_loglik(gens, cfg)
    correct, unextracted = [], 0
    for g in gens:
        choices = arc_choices(g)
        labels = [lab for lab, _ in choices] or ["A", "B", "C", "D", "E"]
        got = extract_choice(g.answer, labels, [t for _, t in choices])
        unextracted += got is None
        correct.append(got is not None and got == _reference(g).strip())
    k = sum(correct)
    return {"n": len(gens), "mode": "letter", "accuracy": metrics.wilson(k, len(gens)).to_dict(),
            "unextracted": unextracted, "accuracy_extracted": metrics.wilson(k, len(gens) - unextracted).to_dict(),
            "items": _items(gens, {"accuracy": correct})}


def _context(g: Generation, tok: Any) -> str:
    if not g.template:
        return g.prompt
    return templates.render(templates.get_template(g.template), tok, g.prompt).text


def _arc_loglik(gens: Sequence[Generation], cfg: ScoreConfig) -> dict[str, Any]:
    """lm-eval-style multiple choice: acc = arg-max summed log-prob, acc_norm = arg-max per byte of the choice."""
    if not cfg.model:
        raise PtstError("arc scoring with --arc-mode loglik needs --model")
    lm = load_lm(cfg.model, device=cfg.device, dtype=cfg.dtype)
    acc: list[bool] = []
    acc_norm: list[bool] = []
    for g in gens:
        choices = arc_choices(g)
        if not choices:
            raise PtstError(f"generation {g.id!r}: loglik scoring needs meta.choices (labels and texts)")
        ctx = _context(g, lm.tok)
        conts = [" " + (t if cfg.arc_choice == "text" else lab) for lab, t in choices]
        scores = continuation_logprobs(lm, [(ctx, c) for c in conts], cfg.batch_size)
        ref = _reference(g).strip()
        best = max(range(len(choices)), key=lambda i: scores[i].logprob)
        best_norm = max(range(len(choices)), key=lambda i: scores[i].logprob / len(conts[i].encode("utf-8")))
        acc.append(choices[best][0] == ref)
        acc_norm.append(choices[best_norm][0] == ref)
    return {"n": len(gens), "mode": "loglik", "choice": cfg.arc_choice, "model": cfg.model,
            "accuracy": metrics.wilson(sum(acc), len(gens)).to_dict(),
            "accuracy_norm": metrics.wilson(sum(acc_norm), len(gens)).to_dict(),
            "items": _items(gens, {"accuracy": acc, "accuracy_norm": acc_norm})}


# ---- ChatDoctor ----

def _chatdoctor_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    return {"rouge_l_f1": doc["rouge_l_f1"], "token_f1": doc["token_f1"]}


@register_scorer("chatdoctor", "chatdoctor-overlap-v1", kind="helpfulness", metrics=_chatdoctor_metrics)
def score_chatdoctor(gens: Sequence[Generation], cfg: ScoreConfig) -> dict[str, Any]:
    rl = [metrics.rouge_l_f1(g.answer, _reference(g)) for g in gens]
    tf = [metrics.token_f1(g.answer, _reference(g)) for g in gens]
    return {"n": len(gens), "rouge_l_f1": asdict(metrics.mean_score(rl)), "token_f1": asdict(metrics.mean_score(tf)),
            "note": "reference overlap, an offline stand-in for the BERTScore the paper reportedly used",
            "items": _items(gens, {"rouge_l_f1": rl, "token_f1": tf})}
