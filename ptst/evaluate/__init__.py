"""The evaluation stage: generate → judge → score one cell on several sets, then one metrics.json.

`key` (the cell's inputs, key and artifact state), `kinds` (what each kind of set computes), `runner` (`run(cfg,
out_dir)`), `cli` (`ptst eval`)."""

from ptst.evaluate.key import EvalArtifact, cell_inputs, is_evaluated
from ptst.evaluate.runner import run

__all__ = ["EvalArtifact", "cell_inputs", "is_evaluated", "run"]
