"""results.csv: one tidy row per (evaluation cell, eval set, metric), plus per-category rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ptst.report.grid import recorded_safety, role, template_order
from ptst.report.load import Cell, Stat

# The contract's columns (docs/run-layout.md), then `category` (empty on the overall row of a metric).
COLUMNS = ("experiment", "seed", "train_template", "test_template", "checkpoint", "eval", "kind", "metric",
           "k", "n", "value", "low", "high", "ptst_cell", "category")


def csv_field(x: object) -> str:
    """One results.csv field: empty for None, true/false, a float's repr, else its text."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    return repr(x) if isinstance(x, float) else str(x)


def _row(c: Cell, ev: str, kind: str, metric: str, s: Stat, category: str | None, ptst: bool) -> tuple[str, ...]:
    return tuple(csv_field(x) for x in (c.experiment, c.seed, c.train_template, c.test_template, c.checkpoint, ev, kind,
                                 metric, s.k, s.n, s.value, s.low, s.high, ptst, category))


def rows(cells: Sequence[Cell]) -> list[tuple[str, ...]]:
    order = {t: i for i, t in enumerate(template_order(
        [c.test_template for c in cells] + [c.train_template for c in cells if c.train_template]))}

    def key(c: Cell) -> tuple:
        tr = -1 if c.train_template is None else order[c.train_template]
        return (c.experiment, tr, order[c.test_template], c.seed if c.seed is not None else -1,
                c.step if c.step is not None else 1 << 62)

    recorded = recorded_safety(cells)
    out = []
    for c in sorted(cells, key=key):
        ptst = role(c.train_template, c.test_template, recorded) == "ptst"
        for ev in sorted(c.evals):
            e = c.evals[ev]
            for metric, s in e.metrics.items():
                out.append(_row(c, ev, e.kind, metric, s, None, ptst))
            for metric, per in e.by_category.items():
                out += [_row(c, ev, e.kind, metric, s, cat, ptst) for cat, s in sorted(per.items())]
    return out


def to_csv(cells: Sequence[Cell], extra: Sequence[Sequence[str]] = ()) -> str:
    """results.csv: every cell's rows, then `extra` rows in the same columns (the frontier's, ptst.report.frontier)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(rows(cells))
    w.writerows(extra)
    return buf.getvalue()
