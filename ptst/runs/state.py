"""What state a stage's output is in, one answer for every reader: the stage itself (skip, resume or refuse),
the grid (what is pending), `ptst run --dry-run` and `ptst status`.

An artifact is a stage's output directory together with the key of the config that should make it. Its key
comes from a pure function of that config (`ptst.train.key`, `ptst.evaluate.eval_key`, `ptst.align.align_key`);
its state compares that key with the one the directory recorded:

    new        nothing of this stage is there
    done       the done marker is there and records this key
    partial    this key's work has started (checkpoints, answers) but the done marker is missing
    different  the directory was made with another key (what differs is in `detail`)

What a stage does with `different` is its own policy, stated by `on_different`: training and alignment refuse
(hours of work are not overwritten silently); an evaluation cell is recomputed (its generations and judgements
are cached under their own keys, so only what changed is redone)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol


class State(str, Enum):
    NEW = "new"
    DONE = "done"
    PARTIAL = "partial"
    DIFFERENT = "different"


@dataclass(frozen=True)
class Status:
    state: State
    detail: str = ""  # partial: how far (`step-40`, `12 answers`); different: what differs

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def describe(self, on_different: str = "") -> str:
        """One line for `ptst status` / `--dry-run`: `done`, `partial (step-4)`, `different (lr ...; refused)`."""
        parts = [p for p in (self.detail, on_different if self.state is State.DIFFERENT else "") if p]
        return f"{self.state.value} ({'; '.join(parts)})" if parts else self.state.value


class Artifact(Protocol):
    """A stage's output directory for one config: `key()` identifies the config, `state()` says where the
    directory stands against it. `on_different`: what the stage does with a directory of another key."""

    on_different: str

    @property
    def path(self) -> Path: ...

    def key(self) -> str: ...

    def state(self) -> Status: ...


WHOLE = "*"  # Currency.stale's label for every set of a cell


@dataclass(frozen=True)
class Currency:
    """Whether a run's finished results are still today's, as its stages' artifacts say (`ptst status`'s check):
    what a report may show. Paths are evaluation cells' directories relative to the run (`train/eval/test`)."""

    stale: dict[str, dict[str, str]]  # cell -> {set label, or WHOLE: what changed} (those numbers are not shown)
    unchecked: dict[str, str]  # cell -> why it could not be checked here (shown, and said)
    align: str = ""  # the alignment's own refusal figures are stale: what changed ("" = current, or none)
    note: str = ""  # nothing could be checked, and why ("" = the run was checked)
