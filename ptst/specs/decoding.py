"""Decoding settings: how every answer is generated (part of every generation's cache key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ptst.errors import PtstError


@dataclass(frozen=True)
class Decoding:
    """Decoding settings; greedy (temperature 0) by default, as in the paper. Part of every cache key."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise PtstError("max_new_tokens must be >= 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise PtstError("temperature must be >= 0 and top_p in (0, 1]")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d
