"""A tiny name -> object registry with "did you mean" on a miss."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ptst.errors import PtstError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """A suffix like " (did you mean 'chat:llama'?)", or "" when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Holds named objects of one kind; `register` works as a decorator or a call.

    `builtins`: the module that registers ptst's own entries, imported (by name) the first time the registry is
    read. A registry can so live below the modules that fill it (a config checks a backend name against the
    registry the generation stage fills) without importing them."""

    def __init__(self, kind: str, builtins: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._builtins = builtins

    def _load(self) -> dict[str, T]:
        if self._builtins is not None:
            module, self._builtins = self._builtins, None
            importlib.import_module(module)
        return self._items

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        def add(obj: T) -> T:
            if name in self._load():
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add(item) if item is not None else add

    def get(self, name: str) -> T:
        try:
            return self._load()[name]
        except KeyError:
            hint = did_you_mean(name, list(self._items))
            raise PtstError(f"unknown {self.kind} {name!r}{hint}; known: {', '.join(sorted(self._items))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def names(self) -> list[str]:
        return list(self._load())

    def items(self) -> list[tuple[str, T]]:
        return list(self._load().items())
