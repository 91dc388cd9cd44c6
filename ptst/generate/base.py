"""The backend Protocol every generation backend (HF, vLLM, OpenAI-compatible) implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ptst.errors import PtstError
from ptst.records import Message


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


@dataclass(frozen=True)
class PromptItem:
    """One request: `rendered` is the exact prompt text (HF/vLLM); `messages` the same turn as chat messages
    (OpenAI-compatible endpoints, which apply their own template)."""

    id: str
    rendered: str
    messages: Sequence[Message] = field(default_factory=tuple)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None  # "stop" | "length"
    n_tokens: int | None = None


# Called as on_done(index into items, completion) as soon as an item is finished, in the caller's thread and
# in completion order (not input order): what lets a stage write records as they come and resume after a kill.
OnDone = Callable[[int, Completion], None]


class Backend(Protocol):
    """Generates one completion per item, in order."""

    name: str

    def generate(self, items: Sequence[PromptItem], decoding: Decoding,
                 on_done: OnDone | None = None) -> list[Completion]: ...
