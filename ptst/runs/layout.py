"""A run directory's layout as typed paths: every file a stage reads or writes is named here, once.

    RUN/                      RunDir       grid.yaml, plan.json, report.md, .ptst-incoming/
      align/                  AlignDir     align.json (done), model/, train/ (a TrainDir), data/part-N.jsonl,
                                           eval-shipped/TEMPLATE/, eval-aligned/TEMPLATE/ (EvalDirs)
      CELL/                   TrainDir     config.yaml, spec.json (done), train_log.jsonl, adapter/ | model/,
                                           checkpoints/step-N/adapter/
        eval/EVAL/            EvalDir      eval.json, generations/SET.jsonl (+ .meta.json),
                                           judgements/SET.JUDGE.jsonl, scores/SET.SCORER.json, metrics.json (done),
                                           superseded/STAMP/ (stale files moved aside, with why.txt)

Each stage also runs on a directory of its own (`ptst train --out`, `ptst eval --out`, `ptst align --out`): the
same objects name those paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ptst.io import staging_path


@dataclass(frozen=True)
class EvalDir:
    """One evaluation cell: a model (+ adapter) under one test template, on several evaluation sets."""

    path: Path

    @property
    def metrics(self) -> Path:
        """The done marker: written last, it carries the cell's key."""
        return self.path / "metrics.json"

    @property
    def manifest(self) -> Path:
        """The key and ptst version, written when the cell starts."""
        return self.path / "eval.json"

    @property
    def generations_dir(self) -> Path:
        return self.path / "generations"

    @property
    def judgements_dir(self) -> Path:
        return self.path / "judgements"

    @property
    def scores_dir(self) -> Path:
        return self.path / "scores"

    def generations(self, label: str) -> Path:
        return self.generations_dir / f"{label}.jsonl"

    def judgements(self, label: str, judge: str) -> Path:
        return self.judgements_dir / f"{label}.{judge}.jsonl"

    def scores(self, label: str, scorer: str) -> Path:
        return self.scores_dir / f"{label}.{scorer}.json"

    @property
    def superseded_dir(self) -> Path:
        """Where files made stale by a changed input are moved (`superseded/STAMP/...`, with why.txt)."""
        return self.path / "superseded"


@dataclass(frozen=True)
class TrainDir:
    """One training run; a grid's training cell also holds its evaluation cells under `eval/`."""

    path: Path

    @property
    def spec(self) -> Path:
        """The done marker: written last, it records what was trained (data sha256s, fingerprints, weights)."""
        return self.path / "spec.json"

    @property
    def config(self) -> Path:
        """The resolved TrainConfig, written when the run starts: its identity is the run's key."""
        return self.path / "config.yaml"

    @property
    def log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def model(self) -> Path:
        """The full fine-tune's weights (`full: true`), instead of `adapter/`."""
        return self.path / "model"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints_dir / f"step-{step}"

    def adapter_at(self, step: int | None) -> Path:
        """The final adapter (step None) or the one saved at `step`."""
        return self.adapter if step is None else self.checkpoint(step) / "adapter"

    @property
    def evals_dir(self) -> Path:
        return self.path / "eval"

    def eval(self, eval_id: str) -> EvalDir:
        return EvalDir(self.evals_dir / eval_id)

    def staging(self, final: Path) -> Path:
        """Where `adapter/` or `model/` is written before it is renamed into place (ptst.io.atomic_dir's)."""
        return staging_path(final)

    @property
    def own_files(self) -> tuple[Path, ...]:
        """Everything the training stage writes here (and nothing of the evaluation cells under eval/)."""
        return (self.spec, self.config, self.log, self.adapter, self.model, self.checkpoints_dir,
                self.staging(self.adapter), self.staging(self.model))


MEASURED = ("shipped", "aligned")  # the alignment measures the model before and after


@dataclass(frozen=True)
class AlignDir:
    """The alignment stage: safety-tune the base model, merge it, measure refusal before and after."""

    path: Path

    @property
    def manifest(self) -> Path:
        """The done marker: written last, with the key and what was measured."""
        return self.path / "align.json"

    @property
    def model(self) -> Path:
        """The aligned model every grid cell fine-tunes."""
        return self.path / "model"

    @property
    def train(self) -> TrainDir:
        return TrainDir(self.path / "train")

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    def part(self, i: int) -> Path:
        """The i-th template's share of the alignment data, as JSONL."""
        return self.data_dir / f"part-{i}.jsonl"

    def measure(self, which: str, template: str) -> EvalDir:
        """The refusal measurement of the `which` ("shipped" | "aligned") model under `template`."""
        assert which in MEASURED, which
        return EvalDir(self.path / f"eval-{which}" / template.replace(":", "-"))


@dataclass(frozen=True)
class RunDir:
    """A grid's run directory (`ptst run CONFIG --out RUN`)."""

    path: Path

    @property
    def grid_yaml(self) -> Path:
        """The resolved config the run was made with: `ptst status` and `ptst report` read it."""
        return self.path / "grid.yaml"

    @property
    def plan(self) -> Path:
        return self.path / "plan.json"

    @property
    def report_md(self) -> Path:
        return self.path / "report.md"

    @property
    def incoming(self) -> Path:
        """Where a Ray driver unpacks a finished cell before renaming it into place."""
        return self.path / ".ptst-incoming"

    @property
    def validation_dir(self) -> Path:
        """The judge validation (`<judge_key>.json`) the run's report rests on, copied from the user store."""
        return self.path / "judge-validation"

    @property
    def align(self) -> AlignDir:
        return AlignDir(self.path / "align")

    def train(self, cell: str) -> TrainDir:
        return TrainDir(self.path / cell)

    def eval(self, cell: str, eval_id: str) -> EvalDir:
        return self.train(cell).eval(eval_id)

    def train_dirs(self) -> list[TrainDir]:
        """Every directory directly below the run (training cells, `base`, and `align/`), in path order."""
        return [TrainDir(t) for t in sorted(self.path.iterdir()) if t.is_dir()] if self.path.is_dir() else []

    def eval_dirs(self) -> list[EvalDir]:
        """Every evaluation cell directory of the run (`<train-cell>/eval/<test-cell>/`), in path order."""
        return [EvalDir(e) for t in self.train_dirs() for e in sorted(t.evals_dir.glob("*")) if e.is_dir()]
