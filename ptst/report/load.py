"""Read a run directory's evaluation cells (`*/eval/*/metrics.json`) into typed records."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import read_json

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


def _parse_eval(name: str, d: Any, where: str) -> EvalResult:
    if not isinstance(d, dict):
        raise PtstError(f"{where}: evals.{name} must be a mapping")
    parsed = {m: parse_stat(v) for m, v in (d.get("metrics") or {}).items()}
    metrics = {m: s for m, s in parsed.items() if s is not None}
    cats: dict[str, dict[str, Stat]] = {}
    for m, per in (d.get("by_category") or {}).items():
        got = {c: parse_stat(v) for c, v in (per or {}).items()} if isinstance(per, dict) else {}
        cats[m] = {c: s for c, s in got.items() if s is not None}
    raw = d.get("metrics") or {}
    skipped = tuple(sorted(m for m, s in parsed.items() if s is None and not is_empty_rate(raw[m])))
    empty = tuple(sorted(m for m, s in parsed.items() if s is None and is_empty_rate(raw[m])))
    return EvalResult(name, str(d.get("kind") or "safety"), _int(d.get("n")), d.get("data_sha256"), metrics, cats,
                      skipped, empty)


def parse_step(checkpoint: Any) -> int | None:
    """`40`, `"step-40"` or `"40"` -> 40; None (the final adapter) stays None."""
    if checkpoint is None:
        return None
    if _int(checkpoint) is not None:
        return int(checkpoint)
    m = re.search(r"(\d+)$", str(checkpoint))
    return int(m.group(1)) if m else None


def parse_cell(path: Path, doc: Any) -> Cell:
    where = str(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("cell"), dict):
        raise PtstError(f"{where}: not a ptst metrics.json (no 'cell' mapping)")
    c = doc["cell"]
    test = c.get("test_template")
    if not test:
        raise PtstError(f"{where}: cell.test_template is missing")
    train_cell = str(c.get("train_cell") or path.parent.parent.parent.name)
    train = c.get("train_template")
    if train in ("", BASE, "none") or train_cell == BASE:
        train = None
    evals = {n: _parse_eval(n, e, where) for n, e in (doc.get("evals") or {}).items()}
    fps = doc.get("template_fingerprints") or {}
    flags = {k: c.get(f"{k}_safety_prompt") for k in ("train", "test")}
    judges: dict[Any, Any] = doc["judges"] if isinstance(doc.get("judges"), dict) else {}
    return Cell(
        path=path.parent, experiment=str(c.get("experiment") or path.parent.parent.parent.parent.name),
        train_cell=train_cell, train_template=train, test_template=str(test), seed=_int(c.get("seed")),
        checkpoint=c.get("checkpoint"), step=parse_step(c.get("checkpoint")), key=doc.get("key"),
        ptst_version=doc.get("ptst_version"), fingerprints={"train": fps.get("train"), "test": fps.get("test")},
        evals=evals, safety={k: v for k, v in flags.items() if isinstance(v, bool)},
        model=doc.get("model") if isinstance(doc.get("model"), str) else None,
        judges={str(k): str(v) for k, v in judges.items()},
    )


def load_cells(run_dir: str | Path) -> list[Cell]:
    """Every finished evaluation cell of a run; a run without any is one clear error."""
    run = Path(run_dir)
    if not run.is_dir():
        raise PtstError(f"run directory not found: {run}")
    files = sorted(run.glob("*/eval/*/metrics.json"))
    if not files:
        raise PtstError(f"{run}: no evaluation results (no */eval/*/metrics.json); run `ptst run` first")
    return [parse_cell(f, read_json(f)) for f in files]


def read_eval_key(cell: Cell) -> dict[str, Any]:
    """The cell's eval.json (its evaluation key), or {} when absent or unreadable."""
    f = cell.path / "eval.json"
    try:
        doc = read_json(f) if f.exists() else {}
    except PtstError:
        return {}
    return doc if isinstance(doc, dict) else {}
