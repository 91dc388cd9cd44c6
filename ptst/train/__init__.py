"""Training stage: response-only LoRA / full fine-tuning of a causal LM under one prompt template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptst.runs.trained import TrainSpec
from ptst.specs.train import LoraConfig, MixSpec, TrainConfig, load_train_config
from ptst.train.runner import run as _run

__all__ = ["LoraConfig", "MixSpec", "TrainConfig", "TrainSpec", "load_train_config", "run"]


def run(cfg: TrainConfig, out_dir: str | Path, **kwargs: Any) -> TrainSpec:
    """Train `cfg` into `out_dir` and return its spec.json, typed; `ptst.train.runner.run` has the options."""
    return _run(cfg, out_dir, **kwargs)
