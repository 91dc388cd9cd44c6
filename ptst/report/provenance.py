"""Where the numbers came from (versions, model, data and template hashes, judges) and consistency warnings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.report.grid import Grid, label, safety_prompt
from ptst.report.load import Cell, read_eval_key
from ptst.report.render import Block, Table
from ptst.runs.hardware import Made, generated, trained
from ptst.runs.layout import EvalDir, RunDir

MAX_LISTED = 8
HARDWARE = ("training precision", "training hardware", "answers' dtype", "answers' hardware")
UNRECORDED = "unrecorded"
HARDWARE_NOTE = (": they may differ by rounding, or by precision where `precision: auto` resolved differently; "
                 "rerun them on one machine to compare like with like")


@dataclass(frozen=True)
class Provenance:
    versions: dict[str, set[str]]  # field -> values ("ptst version", "experiment", "model", "decoding")
    data: dict[str, set[str]]  # eval -> data sha256s
    fingerprints: dict[str, set[str]]  # template -> prompt-format sha256s
    judges: dict[str, set[str]]  # judge -> versions


def _name(x: Any) -> str | None:
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        for k in ("name", "id", "path", "model"):
            if isinstance(x.get(k), str):
                return x[k]
    return None


def _pairs(x: Any, value_keys: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """{name: v} / {name: {key: v}} / [{name, key}] / [name] -> [(name, v)]."""
    items = list(x.items()) if isinstance(x, dict) else [(None, v) for v in x] if isinstance(x, list) else []
    out: list[tuple[str, str | None]] = []
    for k, v in items:
        name = k if k is not None else _name(v) if isinstance(v, dict) else v if isinstance(v, str) else None
        val = v if isinstance(v, str) and k is not None else None
        if isinstance(v, dict):
            val = next((str(v[key]) for key in value_keys if v.get(key) is not None), None)
        if name:
            out.append((str(name), val))
    return out


def _first_judgement(f: Path) -> tuple[str, str] | None:
    try:
        with open(f, encoding="utf-8") as fh:
            row = json.loads(fh.readline() or "{}")
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(row, dict) and row.get("judge"):
        return str(row["judge"]), str(row.get("judge_version") or "?")
    return None


def _add(d: dict[str, set[str]], key: str | None, value: Any) -> None:
    if key:
        d.setdefault(key, set())
        if value is not None:
            d[key].add(str(value))


def collect(cells: Sequence[Cell]) -> Provenance:
    versions: dict[str, set[str]] = {}
    data: dict[str, set[str]] = {}
    fps: dict[str, set[str]] = {}
    judges: dict[str, set[str]] = {}
    trainings: dict[Path, Made | None] = {}
    for c in cells:
        _add(versions, "ptst version", c.ptst_version)
        _add(versions, "experiment", c.experiment)
        _add(fps, c.test_template, c.fingerprints.get("test"))
        _add(fps, c.train_template, c.fingerprints.get("train"))
        for name, ev in c.evals.items():
            _add(data, name, ev.data_sha256)
        key = read_eval_key(c)
        _add(versions, "model", _name(key.get("model")) or c.model)
        for judge, version in c.judges.items():
            _add(judges, judge, version)
        if isinstance(key.get("decoding"), dict):
            _add(versions, "decoding", json.dumps(key["decoding"], sort_keys=True))
        for name, sha in _pairs(key.get("datasets", key.get("data")), ("sha256", "data_sha256")):
            _add(data, name, sha)
        for name, ver in _pairs(key.get("judges"), ("version", "judge_version")):
            _add(judges, name, ver)
        for f in sorted(EvalDir(c.path).judgements_dir.glob("*.jsonl")):
            got = _first_judgement(f)
            if got:
                _add(judges, *got)
        if not c.baseline:  # the training cell's directory holds its spec.json: cell/eval/<test-cell>/
            if c.path.parent.parent not in trainings:  # one read per training run, not per evaluation cell
                trainings[c.path.parent.parent] = trained(c.path.parent.parent)
            t = trainings[c.path.parent.parent]
            if t is not None:
                _add(versions, "training precision", t.precision)
                _add(versions, "training hardware", t.hardware or UNRECORDED)
        for g in generated(c.path):
            _add(versions, "answers' dtype", g.precision)
            _add(versions, "answers' hardware", g.hardware or UNRECORDED)
    return Provenance(versions, data, fps, judges)


def _join(values: set[str]) -> str:
    return ", ".join(f"`{v}`" for v in sorted(values)) if values else "—"


def provenance_table(p: Provenance) -> list[Block]:
    rows = [(k, _join(v)) for k, v in p.versions.items()]
    rows += [(f"data sha256: {ev}", _join(v)) for ev, v in sorted(p.data.items())]
    rows += [(f"template fingerprint: {t}", _join(v)) for t, v in p.fingerprints.items()]
    rows += [(f"judge: {j}", "version " + _join(v)) for j, v in sorted(p.judges.items())]
    cap = ("Taken from every cell's metrics.json, eval.json, judgement files, generations' records and its training "
           "run's spec.json; more than one value is a warning. Hardware and precision are recorded beside the "
           "results, not in their keys: results made on different machines are kept, and flagged here.")
    return [Table(("item", "value"), tuple(rows), cap)]


def alignment_note(run_dir: Path, stale: str = "") -> str | None:
    """The alignment stage's own summary (align/align.json), when the run aligned its model first; `stale` (what
    changed, ptst.grid.current) puts why it is not shown in its place."""
    f = RunDir(run_dir).align.manifest
    try:
        doc = json.loads(f.read_text(encoding="utf-8")) if f.exists() else None
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or not doc.get("summary"):
        return None
    base = f" of `{doc['base_model']}`" if doc.get("base_model") else ""
    made = trained(RunDir(run_dir).align.train.path)
    how = f" Trained in {made.describe()} (align/train/spec.json)." if made is not None else ""
    said = f"its refusal figures are not shown, {stale}" if stale else doc["summary"]
    return f"Alignment stage{base} before fine-tuning (align/align.json): {said}.{how}"


def _leak_columns(grid: Grid) -> set[str]:
    """Test templates evaluated only by the training row of the same name: an inoculation template's leak cell
    (ptst.grid.plan.leak), which no other row is meant to have."""
    return {te for te in grid.tests if te in grid.trains
            and all(c.train_template == te for c in grid.cells if c.test_template == te)}


def _missing(grid: Grid) -> list[str]:
    have = {(c.train_template, c.test_template, c.seed) for c in grid.cells if c.final}
    leaks = _leak_columns(grid)
    out = [f"{label(tr)} → {te}" + (f" (seed {s})" if s is not None else "")
           for s in (grid.seeds or (None,)) for tr in grid.trains if tr is not None for te in grid.tests
           if (tr, te, s) not in have and (te not in leaks or te == tr)]
    if None in grid.trains:
        out += [f"{label(None)} → {te}" for te in grid.tests
                if te not in leaks and not any(k[0] is None and k[1] == te for k in have)]
    return out


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def warnings(grid: Grid, p: Provenance) -> list[str]:
    """Things a reader must know before trusting a comparison: mixed inputs, missing cells, unknown templates."""
    out = [f"{k} differs across cells: {_join(v)}" for k, v in p.versions.items()
           if len(v) > 1 and k != "decoding" and k not in HARDWARE]
    # files from before ptst recorded the hardware say nothing either way: only recorded values are compared
    recorded = {k: v - {UNRECORDED} for k, v in p.versions.items() if k in HARDWARE}
    mixed = [f"{k} {_join(v)}" for k, v in recorded.items() if len(v) > 1]
    if mixed:
        out.append(f"the cells were computed on different machines or in different precisions ({'; '.join(mixed)})"
                   f"{HARDWARE_NOTE}")
    if len(p.versions.get("decoding", ())) > 1:
        out.append("decoding settings differ across cells")
    out += [f"eval {ev} was run on {len(v)} different data files (sha256 {_join(v)}): its cells are not comparable"
            for ev, v in sorted(p.data.items()) if len(v) > 1]
    out += [f"template {t} has {len(v)} fingerprints across cells (another tokenizer or an edited template)"
            for t, v in p.fingerprints.items() if len(v) > 1]
    out += [f"judge {j} has several versions: {_join(v)}" for j, v in sorted(p.judges.items()) if len(v) > 1]
    names = {t for t in (*grid.tests, *grid.trains) if t is not None}
    unknown = sorted(t for t in names if safety_prompt(t, grid.safety) is None)
    if unknown:
        out.append(f"cannot tell whether {', '.join(unknown)} carry a safety prompt (template not found): cells "
                   "involving them are not marked PTST")
    missing = _missing(grid)
    if missing:
        out.append(f"{len(missing)} grid cell(s) not evaluated (shown as —): {_listed(missing)}")
    skipped = sorted({f"{ev}.{m}" for c in grid.cells for ev, e in c.evals.items() for m in e.skipped})
    if skipped:
        out.append(f"metrics in an unknown shape left out: {_listed(skipped)}")
    empty = sorted({f"{ev}.{m}" for c in grid.cells for ev, e in c.evals.items() for m in e.empty})
    if empty:
        out.append(f"metrics with no scored items (n = 0) in some cells: {_listed(empty)}")
    return out
