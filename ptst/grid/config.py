"""The grid's YAML config as typed frozen dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ptst.config import section
from ptst.errors import PtstError
from ptst.specs import report as report_config
from ptst.specs.align import AlignSpec
from ptst.specs.decoding import Decoding
from ptst.specs.eval import CELL_KEYS, EvalSpec
from ptst.specs.generate import GenerateConfig
from ptst.specs.judge import JudgeConfig
from ptst.specs.train import TrainConfig

RESOURCE_KEYS = ("num_cpus", "num_gpus", "memory")
INPUTS = ("ship", "shared")


@dataclass(frozen=True)
class Resources:
    """What one Ray task asks of a node: CPUs, GPUs, memory in bytes, and custom resources (`{"A100": 1}`)."""

    num_cpus: float = 1
    num_gpus: float = 0
    memory: int | None = None
    custom: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_cpus < 0 or self.num_gpus < 0 or (self.memory is not None and self.memory < 0):
            raise PtstError("ray resources must be >= 0")

    def request(self) -> dict[str, float]:
        """As a node's resource table names them (Ray counts memory in bytes)."""
        req = {"CPU": float(self.num_cpus), "GPU": float(self.num_gpus), **self.custom}
        if self.memory:
            req["memory"] = float(self.memory)
        return {k: v for k, v in req.items() if v}

    def options(self) -> dict[str, Any]:
        """As `ray.remote(...).options()` takes them."""
        opts: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = self.memory
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


@dataclass(frozen=True)
class RaySpec:
    """How `executor: ray` runs the grid (operational: changing it never changes a result). `address`: a running
    cluster (`auto`, `host:port`), empty = start a local one. `inputs`: `ship` sends the run directory's inputs
    a task needs (aligned model, adapters) through the object store, for nodes that share no file system;
    `shared` reads them in place. `scratch_dir`: node-local working space (default: the system temp dir)."""

    address: str | None = None
    max_retries: int = 3
    train: Resources = field(default_factory=Resources)
    eval: Resources = field(default_factory=Resources)
    align: Resources | None = None  # default: the train request
    inputs: str = "ship"
    scratch_dir: str | None = None
    num_cpus: int | None = None  # of a local cluster started by ptst
    object_store_memory: int | None = None  # of a local cluster started by ptst, bytes

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise PtstError("ray.max_retries must be >= 0")
        if self.inputs not in INPUTS:
            raise PtstError(f"ray.inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")


