"""The one exception type users see: a single clear line, non-zero exit."""

from __future__ import annotations


class PtstError(Exception):
    """An error caused by user input or environment; the CLI prints it as one line and exits 2."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")).strip())
