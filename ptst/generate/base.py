"""The backend Protocol every generation backend (HF, vLLM, OpenAI-compatible) implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ptst.records import Message
from ptst.specs.decoding import Decoding


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
