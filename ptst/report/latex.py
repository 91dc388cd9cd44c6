"""Table 1 as a paper-ready LaTeX table (booktabs): rows = training template, columns = test template × metric."""

from __future__ import annotations

from ptst.report.grid import Agg, Grid, label
from ptst.report.rate_names import paper_term
from ptst.report.tables import combined_metrics, eval_title, is_percent, metric_title, num

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """Text safe inside a LaTeX table cell (template names carry `_`, data set names `&` or `%` at worst)."""
    return "".join(_SPECIAL.get(c, c) for c in text)


def cell(a: Agg | None, role: str, expected_seeds: int, intervals: bool) -> str:
    """`31.2` (one seed) or `31.2$\\pm$1.5` (several), an optional `[low, high]` below the value in script
    size; bold on the diagonal, a dagger on a PTST cell."""
    if a is None:
        return "--"
    pct = is_percent([a])
    s = num(a.mean, pct)
    if a.std is not None:
        s += rf"$\pm${num(a.std, pct)}"
    if role == "diagonal":
        s = rf"\textbf{{{s}}}"
    elif role == "ptst":
        s += r"$^\dagger$"
    if intervals and a.low is not None and a.high is not None:
        s += rf" {{\scriptsize[{num(a.low, pct)}, {num(a.high, pct)}]}}"
    if len(a.values) < expected_seeds:
        s += rf"$^{{{len(a.values)}/{expected_seeds}}}$"
    return s


def _caption(grid: Grid, metrics: list[tuple[str, str]], judge: str | None, intervals: bool) -> str:
    what = "; ".join(f"{eval_title(ev)}: {metric_title(m)}" for ev, m in metrics)
    seeds = len(grid.seeds)
    spread = rf"mean $\pm$ sample std over {seeds} seeds" if seeds > 1 else "one seed"
    iv = r" with 95\% Wilson intervals (pooled over seeds) in brackets" if intervals else ""
    who = f"; headline judge: {escape(judge)}" if judge else ""
    term = f" {escape(paper_term([judge]))}" if judge and any(m.startswith("asr.") for _, m in metrics) else ""
    return (f"Columns: {escape(what)}. Values in \\% ({spread}){iv}. \\textbf{{Bold}}: same template in training "
            f"and testing; $^\\dagger$: PTST (trained without, tested with a safety system prompt){who}.{term}")


def table_one(grid: Grid, judge: str | None, intervals: bool = True) -> str | None:
    """The paper's Table 1 (helpfulness and the judge's safety rate per safety set, per train × test template) as a
    complete `table` environment; needs `\\usepackage{booktabs}` (and `multirow` is not used). None when there is
    nothing to tabulate."""
    metrics = combined_metrics(grid, judge)
    if not metrics or not grid.tests:
        return None
    k, expected = len(metrics), len(grid.seeds)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + ("|" + "r" * k) * len(grid.tests) + "}", r"\toprule",
             "Train $\\downarrow$ / Test $\\rightarrow$ & " + " & ".join(
                 rf"\multicolumn{{{k}}}{{c}}{{{escape(t)}}}" for t in grid.tests) + r" \\"]
    if k > 1:
        lines.append(" ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(grid.tests))))
        lines.append(" & " + " & ".join(escape(eval_title(ev)) for _ in grid.tests for ev, _ in metrics) + r" \\")
    lines.append(r"\midrule")
    for tr in grid.trains:
        want = 1 if tr is None else expected
        row = [cell(grid.agg(tr, te, ev, m), grid.role(tr, te), want, intervals) for te in grid.tests
               for ev, m in metrics]
        lines.append(" & ".join([escape(label(tr)), *row]) + r" \\")
        if tr is None:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_caption(grid, metrics, judge, intervals)}}}",
              r"\label{tab:ptst-table1}", r"\end{table}", ""]
    return "\n".join(lines)
