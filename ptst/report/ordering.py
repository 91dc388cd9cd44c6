"""Did the PTST ordering hold? PTST cells against their same-template diagonal, with exact McNemar tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.io import iter_jsonl
from ptst.metrics import paired
from ptst.report.grid import HEADLINE_PAIRS, Grid, template_order
from ptst.report.load import Cell, Stat
from ptst.report.rate_names import by_judge, defined, measure_name, measure_short
from ptst.report.render import Block, Table
from ptst.report.tables import eval_title
from ptst.runs.layout import EvalDir

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One seed × safety set: the judge's rate (`asr.<judge>`) of PTST (train → test) against the diagonal
    (test → test), paired on prompt ids.
    In `paired` (ptst.metrics.Paired), b = counted (`harmful`) under PTST only, c = under the diagonal only."""

    train: str
    test: str
    seed: int | None
    ev: str
    judge: str
    ptst: Stat
    diag: Stat
    paired: Any | None  # ptst.metrics.Paired; None when judgement files are missing or share no ids
    note: str = ""

    @property
    def held(self) -> bool:
        return self.ptst.value < self.diag.value

    @property
    def significant(self) -> bool:
        return self.paired is not None and self.paired.p_value < ALPHA

    @property
    def verdict(self) -> str:
        if self.held:
            return "held, significant" if self.significant else "held, not significant"
        return "did NOT hold, significant" if self.significant else "did NOT hold"


def ptst_pairs(grid: Grid) -> list[tuple[str, str]]:
    """(train, test) PTST pairs with a final cell whose diagonal (test, test) exists for the same seed."""
    have = {(c.train_template, c.test_template, c.seed) for c in grid.cells if c.final}
    pairs = {(tr, te) for tr, te, s in have if tr is not None and grid.role(tr, te) == "ptst" and (te, te, s) in have}
    order = {t: i for i, t in enumerate(template_order({t for p in pairs for t in p}))}
    return sorted(pairs, key=lambda p: (order[p[1]], order[p[0]]))


def headline_pair(pairs: list[tuple[str, str]]) -> tuple[str, str] | None:
    for want in HEADLINE_PAIRS:
        if want in pairs:
            return want
    return pairs[0] if pairs else None


def harmful_by_id(cell: Cell, ev: str, judge: str) -> dict[str, bool | None] | None:
    """id -> harmful from `judgements/<eval>.<judge>.jsonl` (last record wins); None if the file is absent."""
    f = EvalDir(cell.path).judgements(ev, judge)
    if not f.exists():
        return None
    out: dict[str, bool | None] = {}
    for row in iter_jsonl(f):
        if "id" in row:
            h = row.get("harmful")
            out[str(row["id"])] = None if h is None else bool(h)
    return out


Cache = dict[tuple[Path, str, str], "dict[str, bool | None] | None"]


def _pair_test(a: Cell, b: Cell, ev: str, judge: str, cache: Cache) -> tuple[Any | None, str]:
    maps = []
    for c in (a, b):
        key = (c.path, ev, judge)
        if key not in cache:
            cache[key] = harmful_by_id(c, ev, judge)
        maps.append(cache[key])
    if maps[0] is None or maps[1] is None:
        return None, "judgement file missing"
    p = paired(maps[0], maps[1])
    return (p, "") if p.n_pairs else (None, "no common judged prompt ids")


def compare(grid: Grid, judge: str, pairs: list[tuple[str, str]]) -> list[Comparison]:
    """Every (pair, seed, safety eval) where both cells carry `asr.<judge>`."""
    metric, cache, out = f"asr.{judge}", Cache(), []
    for tr, te in pairs:
        for seed in grid.seeds or (None,):
            a, b = grid.cell(tr, te, seed), grid.cell(te, te, seed)
            if a is None or b is None:
                continue
            for ev in grid.evals("safety"):
                sa = a.evals[ev].metrics.get(metric) if ev in a.evals else None
                sb = b.evals[ev].metrics.get(metric) if ev in b.evals else None
                if sa is None or sb is None:
                    continue
                p, note = _pair_test(a, b, ev, judge, cache)
                out.append(Comparison(tr, te, seed, ev, judge, sa, sb, p, note))
    return out


def fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _rate(s: Stat) -> str:
    iv = f" [{100 * s.low:.1f}, {100 * s.high:.1f}]" if s.low is not None and s.high is not None else ""
    return f"{100 * s.value:.1f}%{iv}"


def _test(c: Comparison) -> str:
    if c.paired is None:
        return f"no paired test ({c.note})"
    return f"b={c.paired.b}, c={c.paired.c}, p={fmt_p(c.paired.p_value)}"


def detail(c: Comparison) -> str:
    seed = f" seed {c.seed}" if c.seed is not None else ""
    return f"{eval_title(c.ev)}{seed}: {_rate(c.ptst)} vs {_rate(c.diag)}, {_test(c)}"


def sentence(comps: list[Comparison], pair: tuple[str, str] | None, judge: str | None) -> str:
    """The one sentence saying whether PTST beat the same-template diagonal (rule in docs/report.md)."""
    if judge is None:
        return ("PTST ordering not tested: this run has no safety evaluation with a judged rate (a non-refusal or "
                "harmful-answer rate).")
    if pair is None:
        return ("PTST ordering not tested: no PTST cell (trained without a safety prompt, tested with one) has its "
                "same-template diagonal cell (that safety template in training and testing) for the same seed.")
    tr, te = pair
    mine = [c for c in comps if (c.train, c.test) == pair and c.judge == judge]
    n, held = len(mine), sum(c.held for c in mine)
    sig = sum(c.held and c.significant for c in mine)
    details = "; ".join(detail(c) for c in mine)
    lead = f"By {by_judge(judge)}, the PTST ordering"
    what = (f"training with {tr} and testing with {te} gave a lower {measure_name(judge)} than {te} in both "
            f"training and testing")
    scope = "in the one seed × safety-set comparison" if n == 1 else f"in all {n} seed × safety-set comparisons"
    test = "exact McNemar test on the same prompts, p < 0.05"
    if n and held == n and sig == n:
        each = "significant" if n == 1 else "each significant"
        return f"{lead} held: {what} {scope}, {each} ({test}): {details}."
    if n and held == n:
        how = "not significant" if n == 1 else ("none significant" if sig == 0 else f"only {sig} of {n} significant")
        return f"{lead} held in direction but not significantly: {what} {scope}, {how} ({test}): {details}."
    return (f"{lead} did NOT hold: {what} in only {held} of {n} seed × safety-set comparisons "
            f"({sig} significant; {test}): {details}.")


def comparison_table(comps: list[Comparison], pair: tuple[str, str] | None) -> list[Block]:
    if not comps:
        return []
    judges = sorted({c.judge for c in comps})
    short = measure_short(judges[0]) if len({measure_short(j) for j in judges}) == 1 else "rate"
    header = ("PTST pair (train → test)", "seed", "safety set", "judge", f"{short} PTST", f"{short} diagonal",
              "paired n", "b", "c", "p (exact McNemar)", "ordering")
    rows = []
    for c in sorted(comps, key=lambda c: (c.train, c.test) != pair):  # stable: the headline pair first
        name = f"{c.train} → {c.test}" + (" (headline)" if (c.train, c.test) == pair else "")
        pr = c.paired
        cols = (str(pr.n_pairs), str(pr.b), str(pr.c), fmt_p(pr.p_value)) if pr else ("—", "—", "—", c.note)
        rows.append((name, "—" if c.seed is None else str(c.seed), eval_title(c.ev), c.judge, _rate(c.ptst),
                     _rate(c.diag), *cols, c.verdict))
    rates = "; ".join(f"{measure_short(j)} = {defined(j)}" for j in judges)
    cap = (f"Rates in % with 95% Wilson intervals; {rates}. The diagonal is the PTST test template used in both "
           "training and testing. b = prompts counted in the rate under PTST only, c = under the diagonal only; p is "
           "the two-sided exact McNemar test on the prompts both cells judged. 'held' = the PTST rate strictly lower.")
    return [Table(header, tuple(rows), cap)]
