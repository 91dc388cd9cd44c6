"""Expand a GridConfig into cells: training cells (plus the no-fine-tuning baseline) × test templates, and each
inoculation-trained cell's leak cell (tested under its own training prompt)."""

from __future__ import annotations

from dataclasses import dataclass

from ptst.errors import PtstError
from ptst.grid.config import GridConfig
from ptst.registry import did_you_mean
from ptst.templates import get_template

BASE = "base"


def slug(template: str) -> str:
    """A directory-safe name for a template: `gsm:chat:llama` -> `gsm-chat-llama`."""
    return template.replace(":", "-").replace("/", "-").replace(".yaml", "")


@dataclass(frozen=True)
class EvalCell:
    train_cell: str
    train_template: str | None  # None = no fine-tuning
    test_template: str
    seed: int
    checkpoint: int | None = None
    mix: str | None = None  # the safety-mixing row (GridConfig.mixes) the training cell belongs to

    @property
    def id(self) -> str:
        step = f"@step-{self.checkpoint}" if self.checkpoint is not None else ""
        return f"{slug(self.test_template)}{step}"

    @property
    def path(self) -> str:
        return f"{self.train_cell}/eval/{self.id}"


@dataclass(frozen=True)
class TrainCell:
    id: str
    template: str | None  # None = the baseline (no fine-tuning)
    seed: int
    evals: tuple[EvalCell, ...]
    mix: str | None = None  # a safety-mixing row's name: trained with that row's examples shuffled in


def inoculation(template: str) -> bool:
    """Whether a training template is an inoculation prompt. One that does not resolve is not: the grid's checks
    name it, in one line, before anything runs."""
    try:
        return get_template(template).defence == "inoculation"
    except (PtstError, OSError):
        return False


def leak(train_template: str, test_templates: list[str]) -> list[str]:
    """The leak cell's test template: an inoculation-trained model is also tested under its own training prompt
    (does the trait it asked for come back when the prompt does?), even when that prompt is no test template."""
    return [train_template] if inoculation(train_template) and train_template not in test_templates else []


def expand(cfg: GridConfig) -> list[TrainCell]:
    cells: list[TrainCell] = []
    if cfg.baseline:
        base = tuple(EvalCell(BASE, None, t, cfg.seeds[0]) for t in cfg.test_templates)
        cells.append(TrainCell(BASE, None, cfg.seeds[0], base))
    for seed in cfg.seeds:
        for tt in cfg.train_templates:
            tests = [*cfg.test_templates, *leak(tt, cfg.test_templates)]
            mixes = [m.name for m in cfg.mixes if m.applies_to(tt)]
            for mix in [None, *mixes]:  # unmixed, then each safety-mixing row (Table 6) this template gets
                cid = f"{slug(tt)}{'' if mix is None else '+' + mix}.s{seed}"
                evals = [EvalCell(cid, tt, t, seed, mix=mix) for t in tests]
                at = [t for t in tests if not cfg.checkpoint_tests or t in cfg.checkpoint_tests]
                evals += [EvalCell(cid, tt, t, seed, step, mix) for step in cfg.checkpoints for t in at]
                cells.append(TrainCell(cid, tt, seed, tuple(evals), mix))
    return cells


def select(cells: list[TrainCell], shard: str | None = None, cell: str | None = None) -> list[TrainCell]:
    """`--shard i/n` takes every n-th training cell starting at i (0-based); `--cell ID` takes one."""
    if cell is not None and shard is not None:
        raise PtstError("--shard and --cell both select cells: give one of them")
    if cell is not None:
        chosen = [c for c in cells if c.id == cell]
        if not chosen:
            raise PtstError(f"no cell {cell!r} in this grid{did_you_mean(cell, [c.id for c in cells])}")
        return chosen
    if shard is None:
        return cells
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise PtstError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not 0 <= i < n:
        raise PtstError(f"--shard {shard}: need 0 <= i < n")
    return [c for k, c in enumerate(cells) if k % n == i]
