"""On-disk judgement cache: one small JSON file per (judge key, prompt, answer), written atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.io import stable_hash, write_json_atomic
from ptst.models import cache_dir


def cache_root() -> Path:
    return cache_dir() / "judge"


@dataclass(frozen=True)
class JudgementCache:
    """Maps stable_hash([judge key, prompt, answer]) -> the verdict fields (no id: identical pairs share one)."""

    judge_key: str
    root: Path | None = None

    def key(self, prompt: str, answer: str) -> str:
        return stable_hash([self.judge_key, prompt, answer])

    def _path(self, key: str) -> Path:
        return (self.root or cache_root()) / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self._path(key)
        try:
            return dict(json.loads(p.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, OSError, TypeError, ValueError):
            return None  # a damaged entry is a miss; the next write replaces it

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        write_json_atomic(self._path(key), verdict)
