"""The alignment stage's artifact: its key (spec, base model content, fine-tuning rows kept out) and the state of
its directory, refused when made with another key; its refusal measurements (evaluation cells of their own) are
checked too, so a measurement whose answers another arithmetic would make is redone, never shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ptst.errors import PtstError
from ptst.io import read_json, stable_hash
from ptst.models import model_id
from ptst.runs.layout import MEASURED, AlignDir
from ptst.runs.state import State, Status
from ptst.specs.align import AlignSpec
from ptst.specs.eval import EvalConfig, EvalSpec

# What the alignment is measured under: no system prompt and the Llama-2 safety prompt.
MEASURE_TEMPLATES = ("chat:vanilla", "chat:llama")
MEASURE_TOKENS = 32  # new tokens per measured answer: a refusal shows in its first sentence
# Refusal judges for the measurements: keyword first (the fields before `by_judge`, as before), then XSTest's own
# string match, which agrees best with XSTest's human labels (kappa 0.77 vs 0.67 on 2,250 answers; docs/judging.md)
MEASURE_JUDGES = ("keyword", "xstest-strmatch")


def measure_config(spec: AlignSpec, model: str, template: str, data_dir: str | None,
                   generate: dict[str, Any] | None) -> EvalConfig:
    """The evaluation that measures `model`'s refusal under `template`: held-out harmful prompts and XSTest's safe
    ones. `generate`: GenerateConfig fields (backend, batch size, dtype), as the grid's `generate:` section."""
    evals = [EvalSpec(spec.heldout, kind="safety", limit=spec.heldout_limit, name="heldout",
                      max_new_tokens=MEASURE_TOKENS),
             EvalSpec(spec.overrefusal, kind="over-refusal", limit=spec.overrefusal_limit, name="xstest",
                      max_new_tokens=MEASURE_TOKENS)]
    return EvalConfig(model=model, template=template, evals=evals, data_dir=data_dir,
                      decoding={"max_new_tokens": 64}, generate=dict(generate or {}), judges=list(MEASURE_JUDGES))


def align_key(spec: AlignSpec, model: str, exclude: set[str] | None = None) -> str:
    """What identifies an alignment: its spec, the base model and the fine-tuning rows kept out of its data."""
    return stable_hash({"spec": vars(spec), "model": model_id(model), "exclude": sorted(exclude or ())})


@dataclass(frozen=True)
class AlignArtifact:
    """An alignment directory for one AlignSpec, base model and set of fine-tuning rows kept out of its data.
    align.json, written last, carries the key; a directory made with another key is refused."""

    dir: AlignDir
    spec: AlignSpec
    model: str
    exclude: frozenset[str] = frozenset()
    data_dir: str | None = None  # where the measurements' data are read, and how their answers are generated
    generate: dict[str, Any] = field(default_factory=dict)
    on_different: ClassVar[str] = "refused: use another run directory"

    @property
    def path(self) -> Path:
        return self.dir.path

    def key(self) -> str:
        return align_key(self.spec, self.model, set(self.exclude))

    def state(self) -> Status:
        d = self.dir
        if d.manifest.exists():
            doc = read_json(d.manifest)
            if doc.get("key") != self.key():
                return Status(State.DIFFERENT, "made with a different align: section, base model or fine-tuning data")
            changed = self.data_change(doc.get("data") or {})
            if changed:
                return Status(State.DIFFERENT, f"its training data changed since ({changed})")
            if not (d.model / "config.json").exists():
                return Status(State.PARTIAL, "no model/")
            stale = self.stale_measurements()
            return Status(State.PARTIAL, f"refusal measured {stale}: to measure again") if stale else Status(State.DONE)
        started = [p.name for p in (d.data_dir, d.train.path, d.model) if p.exists()]
        return Status(State.PARTIAL, ", ".join(started) + " written") if started else Status(State.NEW)

    def data_change(self, recorded: dict[str, Any]) -> str:
        """'' when the refusals and benign answers it was trained from are the files align.json recorded
        (`recorded`: its `data`; by sha256; a set that cannot be read here is not checked), else which one changed."""
        from ptst.data import load_dataset  # lazy: data loading is not needed for the key

        for role, name, split in (("safety", self.spec.safety, None), ("benign", self.spec.benign,
                                                                       self.spec.benign_split)):
            old = (recorded.get(role) or {}).get("sha256")
            if not old:
                continue
            try:
                now = load_dataset(name, split, data_dir=self.data_dir).sha256
            except PtstError:
                continue
            if now != old:
                return f"{role} {name}: sha256 {old[:12]}... in align.json, {now[:12]}... now"
        return ""

    def stale_measurements(self) -> str:
        """The first refusal measurement whose answers or scores today's inputs would not make (another arithmetic,
        judge or data), as 'aligned, chat:llama (harm: numerics null -> 1 ...)'; '' when all are current or cannot
        be checked here (their data not local: the done marker decides, as for the key)."""
        from ptst.evaluate.key import EvalArtifact  # lazy: the evaluation stage's key, not needed for the key

        for which, model in zip(MEASURED, (self.model, str(self.dir.model)), strict=True):
            for template in MEASURE_TEMPLATES:
                try:
                    status = EvalArtifact(self.dir.measure(which, template),
                                          measure_config(self.spec, model, template, self.data_dir,
                                                         self.generate)).state()
                except PtstError:
                    return ""
                if not status.done:
                    return f"{which}, {template} ({status.detail or status.state.value})"
        return ""

    def checked_state(self) -> Status:
        """state(), refusing an alignment made with another key (`ptst align` and `ptst run` alike)."""
        status = self.state()
        if status.state is State.DIFFERENT:
            raise PtstError(f"{self.path} holds an alignment made with a different config ({status.detail}); use "
                            "another directory (ptst run: another --out)")
        return status
