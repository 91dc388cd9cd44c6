"""The training stage's artifact: a run directory's state against a TrainConfig (its key: the config's identity),
and the deeper check of a finished run against today's data and rendering."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ptst.config import from_dict, read_yaml
from ptst.errors import PtstError
from ptst.io import read_json, stable_hash
from ptst.models import load_tokenizer, model_id
from ptst.runs.layout import TrainDir
from ptst.runs.state import State, Status
from ptst.specs.train import TrainConfig, identity
from ptst.train.checkpoint import checkpoints
from ptst.train.encode import load_examples, train_format


def key(cfg: TrainConfig) -> str:
    """The training key: the sha256 of the config's identity (what spec.json's `config_sha256` records)."""
    return stable_hash(identity(cfg))


@dataclass(frozen=True)
class TrainArtifact:
    """A training run directory for one TrainConfig. Its key is recorded as the config.yaml written when the run
    starts; spec.json, written last, marks it done."""

    dir: TrainDir
    cfg: TrainConfig
    on_different: ClassVar[str] = "refused: ptst never overwrites a training run silently"

    @property
    def path(self) -> Path:
        return self.dir.path

    def key(self) -> str:
        return key(self.cfg)

    def state(self) -> Status:
        d = self.dir
        if not d.config.exists():
            leftovers = [p.name for p in d.own_files if p.exists()]
            if leftovers:
                return Status(State.DIFFERENT, f"run files without config.yaml: {', '.join(leftovers)}")
            return Status(State.NEW)
        try:
            old = identity(from_dict(TrainConfig, read_yaml(d.config), str(d.config)))
        except PtstError as e:
            return Status(State.DIFFERENT, f"unreadable config.yaml ({e})")
        new = identity(self.cfg)
        if old != new and not _same_base_moved(d.path, old, new, self.cfg.model):
            return Status(State.DIFFERENT, _diff(old, new))
        if d.spec.exists():
            return Status(State.DONE)

        steps = checkpoints(d.path)
        return Status(State.PARTIAL, steps[-1][1].name if steps else "started")


def _say(msg: str) -> None:
    print(f"ptst train: {msg}", file=sys.stderr, flush=True)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = _changed(old, new)
    shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _same_base_moved(out: Path, old: dict[str, Any], new: dict[str, Any], model: str) -> bool:
    """A finished run whose config differs only in the base model's path, where the model at the new path has
    the content identity spec.json recorded (a grid's aligned model, moved with its run directory)."""
    if _changed(old, new) != ["model"] or not TrainDir(out).spec.exists():
        return False
    try:
        recorded = read_json(TrainDir(out).spec).get("base_model_id")
        return bool(recorded) and recorded.startswith("dir:") and recorded == model_id(model)
    except (PtstError, OSError, ValueError):
        return False


def data_change(out: Path, cfg: TrainConfig, tokenizers: dict[str, Any] | None = None) -> str:
    """"" when the finished run in `out` would be trained on the same text today, else what changed: a data set's
    sha256 (a `jsonl:PATH` edited in place), its rows (a registered split redefined, as ChatDoctor's when it got a
    test split; runs from before spec.json recorded `rows_fingerprint` are not checked for this), or the rendered
    training format (ptst's rendering of the template on this model changed). A set that cannot be loaded any
    more is not checked."""
    spec = read_json(TrainDir(out).spec)
    recorded = [spec.get("data") or {}] + list(spec.get("mix") or [])
    sets = [(cfg.data, cfg.split, cfg.limit)] + [(m.data, m.split, m.n) for m in cfg.mix]
    for (data, split, limit), old in zip(sets, recorded, strict=False):
        if not old.get("sha256"):
            continue
        try:
            ds = load_examples(data, split, cfg.data_dir, limit, cfg.seed)
        except PtstError as e:
            _say(f"note: cannot recheck {data} against spec.json ({e})")
            continue
        if ds.sha256 != old["sha256"]:
            return f"{data}: sha256 {old['sha256'][:12]}... in spec.json, {ds.sha256[:12]}... now"
        if old.get("rows_fingerprint") and ds.fingerprint != old["rows_fingerprint"]:
            return (f"{data}: the rows of split {ds.split!r} changed (row fingerprint "
                    f"{old['rows_fingerprint'][:12]}... in spec.json, {ds.fingerprint[:12]}... now)")
    return format_change(spec, cfg, tokenizers)


def format_change(spec: dict[str, Any], cfg: TrainConfig, tokenizers: dict[str, Any] | None = None) -> str:
    """"" when every template of the run renders its training text as spec.json recorded, else which one differs."""
    main = spec.get("template") or {}
    recorded = [(main.get("name"), main.get("train_format_sha256"))]
    recorded += [(m.get("template"), m.get("train_format_sha256")) for m in spec.get("mix") or []]
    parts = [(t, sha) for t, sha in recorded if t and sha]
    if not parts:
        return ""
    tok = tokenizers.get(cfg.model) if tokenizers is not None else None
    if tok is None:
        tok = load_tokenizer(cfg.model)
        if tokenizers is not None:  # the caller's cache: every cell of a grid checks against the same tokenizer
            tokenizers[cfg.model] = tok
    for template, sha in parts:
        now = train_format(template, tok)[1]
        if now != sha:
            return (f"the training text under {template} changed: ptst now renders it differently for this model "
                    f"(format sha256 {sha[:12]}... in spec.json, {now[:12]}... now)")
    return ""
