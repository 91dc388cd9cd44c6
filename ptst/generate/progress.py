"""A rich progress bar for generation: prompts done, generated tokens and tokens/s."""

from __future__ import annotations

import time
from typing import Any


class GenProgress:
    """Counts finished prompts and generated tokens; draws a rich bar on stderr when enabled.

    Usable as a context manager; `advance(prompts, tokens)` may be called per decoding step (tokens only)
    or per finished item.
    """

    def __init__(self, total: int, label: str = "generating", enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.enabled = enabled
        self.tokens = 0
        self.done = 0
        self._start = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> GenProgress:
        self._start = time.perf_counter()
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[tokens]} tok  {task.fields[rate]} tok/s"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, tokens=0, rate="-")
        return self

    def advance(self, prompts: int = 0, tokens: int = 0) -> None:
        self.done += prompts
        self.tokens += tokens
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, tokens=self.tokens, rate=f"{self.rate:.1f}")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start

    @property
    def rate(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