EXECUTORS = ("local", "ray")
MIX_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class MixRow:
    """A safety-mixing row (the paper's Table 6): every training template is trained a second time with `n`
    examples of `data` (Bianchi et al.'s refusals, `safety`) shuffled in, rendered with `template`: `task` (the
    training template itself) or a template name (e.g. the safety prompt's, `chat:llama`). Its cells are
    `<template>+<name>.s<seed>`; the report shows them as rows `<template> + <name>`."""

    name: str
    n: int
    data: str = "safety"
    template: str = "task"
    split: str | None = None
    # the training templates that get this row (empty: every one); e.g. only the same-template diagonal and PTST's
    train_templates: list[str] = field(default_factory=list, metadata={"omit_empty": True})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not MIX_NAME.fullmatch(self.name):
            raise PtstError(f"mixes: name must be letters, digits, - or _, got {self.name!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise PtstError(f"mixes {self.name}: n must be a positive integer, got {self.n!r}")
        if not self.data or not self.template:
            raise PtstError(f"mixes {self.name}: data and template must be non-empty")

    def template_for(self, train_template: str) -> str:
        return train_template if self.template == "task" else self.template

    def applies_to(self, train_template: str) -> bool:
        return not self.train_templates or train_template in self.train_templates


@dataclass(frozen=True)
class GridConfig:
    """One experiment: model (+ alignment), fine-tuning data, the template lists, evaluations, judges, seeds."""

    name: str
    model: str
    train_templates: list[str]
    test_templates: list[str]
    evals: list[EvalSpec]
    train: dict[str, Any] = section(TrainConfig)
    align: AlignSpec | None = None
    judges: list[str] = field(default_factory=lambda: ["keyword"])
    judge: dict[str, Any] = section(JudgeConfig, exclude=("judge",))
    seeds: list[int] = field(default_factory=lambda: [0])
    checkpoints: list[int] = field(default_factory=list)
    # the evals run at each checkpoint (their labels; empty: every eval). The frontier needs one helpfulness and
    # one safety set there; the final adapter is always evaluated on every eval.
    checkpoint_evals: list[str] = field(default_factory=list, metadata={"omit_empty": True})
    # the test templates evaluated at each checkpoint (empty: every one, and an inoculation cell's leak template)
    checkpoint_tests: list[str] = field(default_factory=list, metadata={"omit_empty": True})
    baseline: bool = True
    decoding: dict[str, Any] = section(Decoding)
    generate: dict[str, Any] = section(GenerateConfig, exclude=CELL_KEYS)
    data_dir: str | None = None
    eval_seed: int = 0
    executor: str = "local"  # operational, like `ray`: `ptst run --executor` overrides it
    ray: RaySpec | None = None
    report: dict[str, Any] = field(default_factory=dict)  # operational: ptst.specs.report
    mixes: list[MixRow] = field(default_factory=list, metadata={"omit_empty": True})  # Table 6 rows

    def __post_init__(self) -> None:
        report_config.check(self.report)
        if self.executor not in EXECUTORS:
            raise PtstError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not self.name or "/" in self.name:
            raise PtstError("grid name must be a non-empty name without '/'")
        if not self.train_templates:
            raise PtstError("train_templates is empty: name at least one training template")
        if not self.test_templates:
            raise PtstError("test_templates is empty: name at least one test template")
        if not self.evals:
            raise PtstError("evals is empty: name at least one evaluation set")
        if not self.seeds:
            raise PtstError("seeds is empty")
        names = [m.name for m in self.mixes]
        if len(set(names)) != len(names):
            raise PtstError(f"mixes: two rows share a name: {names}")
        labels = [e.label for e in self.evals]
        if len(set(labels)) != len(labels):
            raise PtstError(f"two evals share a name: {labels}; give them distinct `name`s")
        for m in self.mixes:
            stray = [t for t in m.train_templates if t not in self.train_templates]
            if stray:
                raise PtstError(f"mixes {m.name}: train_templates {stray[0]!r} is not in train_templates")
        for key in ("checkpoint_evals", "checkpoint_tests"):
            if getattr(self, key) and not self.checkpoints:
                raise PtstError(f"{key} is set but checkpoints is empty: name the steps to evaluate")
        stray = [t for t in self.checkpoint_tests if t not in (*self.test_templates, *self.train_templates)]
        if stray:
            raise PtstError(f"checkpoint_tests: {stray[0]!r} is neither a test template nor (for a leak cell) a "
                            "training template of this grid")
        stray = [e for e in self.checkpoint_evals if e not in labels]
        if stray:
            raise PtstError(f"checkpoint_evals: {stray[0]!r} is not an eval of this grid (evals: {', '.join(labels)})")
        for dup, what in ((self.train_templates, "train_templates"), (self.test_templates, "test_templates")):
            empty = [i for i, t in enumerate(dup) if not isinstance(t, str) or not t.strip()]
            if empty:
                raise PtstError(f"{what}[{empty[0]}] is an empty template name")
            if len(set(dup)) != len(dup):
                raise PtstError(f"{what} lists a template twice")

    def evals_at(self, checkpoint: int | None) -> list[EvalSpec]:
        """The evals of a cell: every one for a final adapter, `checkpoint_evals` (if set) at a checkpoint."""
        if checkpoint is None or not self.checkpoint_evals:
            return list(self.evals)
        return [e for e in self.evals if e.label in self.checkpoint_evals]
