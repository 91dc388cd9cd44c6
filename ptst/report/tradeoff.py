"""The paper's trade-off, stated with paired tests: fine-tuning raises helpfulness in every fine-tuned cell, the
same-template diagonal loses safety, and PTST keeps it (each cell against the unfine-tuned model, same test
template, same prompts; with several seeds, each cell's seeds combined)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.io import read_json
from ptst.metrics import Paired, paired, paired_combined, paired_mean, paired_mean_combined
from ptst.report.grid import Grid
from ptst.report.load import Cell
from ptst.report.ordering import ALPHA, fmt_p, harmful_by_id, seeds_phrase, split_clause
from ptst.report.rate_names import by_judge, defined
from ptst.report.render import Block, Para, Table
from ptst.report.tables import eval_title, metric_title
from ptst.runs.layout import EvalDir

CLAIMS = ("helpfulness", "diagonal", "ptst")


@dataclass(frozen=True)
class Delta:
    """One fine-tuned cell against the unfine-tuned model under the same test template, on one eval and metric.
    `diff` = tuned - base over the prompts both scored; `low`/`high` its 95% interval (helpfulness: paired
    normal interval; safety: none, the exact McNemar test speaks); `p` two-sided."""

    claim: str  # "helpfulness", "diagonal" (same template in training and testing) or "ptst"
    train: str
    test: str
    seed: int | None
    ev: str
    metric: str
    n: int
    tuned: float
    base: float
    p: float | None
    low: float | None = None
    high: float | None = None
    test_name: str = ""
    raw: Any = field(default=None, compare=False, repr=False)  # the seed's Paired / PairedMean, for combining seeds
    seeds: tuple[int, ...] = ()  # a combined row: the seeds whose tests it pools (`seed` is then None)
    combined: Any = field(default=None, compare=False, repr=False)  # ptst.metrics.PairedCombined
    parts: tuple[Delta, ...] = field(default=(), compare=False, repr=False)  # a combined row's per-seed rows

    @property
    def diff(self) -> float:
        return self.tuned - self.base

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    @property
    def disagree(self) -> bool:
        """A combined row whose seeds disagree (ptst.stats.homogeneity or Cochran's Q, p < ALPHA)."""
        return self.combined is not None and (self.combined.heterogeneity_p or 1.0) < ALPHA

    @property
    def holds(self) -> bool:
        """helpfulness and diagonal: a significant rise; ptst: no significant rise of the safety rate."""
        if self.claim == "ptst":
            return not (self.diff > 0 and self.significant)
        return self.diff > 0 and self.significant


def item_scores(cell: Cell, ev: str, metric: str) -> dict[str, float] | None:
    """Per-prompt scores of a helpfulness metric from the cell's `scores/<eval>.<scorer>.json` (`items`);
    `accuracy.strict` is stored under `strict`. None for files written before per-prompt scores existed."""
    key = metric.split(".", 1)[1] if metric.startswith("accuracy.") else metric
    for f in sorted(EvalDir(cell.path).scores_dir.glob(f"{ev}.*.json")):
        items = read_json(f).get("items", {})
        if key in items:
            return {str(k): float(v) for k, v in items[key].items()}
    return None


Reads = dict[tuple[Path, str, str], Any]  # (cell path, eval, metric or judge) -> what was read, once per file


def _read(reads: Reads, cell: Cell, ev: str, what: str, fn: Any) -> Any:
    key = (Path(cell.path), ev, what)
    if key not in reads:
        reads[key] = fn(cell, ev, what)
    return reads[key]


def _helpfulness(grid: Grid, cell: Cell, base: Cell, reads: Reads) -> list[Delta]:
    out = []
    for ev in grid.evals("helpfulness"):
        names = grid.metric_names.get(ev) or ()
        if not names or ev not in cell.evals or ev not in base.evals:
            continue
        a, b = (_read(reads, c, ev, names[0], item_scores) for c in (cell, base))
        if a is None or b is None:
            continue
        pm = paired_mean(a, b)
        if not pm.n_pairs or pm.mean_a is None or pm.mean_b is None:
            continue
        raw: Any = pm
        p, test = pm.p_value, "paired z"
        if all(v in (0.0, 1.0) for v in (*a.values(), *b.values())):  # accuracy: right/wrong per prompt
            raw = paired({i: v == 1.0 for i, v in a.items()}, {i: v == 1.0 for i, v in b.items()})
            p, test = raw.p_value, "exact McNemar"
        out.append(Delta("helpfulness", str(cell.train_template), cell.test_template, cell.seed, ev, names[0],
                         pm.n_pairs, pm.mean_a, pm.mean_b, p, pm.diff.low, pm.diff.high, test, raw))
    return out


def _safety(grid: Grid, claim: str, cell: Cell, base: Cell, judge: str, reads: Reads) -> list[Delta]:
    out = []
    for ev in grid.evals("safety"):
        a, b = (_read(reads, c, ev, judge, harmful_by_id) for c in (cell, base))
        if a is None or b is None:
            continue
        pr = paired(a, b)
        if pr.n_pairs and pr.rate_a.value is not None and pr.rate_b.value is not None:
            out.append(Delta(claim, str(cell.train_template), cell.test_template, cell.seed, ev, f"asr.{judge}",
                             pr.n_pairs, pr.rate_a.value, pr.rate_b.value, pr.p_value, test_name="exact McNemar",
                             raw=pr))
    return out


def deltas(grid: Grid, judge: str | None) -> list[Delta]:
    """Every final fine-tuned cell against the no-fine-tuning cell of its test template."""
    out: list[Delta] = []
    reads: Reads = {}  # the no-fine-tuning cell's files are compared with every fine-tuned cell: read them once
    for cell in sorted((c for c in grid.cells if c.final and not c.baseline),
                       key=lambda c: (c.test_template, str(c.train_template), c.seed or 0)):
        base = next((c for c in grid.cells if c.baseline and c.final and c.test_template == cell.test_template), None)
        if base is None:
            continue
        out += _helpfulness(grid, cell, base, reads)
        r = grid.role(cell.train_template, cell.test_template)
        if judge and r in ("diagonal", "ptst"):
            out += _safety(grid, r, cell, base, judge, reads)
    groups: dict[tuple[str, str, str, str, str], list[Delta]] = {}
    for d in out:  # a comparison's seeds next to each other, then its combined row
        groups.setdefault(_key(d), []).append(d)
    return [d for g in groups.values() for d in (*g, *combine(g))]


def _key(d: Delta) -> tuple[str, str, str, str, str]:
    return d.claim, d.train, d.test, d.ev, d.metric


def combine(same: list[Delta]) -> list[Delta]:
    """One comparison's rows (claim × cell × eval × metric) in several seeds -> [its combined row]: the seeds' paired
    tests pooled (ptst.metrics.paired_combined for right/wrong outcomes, paired_mean_combined for graded scores);
    [] with fewer than two seeds."""
    parts = [d for d in same if d.seed is not None and d.raw is not None]
    if len(parts) < 2:
        return []
    binary = all(isinstance(d.raw, Paired) for d in parts)
    cb = (paired_combined if binary else paired_mean_combined)({d.seed or 0: d.raw for d in parts})
    base, d0 = sum(d.base for d in parts) / len(parts), parts[0]
    return [Delta(d0.claim, d0.train, d0.test, None, d0.ev, d0.metric, cb.n_pairs, base + cb.diff, base, cb.p_value,
                  cb.low, cb.high, f"{'exact McNemar' if binary else 'paired z'}, pooled over seeds", seeds=cb.seeds,
                  combined=cb, parts=tuple(parts))]


def units(ds: list[Delta]) -> list[Delta]:
    """What the sentences rest on: the combined rows, and the per-seed rows of cells tested in one seed only."""
    pooled = {_key(d) for d in ds if d.seeds}
    return [d for d in ds if d.seeds or _key(d) not in pooled]


def _pct(x: float, metric: str) -> str:
    return f"{x:.3f}" if metric in ("rouge_l_f1", "token_f1") else f"{100 * x:.1f}%"


def _signed(x: float, metric: str) -> str:
    return ("+" if x >= 0 else "") + _pct(x, metric)


def _what(d: Delta) -> str:
    seed = f" (seed {d.seed})" if d.seed is not None else f" ({seeds_phrase(d.seeds)} combined)" if d.seeds else ""
    iv = f" [{_pct(d.low, d.metric)}, {_pct(d.high, d.metric)}]" if d.low is not None and d.high is not None else ""
    p = f"p={fmt_p(d.p)}" if d.p is not None else "no test"
    return (f"{d.train} → {d.test}{seed}, {eval_title(d.ev)}: {_pct(d.base, d.metric)} → {_pct(d.tuned, d.metric)} "
            f"({_signed(d.diff, d.metric)}{iv}, {p})")


_SAY = {  # {rate}: the judge's measure (ptst.report.rate_names.by_judge)
    "helpfulness": ("Helpfulness rose after fine-tuning", "a significant rise over the unfine-tuned model under the "
                    "same test template (per-prompt scores: paired z-test, or exact McNemar for right/wrong; "
                    "p < 0.05)"),
    "diagonal": ("Same-template fine-tuning degraded safety", "a significant rise of {rate} over the unfine-tuned "
                 "model (exact McNemar test on the same prompts, p < 0.05)"),
    "ptst": ("PTST kept safety", "no significant rise of {rate} over the unfine-tuned model under the same safety "
             "test template (exact McNemar test on the same prompts, p < 0.05)"),
}


_NOT = {"helpfulness": "Helpfulness did NOT rise after fine-tuning", "diagonal": "Same-template fine-tuning did NOT "
        "degrade safety", "ptst": "PTST did NOT keep safety"}


_SUBJECT = {"helpfulness": "Helpfulness after fine-tuning", "diagonal": "Safety after same-template fine-tuning",
            "ptst": "Safety under PTST"}


def statement(claim: str, ds: list[Delta]) -> str:
    """One plain sentence per claim: held in every comparison, or in which it did not."""
    mine = [d for d in ds if d.claim == claim]
    head, rule = _SAY[claim]
    judges = sorted({d.metric.split(".", 1)[1] for d in mine if d.metric.startswith("asr.")})
    rule = rule.format(rate=" / ".join(by_judge(j) for j in judges) or "the safety rate")
    if not mine:
        return f"{_SUBJECT[claim]}: not tested (no comparison with per-prompt data in this run)."
    mine = units(mine)
    bad = [d for d in mine if not d.holds]
    scope = "the one comparison" if len(mine) == 1 else f"all {len(mine)} comparisons"
    over = ", each cell's seeds combined (paired tests pooled over the seeds)" if any(d.seeds for d in mine) else ""
    split = "; ".join(_split(d) for d in mine if d.disagree)
    split = f"; but {split}" if split else ""
    if not bad:
        return f"{head}, in {scope}{over}; each showed {rule}{split}."
    return (f"{_NOT[claim]} in {len(bad)} of {len(mine)} comparisons{over} (rule: {rule}): "
            + "; ".join(_what(d) for d in bad) + f"{split}.")


def _split(d: Delta) -> str:
    cb = d.combined
    each = [(p.seed, p.diff, f"{_signed(p.diff, p.metric)} ({'no test' if p.p is None else 'p=' + fmt_p(p.p)})")
            for p in d.parts]
    return split_clause(f"{d.train} → {d.test}, {eval_title(d.ev)}", each, cb.heterogeneity_p, cb.heterogeneity_test)


POOLED_CAPTION = (
    " A row 'combined' pools a cell's seeds, and the sentences rest on these rows: exact McNemar on the discordant "
    "pairs summed over the seeds, or the z-test of every seed's per-prompt differences as one sample; the difference "
    "is the pooled paired difference with its normal interval (2 seeds) or the mean of the seeds' differences with "
    "its t interval over seeds (3 or more). 'seeds disagree': the seeds' discordant pairs split differently (exact "
    "homogeneity test of b/(b + c): Fisher for 2 seeds, Freeman–Halton for more) or their mean differences differ "
    "(Cochran's Q), p < 0.05.")


def blocks(grid: Grid, judge: str | None) -> list[Block]:
    ds = deltas(grid, judge)
    if not ds:
        return []
    rows: list[tuple[Any, ...]] = []
    for d in ds:
        iv = f"[{_pct(d.low, d.metric)}, {_pct(d.high, d.metric)}]" if d.low is not None and d.high is not None \
            else "—"
        seed = ", ".join(map(str, d.seeds)) + " combined" if d.seeds else "—" if d.seed is None else str(d.seed)
        rows.append((d.claim, f"{d.train} → {d.test}", seed, eval_title(d.ev),
                     metric_title(d.metric), str(d.n), _pct(d.base, d.metric), _pct(d.tuned, d.metric),
                     _pct(d.diff, d.metric), iv, d.test_name, "—" if d.p is None else fmt_p(d.p),
                     ("yes" if d.holds else "NO") + (" (seeds disagree)" if d.disagree else "")))
    safety = f" Safety: {defined(judge)}, exact McNemar." if judge else ""
    cap = ("Each fine-tuned cell against the unfine-tuned (aligned) model under the same test template, on the prompts "
           "both answered. Helpfulness: mean per-prompt score, difference with its 95% paired normal interval; paired "
           f"z-test (graded scores such as ROUGE-L) or exact McNemar (right/wrong, as accuracy).{safety} 'holds': "
           "helpfulness and diagonal = significant rise; PTST = no significant rise of the safety rate.")
    if any(d.seeds for d in ds):
        cap += POOLED_CAPTION
    header = ("claim", "cell (train → test)", "seed", "eval", "metric", "n", "no fine-tuning", "fine-tuned",
              "difference", "95% interval", "test", "p", "holds")
    return [*(Para(statement(c, ds)) for c in CLAIMS), Table(header, tuple(rows), cap)]
