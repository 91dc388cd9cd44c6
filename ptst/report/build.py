"""`ptst.report.run`: read a run directory's metrics and write results.csv, report.md, report.html and figures."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

# Submodules by their full names, never through the package (`from ptst.report import ...`): ptst.report's
# __init__ imports this module to run the report, so importing the package from here would be a cycle.
import ptst.report.agreement as agreement
import ptst.report.curves as curves
import ptst.report.figures as figures
import ptst.report.frontier as frontier
import ptst.report.latex as latex
import ptst.report.ordering as ordering
import ptst.report.provenance as provenance
import ptst.report.review as review
import ptst.report.tables as tables
import ptst.report.tidy as tidy
import ptst.report.tradeoff as tradeoff
from ptst.errors import PtstError
from ptst.io import write_bytes_atomic, write_text_atomic
from ptst.report.grid import Grid, build_grid, headline_judge, table_metrics
from ptst.report.load import keep_current, load_cells
from ptst.report.rate_names import measure_name, measure_title, paper_term
from ptst.report.render import Block, Figure, Heading, Para, Table, to_html, to_markdown
from ptst.runs.layout import RunDir
from ptst.runs.state import Currency

FORMATS = ("md", "html", "tex")


def _fname(*parts: str) -> str:
    return "fig-" + "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", p) for p in parts) + ".png"


def _figures(grid: Grid, metrics: list[tuple[str, str]], judge: str | None) -> list[Block]:
    out: list[Block] = []
    maps = [(ev, m, figures.heatmap(grid, ev, m)) for ev, m in metrics]
    if any(png for *_, png in maps):
        out.append(Heading("Heatmaps", 3))
        out += [Figure(_fname("heatmap", ev, m), png, f"{tables.panel_title(ev, m)}: rows = training template, "
                       f"columns = test template; solid box = diagonal, dashed box and {tables.PTST_MARK} = PTST.")
                for ev, m, png in maps if png]
    png = figures.scatter(grid, judge)
    if png:
        out += [Heading("Safety vs helpfulness", 3), Figure(_fname("scatter", str(judge)), png,
                "One point per cell (mean over seeds); error bars = 95% Wilson intervals pooled over seeds.")]
    for ev in grid.evals("safety") if judge else []:
        got = curves.category_bars(grid, ev, str(judge))
        if got:
            note = " Only the no-fine-tuning, diagonal and PTST cells are drawn (all: results.csv)." if got[1] else ""
            out += [Heading(f"{tables.eval_title(ev)} by category", 3),
                    Figure(_fname("categories", ev, str(judge)), got[0],
                           f"The {measure_title(str(judge))} per category; error bars = 95% Wilson intervals pooled "
                           f"over seeds.{note}")]
    got = curves.checkpoint_curves(grid, judge)
    if got:
        note = " Only diagonal and PTST series are drawn (all cells: results.csv)." if got[1] else ""
        last = f"; the last panel traces helpfulness against the {measure_name(judge)} along training" if judge else ""
        out += [Heading("Checkpoints (early stopping vs PTST)", 3), Figure(_fname("checkpoints", str(judge)), got[0],
                f"Mean over seeds with pooled 95% Wilson bands; solid = PTST, dashed = other cells{last}.{note}")]
    return out


def _summary(grid: Grid, judge: str | None) -> str:
    ft = [t for t in grid.trains if t is not None]
    seeds = ("seed " if len(grid.seeds) == 1 else "seeds ") + (", ".join(str(s) for s in grid.seeds) or "—")
    evs = ", ".join(f"{tables.eval_title(e)} ({grid.kinds[e]})" for e in grid.evals()) or "—"
    base = " plus the no-fine-tuning baseline" if None in grid.trains else ""
    who = f"{judge} ({measure_name(judge)})" if judge else "—"
    return (f"{len(grid.cells)} evaluation cells: {len(ft)} training × {len(grid.tests)} test templates{base}; "
            f"{seeds}; evals {evs}; headline safety judge: {who}.")


def build_blocks(grid: Grid, safety_judge: str | None = None, run_dir: Path | None = None,
                 kappa_threshold: float = agreement.KAPPA_THRESHOLD, stale: Sequence[str] = (),
                 align_stale: str = "") -> tuple[list[Block], list[Figure]]:
    """The report's blocks and figures. `stale`: the warnings naming what `ptst.grid.current` found out of date
    (those cells are already left out); `align_stale`: why the alignment's own figures are not shown."""
    judge = headline_judge(grid, safety_judge)
    metrics = table_metrics(grid, [safety_judge] if safety_judge else grid.judges())
    pairs = ordering.ptst_pairs(grid)
    pair = ordering.headline_pair(pairs)
    comps = ordering.compare(grid, judge, pairs) if judge else []
    prov = provenance.collect(grid.cells)
    experiment = ", ".join(sorted(prov.versions.get("experiment", {"run"})))
    blocks: list[Block] = [Heading(f"ptst report: {experiment}", 1),
                           Para(ordering.sentence(comps, pair, judge), "headline"), Para(_summary(grid, judge))]
    jwarn, jsection, jrows = agreement.blocks(grid, judge, run_dir, kappa_threshold)
    blocks += [Para(f"Warning: {w}.", "warn") for w in [*stale, *jwarn, *provenance.warnings(grid, prov)]]
    term = paper_term([safety_judge] if safety_judge else grid.judges())
    blocks += [Heading("Table 1: training template × test template"), Para(tables.LEGEND, "note"),
               *([Para(term, "note")] if term else [])]
    blocks += tables.table_one(grid, metrics, judge)
    if comps:
        blocks += [Heading("PTST against the same-template diagonal")]
        blocks += ordering.comparison_table(comps, pair)
    trade = tradeoff.blocks(grid, judge)
    if trade:
        blocks += [Heading("Fine-tuning against no fine-tuning: helpfulness gained, safety lost or kept"), *trade]
    fblocks, ffigs = frontier.frontier_blocks(run_dir, grid, judge) if run_dir is not None else ([], [])
    blocks += fblocks  # checkpoints evaluated: the paths and the comparison at equal helpfulness
    if jsection:
        blocks += [Heading("Judge agreement on this run's answers"), *jsection]
    if run_dir is not None:  # `ptst review`: each judge measured against the run's own reviewed answers
        blocks += review.review_blocks(run_dir, grid.cells)
    figs = _figures(grid, metrics, judge)
    if figs:
        blocks += [Heading("Figures"), *figs]
    note = provenance.alignment_note(run_dir, align_stale) if run_dir is not None else None
    blocks += [Heading("Provenance"), *([Para(note)] if note else []), *provenance.provenance_table(prov),
               Table(("judge", "validated agreement with human labels (`ptst judge validate`)"), tuple(jrows),
                     agreement.PROVENANCE_CAPTION),
               Para("All numbers, per seed and per checkpoint, with per-category rows: `results.csv`.", "note")]
    return blocks, [b for b in figs if isinstance(b, Figure)] + ffigs


