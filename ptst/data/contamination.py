"""Contamination check: training inputs that duplicate an evaluation input, exactly or after normalisation."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from ptst.data.types import Dataset

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Overlap:
    """One training example whose input duplicates one evaluation example's input."""

    train_id: str
    eval_set: str  # NAME:SPLIT of the evaluation set
    eval_id: str
    match: str  # "exact" | "normalised"
    text: str  # the training input


def normalise_text(text: str) -> str:
    """Case-folded, Unicode punctuation replaced by spaces, whitespace collapsed and trimmed (NFKC first, so
    full-width and compatibility forms compare equal)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


def find_overlap(train: Dataset, evals: list[Dataset]) -> list[Overlap]:
    """Every (training example, evaluation example) pair with equal inputs: `exact` when the strings are
    identical, `normalised` when they differ only in case, punctuation or whitespace. Inputs that normalise
    to nothing (pure punctuation) are ignored. Ordered by eval set, eval example, then training example."""
    exact: dict[str, list[str]] = defaultdict(list)
    norm: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ex in train:
        exact[ex.input].append(ex.id)
        key = normalise_text(ex.input)
        if key:
            norm[key].append((ex.id, ex.input))
    found: list[Overlap] = []
    for ev in evals:
        label = f"{ev.name}:{ev.split}"
        for e in ev:
            key = normalise_text(e.input)
            for train_id, text in norm.get(key, []) if key else []:
                kind = "exact" if text == e.input else "normalised"
                found.append(Overlap(train_id, label, e.id, kind, text))
            if not key:  # punctuation-only inputs can still be exact duplicates
                found += [Overlap(t, label, e.id, "exact", e.input) for t in exact.get(e.input, [])]
    return found


def remove_overlap(train: Dataset, evals: list[Dataset]) -> tuple[Dataset, int]:
    """The training set without any example that overlaps an evaluation set, and how many were removed.
    `sha256` still names the source file; `fingerprint` changes with the rows."""
    bad = {o.train_id for o in find_overlap(train, evals)}
    kept = tuple(e for e in train if e.id not in bad)
    return dataclasses.replace(train, examples=kept), len(train) - len(kept)
