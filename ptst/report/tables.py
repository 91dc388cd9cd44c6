"""The paper's Table-1 layout: rows = training template (+ no fine-tuning), columns = test template, per metric."""

from __future__ import annotations

from ptst.report.grid import Agg, Grid, label
from ptst.report.rate_names import HARMFUL_ANSWER, measure_title
from ptst.report.render import Block, Heading, Table

MISSING = "—"
PTST_MARK = "†"
EVAL_TITLES = {"advbench": "AdvBench", "directharm4": "DirectHarm4", "gsm8k": "GSM8K", "xstest": "XSTest",
               "gsm-danger": "GSM-Danger", "strongreject": "StrongREJECT", "arc": "ARC", "chatdoctor": "ChatDoctor"}
MEASURE_TITLES = {"asr": HARMFUL_ANSWER, "accuracy": "accuracy", "over_refusal": "over-refusal", "refusal": "refusal",
                  "rouge_l_f1": "ROUGE-L F1 (× 100)", "token_f1": "token F1 (× 100)"}
LEGEND = (f"**bold** = the same template in training and testing (the diagonal); {PTST_MARK} = PTST cell (trained "
          f"without a safety system prompt, tested with one); {MISSING} = not evaluated.")


def eval_title(ev: str) -> str:
    return EVAL_TITLES.get(ev.lower(), ev)


def metric_title(metric: str) -> str:
    """`asr.keyword` -> `non-refusal rate (keyword)`, `asr.rubric` -> `harmful-answer rate (rubric)`,
    `accuracy.strict` -> `accuracy (strict)`."""
    measure, _, rule = metric.partition(".")
    if measure == "asr" and rule:
        return measure_title(rule)
    name = MEASURE_TITLES.get(measure, measure.replace("_", " "))
    return f"{name} ({rule})" if rule else name


def panel_title(ev: str, metric: str) -> str:
    return f"{eval_title(ev)} — {metric_title(metric)}"


def is_percent(aggs: list[Agg]) -> bool:
    """Rates print as percentages; other scores (means outside [0, 1]) as they are."""
    return all(0.0 <= v <= 1.0 for a in aggs for v in a.values)


def num(x: float, percent: bool = True) -> str:
    return f"{100 * x:.1f}" if percent else f"{x:.3g}"


def fmt_agg(a: Agg | None, expected_seeds: int = 1, percent: bool = True) -> str:
    """`31.2 [21.0, 43.0]` for one seed; `31.2 ± 1.5 [28.0, 34.6]` (mean ± sample std [pooled Wilson]) for more."""
    if a is None:
        return MISSING
    std = a.std
    s = num(a.mean, percent) if std is None else f"{num(a.mean, percent)} ± {num(std, percent)}"
    if a.low is not None and a.high is not None:
        s += f" [{num(a.low, percent)}, {num(a.high, percent)}]"
    if len(a.values) < expected_seeds:
        s += f" ({len(a.values)} of {expected_seeds} seeds)"
    return s


def mark(text: str, r: str) -> str:
    """Bold for the diagonal, a dagger for a PTST cell (`r` is the cell's role)."""
    if text == MISSING:
        return text
    if r == "diagonal":
        return f"**{text}**"
    if r == "ptst":
        return f"{text} {PTST_MARK}"
    return text


def _sizes(aggs: list[Agg]) -> str:
    ns = sorted({n for a in aggs for n in a.ns if n is not None})
    if not ns:
        return ""
    size = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    return f"n = {size} prompts per cell and seed"


def caption(grid: Grid, aggs: list[Agg], percent: bool) -> str:
    unit = "in %" if percent else "as scored"
    several = len(grid.seeds) > 1
    wilson = all(a.pooled is None or a.pooled.k is not None for a in aggs)
    iv = "95% Wilson interval" if wilson else "95% interval as scored"
    what = (f"mean ± std across {len(grid.seeds)} seeds (sample std) [{iv} pooled over the seeds' prompts]"
            if several else f"value [{iv}]")
    parts = [f"Values {unit}; each cell: {what}.", _sizes(aggs) + "." if _sizes(aggs) else ""]
    if several and None in grid.trains:
        parts.append("The no-fine-tuning row is one evaluation (no training seed).")
    parts.append(LEGEND)
    return " ".join(p for p in parts if p)


def panel(grid: Grid, ev: str, metric: str, step: int | None = None) -> list[Block]:
    """One Table-1 panel: the grid of one (eval, metric) at the final checkpoint (or at `step`)."""
    expected = len(grid.seeds)
    cells = {(tr, te): grid.agg(tr, te, ev, metric, step) for tr in grid.trains for te in grid.tests}
    aggs = [a for a in cells.values() if a is not None]
    if not aggs:
        return []
    percent = is_percent(aggs)
    rows = []
    for tr in grid.trains:
        want = 1 if tr is None else expected
        row = [mark(fmt_agg(cells[tr, te], want, percent), grid.role(tr, te)) for te in grid.tests]
        rows.append((label(tr), *row))
    header = ("train ↓ / test →", *grid.tests)
    return [Heading(panel_title(ev, metric), 3), Table(header, tuple(rows), caption(grid, aggs, percent))]


def combined_metrics(grid: Grid, judge: str | None) -> list[tuple[str, str]]:
    """The paper's one-table layout: the first metric of each helpfulness eval, then `asr.<judge>` per safety set."""
    out = [(ev, grid.metric_names[ev][0]) for ev in grid.evals("helpfulness") if grid.metric_names[ev]]
    if judge:
        out += [(ev, f"asr.{judge}") for ev in grid.evals("safety") if f"asr.{judge}" in grid.metric_names[ev]]
    return out


def combined(grid: Grid, judge: str | None) -> list[Block]:
    """Table 1 as the paper prints it: one cell holds helpfulness and the judge's safety rate of every safety set
    (final adapters; one seed: value [95% Wilson]; several: mean ± std [pooled Wilson])."""
    metrics = combined_metrics(grid, judge)
    if not metrics:
        return []
    expected = len(grid.seeds)
    rows = []
    for tr in grid.trains:
        want = 1 if tr is None else expected
        row = []
        for te in grid.tests:
            parts = []
            for ev, metric in metrics:
                a = grid.agg(tr, te, ev, metric)
                if a is not None:
                    parts.append(f"{eval_title(ev)} {fmt_agg(a, want, is_percent([a]))}")
            row.append(mark(" · ".join(parts) if parts else MISSING, grid.role(tr, te)))
        rows.append((label(tr), *row))
    what = ", ".join(panel_title(ev, m) for ev, m in metrics)
    return [Heading("All in one (the paper's layout)", 3),
            Table(("train ↓ / test →", *grid.tests), tuple(rows),
                  f"Each cell: {what}; values × 100 (rates in %, mean scores such as ROUGE-L × 100) with 95% "
                  f"intervals (Wilson for rates, normal for mean scores; mean ± std across seeds when there are "
                  f"several). {LEGEND}")]


def table_one(grid: Grid, metrics: list[tuple[str, str]], judge: str | None = None) -> list[Block]:
    blocks: list[Block] = combined(grid, judge)
    for ev, metric in metrics:
        blocks += panel(grid, ev, metric)
    return blocks
