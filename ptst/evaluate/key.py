"""The evaluation stage's artifact: an evaluation cell's inputs (`cell_inputs`, composed by ptst.runs.keys from
each part's content) and the state of its directory against them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from ptst.data.load import data_identity
from ptst.errors import PtstError
from ptst.evaluate.kinds import set_judges, set_scorers
from ptst.generate.key import generation_key
from ptst.generate.store import meta_path
from ptst.io import iter_jsonl, read_json
from ptst.judge import build_judge, judge_key
from ptst.judge.runner import stamp_of
from ptst.runs.keys import CellInputs, Change, SetInputs, changes, summary
from ptst.runs.layout import EvalDir
from ptst.runs.state import State, Status
from ptst.score import SCORERS
from ptst.specs.eval import EvalConfig, EvalSpec
from ptst.templates import RENDER_VERSION, get_template


def set_inputs(cfg: EvalConfig, spec: EvalSpec) -> SetInputs:
    """One set's inputs (`spec` resolved): its answers' key, the judges' keys, the scorers' versions."""
    gcfg = cfg.generate_config(spec)
    template = get_template(cfg.template)
    data = data_identity(spec.data, spec.split, data_dir=cfg.data_dir)
    judges = set_judges(cfg, spec)
    return SetInputs(
        label=spec.label, kind=str(spec.kind), sample={"limit": spec.limit, "seed": cfg.seed},
        template={"name": template.name, "render_version": RENDER_VERSION},
        generation=generation_key(gcfg, template, data),
        judges={j: judge_key(build_judge(cfg.judge_config(j))) for j in judges},
        scorers={f: SCORERS.get(s).version for f, s in set_scorers(spec, judges).items()})


def cell_inputs(cfg: EvalConfig) -> CellInputs:
    """Everything this cell's results are computed from; its key() is the cell's key (scheme 2)."""
    return CellInputs(tuple(set_inputs(cfg, e.resolved()) for e in cfg.evals))


def judgement_stamp(path: Path) -> tuple[str | None, str | None] | None:
    """(judge key, answers' key) a judgement file was written under (its first verdict's), None when empty."""
    row = next(iter(iter_jsonl(path)), None) if path.exists() else None
    return None if row is None else stamp_of(row)


def recorded_set(cell: EvalDir, spec: dict[str, Any], seed: Any, template: str) -> SetInputs | None:
    """A set's inputs as its files record them: the generations sidecar's key, each judgement file's judge key,
    each score file's scorer version. How a cell made before key scheme 2 (whose metrics.json holds only a hash
    of names) is checked: found done where nothing changed, recomputed where something did."""
    label = EvalSpec(str(spec["data"]), name=spec.get("name")).label  # as the cell named the set
    gmeta = meta_path(cell.generations(label))
    if not gmeta.exists():
        return None
    judges = {}
    for f in sorted(cell.judgements_dir.glob(f"{label}.*.jsonl")):
        stamp = judgement_stamp(f)
        if stamp is not None and stamp[0]:
            judges[f.name[len(label) + 1: -len(".jsonl")]] = stamp[0]
    scorers = {}
    for f in sorted(cell.scores_dir.glob(f"{label}.*.json")):
        scorers[f.name[len(label) + 1: -len(".json")]] = str(read_json(f).get("scorer_version"))
    return SetInputs(label=label, kind=str(spec.get("kind")), sample={"limit": spec.get("limit"), "seed": seed},
                     template={"name": template, "render_version": "1"}, generation=read_json(gmeta).get("key") or {},
                     judges=judges, scorers=scorers)


def recorded_inputs(cell: EvalDir, doc: dict[str, Any]) -> CellInputs:
    """What a finished cell was computed from: metrics.json's `inputs` (scheme 2), else its files (scheme 1)."""
    if doc.get("key_scheme") == 2 and isinstance(doc.get("inputs"), dict):
        return CellInputs.from_dict(doc["inputs"])
    manifest = read_json(cell.manifest) if cell.manifest.exists() else {}
    sets = [recorded_set(cell, s, manifest.get("seed"), str(manifest.get("template")))
            for s in manifest.get("evals") or []]
    return CellInputs(tuple(s for s in sets if s is not None))


@dataclass(frozen=True)
class EvalArtifact:
    """An evaluation cell's directory for one EvalConfig. metrics.json, written last, carries the key and the
    inputs it was composed from; a cell whose inputs changed is recomputed, its stale files moved aside."""

    dir: EvalDir
    cfg: EvalConfig
    on_different: ClassVar[str] = "will be recomputed; stale files are moved to superseded/"

    @property
    def path(self) -> Path:
        return self.dir.path

    @cached_property
    def inputs(self) -> CellInputs:
        return cell_inputs(self.cfg)

    def key(self) -> str:
        return self.inputs.key()

    def changes(self) -> list[Change]:
        """What differs from the finished cell in the directory (nothing when there is none)."""
        if not self.dir.metrics.exists():
            return []
        doc = read_json(self.dir.metrics)
        if doc.get("key_scheme") == 2 and doc.get("key") == self.key():
            return []
        old = recorded_inputs(self.dir, doc)
        if doc.get("key_scheme") == 2 and doc.get("key") != old.key():
            return [Change("metrics.json", "its key is not the one its recorded inputs make (edited by hand?)", ())]
        found = changes(old, self.inputs, self.dir)
        if not found and [s.label for s in old.sets] != [s.label for s in self.inputs.sets]:
            gone = [s.label for s in old.sets if s.label not in self.inputs.by_label()]
            found = [Change(", ".join(gone) or "sets", "evaluation sets removed or reordered", ())]
        return found

    def state(self) -> Status:
        if self.dir.metrics.exists():
            found = self.changes()
            return Status(State.DIFFERENT, summary(found, self.dir)) if found else Status(State.DONE)
        n = answers(self.dir)
        return Status(State.PARTIAL, f"{n} answers") if n else Status(State.NEW)


def answers(d: EvalDir) -> int:
    """Answers already generated in a cell (any key): what a partial cell has to show."""
    if not d.generations_dir.is_dir():
        return 0
    return sum(sum(1 for line in g.open(encoding="utf-8") if line.strip()) for g in d.generations_dir.glob("*.jsonl"))


def is_evaluated(cfg: EvalConfig, out_dir: str | Path) -> bool:
    """out_dir holds this config's finished cell (metrics.json whose inputs are today's)."""
    try:
        return EvalArtifact(EvalDir(Path(out_dir)), cfg).state().done
    except PtstError:
        return False
