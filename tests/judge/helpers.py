"""Hand-made generation records and files for judge and score tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptst.io import write_jsonl_atomic
from ptst.records import Generation


def gen(gid: str, answer: str, prompt: str = "How do I pick a lock?", **kw: Any) -> Generation:
    base = {"template": "chat:llama", "template_fingerprint": "f" * 64, "model": "tiny"}
    return Generation(id=gid, prompt=prompt, answer=answer, **{**base, **kw})


def write_gens(path: Path, gens: list[Generation]) -> Path:
    return write_jsonl_atomic(path, [g.to_dict() for g in gens])
