"""Stop-gap loader for `jsonl:PATH` fine-tuning files, used only while `ptst.data` is not importable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError


@dataclass(frozen=True)
class JsonlSet:
    name: str
    split: str | None
    examples: tuple[Any, ...]
    sha256: str
    licence: str | None = None
    non_commercial: bool = False


def load_jsonl_set(spec: str, split: str | None, limit: int | None) -> JsonlSet:
    """Rows with `input` and `response` (or `question` / `answer`), optional `id`; the first `limit` rows."""
    from ptst.io import read_jsonl, sha256_file
    from ptst.records import Example

    if not spec.startswith("jsonl:"):
        raise PtstError(f"unknown data set {spec!r}: the data module (ptst.data) is not available; "
                        "use jsonl:PATH with input/response rows")
    path = Path(spec[len("jsonl:"):])
    rows = read_jsonl(path)
    examples = []
    for i, row in enumerate(rows[:limit] if limit else rows):
        text = row.get("input", row.get("question"))
        if not isinstance(text, str):
            raise PtstError(f"{path}:{i + 1}: a row needs a string 'input' (or 'question')")
        examples.append(Example(str(row.get("id", i)), text, row.get("response", row.get("answer"))))
    return JsonlSet(path.stem, split, tuple(examples), sha256_file(path))