def run(run_dir: str | Path, currency: Currency, out_dir: str | Path | None = None, safety_judge: str | None = None,
        formats: Sequence[str] = FORMATS, kappa_threshold: float | None = None) -> tuple[Path, list[str]]:
    """Write results.csv, the figures, report.md, report.html and table1.tex (atomically) into `out_dir` (default:
    the run directory); return that directory and the warnings about stale or unchecked cells. Reads only
    `*/eval/*/metrics.json`, eval.json and judgements; shows only the numbers `currency` finds current."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise PtstError(f"unknown report format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    cells, stale = keep_current(load_cells(run_dir), Path(run_dir), currency)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    grid = build_grid(cells)
    k = agreement.threshold(Path(run_dir), kappa_threshold)  # given, else grid.yaml report.kappa_threshold, else 0.6
    blocks, figs = build_blocks(grid, safety_judge, Path(run_dir), k, stale, currency.align)
    for f in figs:
        write_bytes_atomic(out / f.name, f.png)
    extra = frontier.tidy_rows(Path(run_dir), grid, headline_judge(grid, safety_judge))
    write_text_atomic(out / "results.csv", tidy.to_csv(cells, extra))
    if "md" in formats:
        write_text_atomic(RunDir(out).report_md, to_markdown(blocks))
    if "html" in formats:
        title = blocks[0].text if isinstance(blocks[0], Heading) else "ptst report"
        write_text_atomic(out / "report.html", to_html(blocks, title))
    tex = latex.table_one(grid, headline_judge(grid, safety_judge)) if "tex" in formats else None
    if tex:
        write_text_atomic(out / "table1.tex", tex)
    return out, stale
