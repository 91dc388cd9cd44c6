"""An evaluation cell's key, composed from its inputs' content (Merkle-style), and what a change of input makes
stale. The stages compute the parts (the generation file's key, each judge's key, each scorer's version); this
module alone decides how they compose, which files each part stands behind, and what a difference means.

    CellInputs             key = sha256 over {scheme, sets}
      SetInputs (a set)    label, kind, sample {limit, seed}, template {name, render_version},
                           generation (the generations file's key: model, adapter_hash, template_fingerprint,
                           decoding, data {name, split, sha256}, backend, dtype),
                           judges {judge: judge_key}, scorers {scorer file: version}

A change to `generation` or `template` makes the set's answers stale, and with them every verdict and score of
the set; a judge's key makes its verdicts and the scores computed from them stale; a scorer's version its score
file; the sample (limit, seed) only the set's scores (answers and verdicts are kept by id)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.io import stable_hash
from ptst.runs.layout import EvalDir

KEY_SCHEME = 2  # 1: a hash of the config's names (ptst <= 0.9); 2: composed from the inputs' content


@dataclass(frozen=True)
class SetInputs:
    """What one evaluation set's results in a cell are computed from."""

    label: str
    kind: str
    sample: dict[str, Any]  # limit, seed
    template: dict[str, Any]  # name, render_version
    generation: dict[str, Any]  # the generations file's key (ptst.generate.key.generation_key)
    judges: dict[str, str] = field(default_factory=dict)  # judge -> judge_key
    scorers: dict[str, str] = field(default_factory=dict)  # score file stem (`asr-keyword`, `gsm8k`) -> version

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "sample": self.sample, "template": self.template,
                "generation": self.generation, "judges": self.judges, "scorers": self.scorers}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SetInputs:
        return cls(str(d["label"]), str(d["kind"]), dict(d["sample"]), dict(d["template"]), dict(d["generation"]),
                   dict(d.get("judges") or {}), dict(d.get("scorers") or {}))

    @property
    def generation_key(self) -> str:
        """The generations file's key hash (its FILE.meta.json `key_sha256`)."""
        return stable_hash(self.generation)


@dataclass(frozen=True)
class CellInputs:
    """Everything an evaluation cell's metrics.json is computed from."""

    sets: tuple[SetInputs, ...]

    def key(self) -> str:
        return stable_hash({"scheme": KEY_SCHEME, "sets": [s.to_dict() for s in self.sets]})

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": KEY_SCHEME, "sets": [s.to_dict() for s in self.sets]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CellInputs:
        return cls(tuple(SetInputs.from_dict(s) for s in d.get("sets") or []))

    def by_label(self) -> dict[str, SetInputs]:
        return {s.label: s for s in self.sets}


NEW_SET = "new evaluation set"  # a Change's `what` for a set the finished cell did not have (nothing stale)


@dataclass(frozen=True)
class Change:
    """One input that differs between a finished cell and today, and the files it makes stale."""

    label: str  # the evaluation set
    what: str  # `template_fingerprint 3fa1… -> 77b0…`, `judge keyword settings`, `scorer gsm8k 1 -> 2`
    stale: tuple[Path, ...]  # existing files to move aside and recompute

    @property
    def why(self) -> str:
        return f"{self.label}: {self.what}"

    def describe(self, cell: EvalDir) -> str:
        """The change and the files it makes stale: `harm: data.sha256 3fa1… -> 77b0… (stale: generations/...)`."""
        files = ", ".join(str(p.relative_to(cell.path)) for p in self.stale)
        return self.why + (f" (stale: {files})" if files else "")


def _short(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return s[:12] + "…" if len(s) > 14 else s


def _fields(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`name old -> new` for each (nested) field that differs, e.g. `data.sha256 3fa1… -> 77b0…`."""
    out = []
    for k in dict.fromkeys([*old, *new]):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _fields(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k} {_short(a)} -> {_short(b)}")
    return out


def _existing(paths: list[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(p for p in paths if p.exists()))


def set_files(cell: EvalDir, label: str) -> list[Path]:
    """Every file of one set in a cell: its answers (with the sidecar), verdicts and scores."""
    gen = cell.generations(label)
    return [gen, gen.with_name(gen.name + ".meta.json"), *sorted(cell.judgements_dir.glob(f"{label}.*.jsonl")),
            *sorted(cell.scores_dir.glob(f"{label}.*.json"))]


def judge_files(cell: EvalDir, label: str, judge: str) -> list[Path]:
    """A judge's verdicts on one set and the scores computed from them (`asr-JUDGE`, `xstest-JUDGE`)."""
    return [cell.judgements(label, judge), *[cell.scores(label, f"{s}-{judge}") for s in ("asr", "xstest")]]


def changes(old: CellInputs, new: CellInputs, cell: EvalDir) -> list[Change]:
    """What differs between a finished cell's inputs (`old`) and today's, set by set, with the files made stale.
    A set that is new today has nothing stale; a set no longer evaluated is left as it is."""
    out: list[Change] = []
    was = old.by_label()
    for s in new.sets:
        o = was.get(s.label)
        if o is None:
            out.append(Change(s.label, NEW_SET, ()))
            continue
        answers = _fields(o.generation, s.generation) + _fields(o.template, s.template, "template.")
        if answers or o.kind != s.kind:
            what = "; ".join(answers) or f"kind {o.kind} -> {s.kind}"
            out.append(Change(s.label, what, _existing(set_files(cell, s.label))))
            continue
        for j in dict.fromkeys([*s.judges]):
            if o.judges.get(j) != s.judges[j]:
                what = f"judge {j} " + ("added" if j not in o.judges else "settings or version changed")
                out.append(Change(s.label, what, _existing(judge_files(cell, s.label, j))))
        for name, version in s.scorers.items():
            if o.scorers.get(name) != version:
                what = f"scorer {name} " + ("added" if name not in o.scorers else f"{o.scorers[name]} -> {version}")
                out.append(Change(s.label, what, _existing([cell.scores(s.label, name)])))
        if o.sample != s.sample:
            what = "sample " + "; ".join(_fields(o.sample, s.sample))
            out.append(Change(s.label, what, _existing(sorted(cell.scores_dir.glob(f"{s.label}.*.json")))))
    return out


def summary(found: list[Change], cell: EvalDir, most: int = 3) -> str:
    """One line for `ptst status` / `--dry-run`: the changes and the files they make stale."""
    shown = "; ".join(c.describe(cell) for c in found[:most])
    return shown + (f"; and {len(found) - most} more" if len(found) > most else "")
