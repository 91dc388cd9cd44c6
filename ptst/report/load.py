"""Read a run directory's evaluation cells (`*/eval/*/metrics.json`, through the schema `ptst eval` writes them
with, ptst.runs.results) into the report's records: Cell, EvalResult, Stat."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import read_json
from ptst.metrics import MeanScore, Rate
from ptst.runs.layout import EvalDir, RunDir
from ptst.runs.results import Metric, MetricsDoc, SetResult, Unknown
from ptst.runs.state import WHOLE, Currency

BASE = "base"


@dataclass(frozen=True)
class Stat:
    """One number from metrics.json: a rate `{k, n, value, low, high}` or a bare value (k/n/low/high None)."""

    value: float
    k: int | None = None
    n: int | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class EvalResult:
    """One eval set inside a cell: its kind, size, data hash, metrics and per-category breakdowns."""

    name: str
    kind: str
    n: int | None
    data_sha256: str | None
    metrics: dict[str, Stat]
    by_category: dict[str, dict[str, Stat]] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # metrics in a shape the report does not know (listed as warnings)
    empty: tuple[str, ...] = ()  # rates over no scored items (listed as warnings)


@dataclass(frozen=True)
class Cell:
    """One evaluation cell: a (training cell, test template, checkpoint) and its numbers."""

    path: Path
    experiment: str
    train_cell: str
    train_template: str | None  # None = no fine-tuning (the `base` row)
    test_template: str
    seed: int | None
    checkpoint: int | str | None
    step: int | None
    key: str | None
    ptst_version: str | None
    fingerprints: dict[str, str | None]
    evals: dict[str, EvalResult]
    safety: dict[str, bool | None] = field(default_factory=dict)  # recorded {"train", "test"} safety-prompt flags
    model: str | None = None
    judges: dict[str, str] = field(default_factory=dict)  # judge -> version, as metrics.json records them
    judge_keys: dict[str, str] = field(default_factory=dict)  # judge -> judge key ({} in files from before them)

    @property
    def baseline(self) -> bool:
        return self.train_template is None

    @property
    def final(self) -> bool:
        """The fully trained adapter (or the base model), not an intermediate checkpoint."""
        return self.checkpoint is None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int) and not isinstance(x, bool) else None


def is_empty_rate(d: Any) -> bool:
    """A rate over no scored items (`n` = 0, `value` null): nothing to show, but not a malformed metric."""
    return isinstance(d, dict) and d.get("n") == 0 and d.get("value", d.get("mean")) is None


def parse_stat(d: Any) -> Stat | None:
    """A rate `{k, n, value, low, high}`, a mean score `{mean, n, low, high}`, a number, or a wrapper holding
    exactly one of those (e.g. `ptst.metrics.asr`'s `{"asr": {...}, "n_judged": ...}`); None otherwise."""
    if _num(d) is not None:
        return Stat(float(d))
    if not isinstance(d, dict):
        return None
    value = _num(d.get("value", d.get("mean")))
    if value is None:
        if "value" in d or "mean" in d:
            return None
        for key in ("value", "mean"):  # a nested rate first, then a nested mean score
            inner = [v for v in d.values() if isinstance(v, dict) and key in v]
            if len(inner) == 1:
                return parse_stat(inner[0])
        return None
    return Stat(value, _int(d.get("k")), _int(d.get("n")), _num(d.get("low")), _num(d.get("high")))


def stat_of(m: Metric) -> Stat | None:
    """The report's view of one metric; None for a rate over no items or a shape with no number in it."""
    if isinstance(m, Rate):
        return None if m.value is None else Stat(float(m.value), m.k, m.n, _num(m.low), _num(m.high))
    if isinstance(m, MeanScore):
        return None if m.mean is None else Stat(float(m.mean), None, m.n, _num(m.low), _num(m.high))
    if isinstance(m, Unknown):
        return parse_stat(m.raw)
    return Stat(float(m))


def is_empty(m: Metric) -> bool:
    """A rate (or mean) over no scored items: nothing to show, but not a malformed metric."""
    if isinstance(m, Rate):
        return m.n == 0 and m.value is None
    if isinstance(m, MeanScore):
        return m.n == 0 and m.mean is None
    return isinstance(m, Unknown) and is_empty_rate(m.raw)


def _eval_result(name: str, s: SetResult) -> EvalResult:
    parsed = {m: stat_of(v) for m, v in s.metrics.items()}
    metrics = {m: st for m, st in parsed.items() if st is not None}
    cats = {m: {c: st for c, v in per.items() if (st := stat_of(v)) is not None}
            for m, per in (s.by_category or {}).items()}
    unread = sorted(m for m, st in parsed.items() if st is None)
    skipped = tuple(m for m in unread if not is_empty(s.metrics[m]))
    empty = tuple(m for m in unread if is_empty(s.metrics[m]))
    return EvalResult(name, s.kind, s.n, s.data_sha256, metrics, cats, skipped, empty)


def parse_step(checkpoint: Any) -> int | None:
    """`40`, `"step-40"` or `"40"` -> 40; None (the final adapter) stays None."""
    if checkpoint is None:
        return None
    if _int(checkpoint) is not None:
        return int(checkpoint)
    m = re.search(r"(\d+)$", str(checkpoint))
    return int(m.group(1)) if m else None


def parse_cell(path: Path, doc: Any) -> Cell:
    """One metrics.json document (`path`: the file), read through the shared schema (ptst.runs.results)."""
    m = MetricsDoc.from_dict(doc, path)
    c = m.cell
    train_cell = str(c.get("train_cell") or path.parent.parent.parent.name)
    train = c.get("train_template")
    if train in ("", BASE, "none") or train_cell == BASE:
        train = None
    flags = {k: c.get(f"{k}_safety_prompt") for k in ("train", "test")}
    return Cell(
        path=path.parent, experiment=str(c.get("experiment") or path.parent.parent.parent.parent.name),
        train_cell=train_cell, train_template=train, test_template=m.test_template, seed=_int(c.get("seed")),
        checkpoint=c.get("checkpoint"), step=parse_step(c.get("checkpoint")), key=m.key,
        ptst_version=m.ptst_version,
        fingerprints={"train": m.template_fingerprints.train, "test": m.template_fingerprints.test},
        evals={n: _eval_result(n, e) for n, e in m.evals.items()},
        safety={k: v for k, v in flags.items() if isinstance(v, bool)}, model=m.model, judges=m.judges,
        judge_keys=m.judge_keys or {},
    )


def load_cells(run_dir: str | Path) -> list[Cell]:
    """Every finished evaluation cell of a run; a run without any is one clear error."""
    run = Path(run_dir)
    if not run.is_dir():
        raise PtstError(f"run directory not found: {run}")
    files = [e.metrics for e in RunDir(run).eval_dirs() if e.metrics.is_file()]
    if not files:
        raise PtstError(f"{run}: no evaluation results (no */eval/*/metrics.json); run `ptst run` first")
    return [parse_cell(f, read_json(f)) for f in files]


def read_eval_key(cell: Cell) -> dict[str, Any]:
    """The cell's eval.json (its evaluation key), or {} when absent or unreadable."""
    f = EvalDir(cell.path).manifest
    try:
        doc = read_json(f) if f.exists() else {}
    except PtstError:
        return {}
    return doc if isinstance(doc, dict) else {}


def keep_current(cells: list[Cell], run_dir: Path, cur: Currency) -> tuple[list[Cell], list[str]]:
    """The cells (and sets of cells) whose inputs are today's, and the report's warnings about the rest: a stale
    number is left out and what changed is named; a cell that could not be checked is shown and said so."""
    kept: list[Cell] = []
    left: dict[str, list[str]] = {}  # why -> the cells (or `cell set`) left out for it
    for c in cells:
        rel = str(c.path.relative_to(run_dir))
        stale = cur.stale.get(rel, {})
        evals = {} if WHOLE in stale else {n: e for n, e in c.evals.items() if n not in stale}
        for label, why in stale.items():
            left.setdefault(why, []).append(rel if label == WHOLE else f"{rel} {label}")
        if evals:
            kept.append(c if len(evals) == len(c.evals) else replace(c, evals=evals))
    if not kept:
        first = next(iter(left), "")
        raise PtstError(f"{run_dir}: every result is stale (first: {first}); `ptst run {run_dir}/grid.yaml --out "
                        f"{run_dir}` recomputes them, `ptst status {run_dir}` lists what changed")
    warn = [f"left out as stale, {_listed(where)}: {why}" for why, where in left.items()]
    if left:
        warn.append(f"what changed is listed by `ptst status {run_dir}`; `ptst run {run_dir}/grid.yaml --out "
                    f"{run_dir}` recomputes exactly what it makes stale")
    unread: dict[str, list[str]] = {}
    for rel, why in cur.unchecked.items():
        unread.setdefault(why, []).append(rel)
    warn += [f"not checked against today's inputs, {_listed(where)}: {why}" for why, where in unread.items()]
    if cur.note:
        warn.append(f"not checked against today's inputs: {cur.note}")
    return kept, warn


def _listed(where: list[str], most: int = 4) -> str:
    """`2 cells (a, b)` / `9 cells (a, b, c, d and 5 more)`."""
    shown = ", ".join(where[:most]) + (f" and {len(where) - most} more" if len(where) > most else "")
    return f"{len(where)} cell{'s' if len(where) != 1 else ''} ({shown})"
