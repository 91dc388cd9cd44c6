"""The evaluation stage's artifact: an evaluation cell's key (a pure function of its EvalConfig) and the state
of its directory against it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ptst.io import read_json, stable_hash
from ptst.runs.layout import EvalDir
from ptst.runs.state import State, Status
from ptst.specs.eval import EvalConfig


def eval_key(cfg: EvalConfig) -> dict[str, Any]:
    """What identifies this cell's results (per-file keys in the generation/judgement files back it up)."""
    from ptst.judge import build_judge
    from ptst.models import adapter_hash, model_id

    specs = [e.resolved() for e in cfg.evals]
    return {
        "model": model_id(cfg.model), "adapter_hash": adapter_hash(cfg.adapter), "template": cfg.template,
        "evals": [vars(e) for e in specs], "decoding": cfg.decoding, "generate": cfg.generate, "seed": cfg.seed,
        "judges": {j: build_judge(cfg.judge_config(j)).version for j in cfg.judges},
    }


def judge_keys(cfg: EvalConfig) -> dict[str, str]:
    """Each judge's judge_key (name, version and settings such as the judge model): recorded in metrics.json
    beside `key`, so a finished cell re-judges when --judge-* options change what a judge is."""
    from ptst.judge import build_judge, judge_key

    return {j: judge_key(build_judge(cfg.judge_config(j))) for j in cfg.judges}


@dataclass(frozen=True)
class EvalArtifact:
    """An evaluation cell's directory for one EvalConfig. metrics.json, written last, carries the key and the
    judge keys; a cell made with other keys is recomputed (its answers and verdicts are cached under their own
    keys, so only what changed is redone)."""

    dir: EvalDir
    cfg: EvalConfig
    on_different: ClassVar[str] = "made by another config: will be recomputed"

    @property
    def path(self) -> Path:
        return self.dir.path

    @cached_property
    def parts(self) -> dict[str, Any]:
        """The whole key (eval_key), computed once."""
        return eval_key(self.cfg)

    @cached_property
    def judge_keys(self) -> dict[str, str]:
        return judge_keys(self.cfg)

    def key(self) -> str:
        return stable_hash(self.parts)

    def state(self) -> Status:
        if self.dir.metrics.exists():
            prev = read_json(self.dir.metrics)
            # metrics.json files from before judge_keys was recorded have none: their `key` alone decides
            if prev.get("key") != self.key():
                return Status(State.DIFFERENT, "another key")
            if prev.get("judge_keys", self.judge_keys) != self.judge_keys:
                return Status(State.DIFFERENT, "other judge settings")
            return Status(State.DONE)
        n = answers(self.dir)
        return Status(State.PARTIAL, f"{n} answers") if n else Status(State.NEW)


def answers(d: EvalDir) -> int:
    """Answers already generated in a cell (any key): what a partial cell has to show."""
    if not d.generations_dir.is_dir():
        return 0
    return sum(sum(1 for line in g.open(encoding="utf-8") if line.strip()) for g in d.generations_dir.glob("*.jsonl"))


def is_evaluated(cfg: EvalConfig, out_dir: str | Path) -> bool:
    """out_dir holds this config's finished cell (metrics.json with its key and judge keys)."""
    return EvalArtifact(EvalDir(Path(out_dir)), cfg).state().done
