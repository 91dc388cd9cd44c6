"""At equal helpfulness: each (train, test) pair's path of (helpfulness, safety rate) along its evaluated
checkpoints, drawn per safety set, and PTST against the same-template paths (and the pairs `report.compare` names:
ptst.report.strategies) at matched helpfulness (the statistics live in ptst.report.matched)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import read_json
from ptst.report.curves import cell_name, pick_cells, role_colors
from ptst.report.figures import STYLE, new_figure, place_labels, to_png
from ptst.report.grid import Agg, Grid, headline_judge, primary_helpfulness, template_order
from ptst.report.load import Cell
from ptst.report.matched import LEVEL, MIN_OVERLAP, N_BOOT, Matched, matched_difference
from ptst.report.ordering import ALPHA, fmt_p, harmful_by_id
from ptst.report.rate_names import defined, measure_short, measure_title
from ptst.report.render import Block, Figure, Heading, Para, Table
from ptst.report.strategies import Wanted, configured, pair_keys, seeds_disagree, who
from ptst.report.tables import eval_title, metric_title
from ptst.report.tidy import csv_field
from ptst.report.tradeoff import item_scores
from ptst.runs.layout import RunDir

HEADING = "At equal helpfulness: the frontier"
SEED = 0  # the bootstrap's seed: the same run gives the same report


@dataclass(frozen=True)
class Point:
    """One point of a path: the no-fine-tuning cell (step 0), a checkpoint, or the final adapter (`final`; its step
    from the training run's spec.json, None when unknown)."""

    step: int | None
    cell: Cell
    final: bool = False

    @property
    def label(self) -> str:
        return str(self.step) if not self.final else "final" if self.step is None else f"{self.step} (final)"


@dataclass(frozen=True)
class Trajectory:
    """A (train, test) pair of one seed along training, in step order."""

    train: str
    test: str
    seed: int | None
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Versus:
    """Path A against path B at equal helpfulness on one safety set; `result` None when not tested (`note`)."""

    a: Trajectory
    b: Trajectory
    ev: str
    judge: str
    help_key: tuple[str, str]
    result: Matched | None
    note: str = ""


def _final_step(run_dir: Path | None, cell: Cell) -> int | None:
    """Steps the final adapter was trained for (spec.json `steps`), so it takes its place on the step axis."""
    spec = RunDir(run_dir).train(cell.train_cell).spec if run_dir is not None else cell.path.parent.parent / "spec.json"
    try:
        steps = read_json(spec).get("steps") if spec.is_file() else None
    except (PtstError, OSError, AttributeError):
        return None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def trajectories(grid: Grid, run_dir: Path | None = None) -> list[Trajectory]:
    """Every fine-tuned (train, test, seed) evaluated at checkpoints: step 0 = the no-fine-tuning cell under the
    same test template, then each checkpoint, then the final adapter (a checkpoint at the final adapter's own step
    is the same adapter and is left out)."""
    rank = {t: i for i, t in enumerate(template_order({*grid.tests, *(t for t in grid.trains if t is not None)}))}
    keys = sorted({(c.train_template, c.test_template, c.seed) for c in grid.cells
                   if c.step is not None and c.train_template is not None},
                  key=lambda k: (rank.get(str(k[0]), -1), rank[k[1]], k[2] if k[2] is not None else -1))
    out = []
    for tr, te, seed in keys:
        base = next((c for c in grid.cells if c.baseline and c.final and c.test_template == te), None)
        final = grid.cell(tr, te, seed)
        last = _final_step(run_dir, final) if final is not None else None
        ckpts = sorted((c for c in grid.cells if (c.train_template, c.test_template, c.seed) == (tr, te, seed)
                        and c.step is not None and c.step != last), key=lambda c: c.step or 0)
        pts = ([Point(0, base)] if base is not None else []) + [Point(c.step, c) for c in ckpts]
        pts += [Point(last, final, True)] if final is not None else []
        out.append(Trajectory(str(tr), te, seed, tuple(pts)))
    return out


def _pairs(grid: Grid, trajs: list[Trajectory], wanted: Wanted = ()) -> list[tuple[Trajectory, Trajectory]]:
    """The comparisons (ptst.report.strategies.pair_keys); a wanted path never evaluated at checkpoints has no
    points."""
    by = {(t.train, t.test, t.seed): t for t in trajs}
    keys = pair_keys(grid, list(by), wanted)
    return [(by.get(a) or Trajectory(*a, ()), by.get(b) or Trajectory(*b, ())) for a, b in keys]


Read = Callable[[Cell], "dict[str, float] | None"]


def _matrices(a: Sequence[Cell], b: Sequence[Cell], read: Read) -> tuple[list[list[float]], list[list[float]]] | str:
    """One row per cell, one column per prompt id that every cell of both paths scored."""
    maps = [read(c) for c in (*a, *b)]
    if any(m is None for m in maps):
        return "a per-prompt file is missing"
    common = set.intersection(*(set(m) for m in maps if m is not None))
    if not common:
        return "no prompt was scored in every cell of both paths"
    ids = sorted(common)
    rows = [[m[i] for i in ids] for m in maps if m is not None]
    return rows[:len(a)], rows[len(a):]


def _reader(cache: dict, what: tuple[str, str], fn: Callable[[Cell], dict[str, float] | None]) -> Read:
    def read(cell: Cell) -> dict[str, float] | None:
        key = (cell.path, *what)
        if key not in cache:
            cache[key] = fn(cell)
        return cache[key]
    return read


def compare(grid: Grid, trajs: list[Trajectory], judge: str, help_key: tuple[str, str],
            n_boot: int = N_BOOT, seed: int = SEED, wanted: Wanted = ()) -> list[Versus]:
    """Every PTST path against its same-template paths, then the `wanted` pairs, per safety set carrying
    `asr.<judge>`; only sets every point's metrics.json has (a dropped set's old files are never read)."""
    cache: dict = {}
    hev, hm = help_key

    def safety(ev: str) -> Callable[[Cell], dict[str, float] | None]:
        def read(c: Cell) -> dict[str, float] | None:
            got = harmful_by_id(c, ev, judge)
            return None if got is None else {i: float(v) for i, v in got.items() if v is not None}
        return read

    helpful = _reader(cache, help_key, lambda c: item_scores(c, hev, hm))
    out = []
    for ev in safety_sets(grid, trajs, judge):
        harmful = _reader(cache, (ev, judge), safety(ev))
        for a, b in _pairs(grid, trajs, wanted):
            ca, cb = [p.cell for p in a.points], [p.cell for p in b.points]
            missing = [f"{s} (train {t.train}, test {t.test})" for s, t in (("A", a), ("B", b)) if not t.points]
            if missing:
                were = "was" if len(missing) == 1 else "were"
                out.append(Versus(a, b, ev, judge, help_key, None, f"{' and '.join(missing)} {were} not evaluated "
                                  "at checkpoints"))
                continue
            if len(ca) < 2 or len(cb) < 2:
                out.append(Versus(a, b, ev, judge, help_key, None, "a path has fewer than two evaluated points"))
                continue
            lacking = sorted({p.label for t in (a, b) for p in t.points if not {ev, hev} <= set(p.cell.evals)})
            if lacking:
                out.append(Versus(a, b, ev, judge, help_key, None, f"step {', '.join(lacking)} has no "
                                  f"{eval_title(ev)} or {eval_title(hev)} results (checkpoint_evals)"))
                continue
            h, s = _matrices(ca, cb, helpful), _matrices(ca, cb, harmful)
            if isinstance(h, str) or isinstance(s, str):
                what = f"helpfulness: {h}" if isinstance(h, str) else f"safety: {s}"
                out.append(Versus(a, b, ev, judge, help_key, None, what))
                continue
            out.append(Versus(a, b, ev, judge, help_key, matched_difference(h[0], s[0], h[1], s[1], n_boot, seed)))
    return out


def safety_sets(grid: Grid, trajs: list[Trajectory], judge: str) -> list[str]:
    """The safety sets judged by `judge` that some checkpoint was evaluated on (not one left to the final adapters)."""
    at = {e for t in trajs for p in t.points if not p.final and not p.cell.baseline for e in p.cell.evals}
    return [e for e in grid.evals("safety") if f"asr.{judge}" in grid.metric_names[e] and e in at]


def help_name(help_key: tuple[str, str]) -> str:
    """`GSM8K accuracy (strict)`, `ChatDoctor ROUGE-L F1`: what "equal helpfulness" is measured by."""
    return f"{eval_title(help_key[0])} {metric_title(help_key[1]).replace(' (× 100)', '')}"


def _pts(x: float) -> str:
    return f"{100 * x:.1f}"


def _range(r: tuple[float, float]) -> str:
    return f"{_pts(r[0])}–{_pts(r[1])}"


def p_text(m: Matched) -> str:
    """`= 0.004`, or `≤ 1.0e-03` when no resample crossed 0 (the bootstrap's floor, 2 / (resamples + 1))."""
    assert m.p is not None
    return f"≤ {fmt_p(m.p)}" if m.p <= 2 / (m.n_used + 1) + 1e-12 else f"= {fmt_p(m.p)}"


def sentence(grid: Grid, v: Versus) -> str:
    """One plain sentence: lower / higher / not significantly different / not comparable / not tested."""
    seed = f" (seed {v.a.seed})" if v.a.seed is not None and len(grid.seeds) > 1 else ""
    a, b, m = who(grid, v.a.train, v.a.test), who(grid, v.b.train, v.b.test), v.result
    lead = f"At equal {help_name(v.help_key)}, {a} {measure_title(v.judge)} on {eval_title(v.ev)}{seed}"
    if m is None:
        return f"{lead} was not compared with {b}: {v.note}."
    if m.diff is None or m.low is None or m.high is None or m.p is None:
        why = m.reason if m.diff is None else m.reason or "no bootstrap interval"
        return (f"{lead} cannot be compared with {b}: {why} ({help_name(v.help_key)} × 100: {_range(m.range_a)} "
                f"along A, {_range(m.range_b)} along B).")
    how = (f"paired bootstrap over {m.n_safety} {eval_title(v.ev)} and {m.n_help} {eval_title(v.help_key[0])} "
           f"prompts, {m.n_used:,} resamples, p {p_text(m)}")
    if m.n_used < m.n_boot:
        how += f"; the ranges overlapped in only {m.n_used:,} of {m.n_boot:,} resamples"
    word = "lower" if m.diff < 0 else "higher"
    lo, hi = (-m.high, -m.low) if m.diff < 0 else (m.low, m.high)
    iv = f"{_pts(abs(m.diff))} points [{_pts(lo)}, {_pts(hi)}]"
    if m.p < ALPHA:
        return f"{lead} was {word} than {b} by {iv} ({how})."
    return f"{lead} was not significantly different from {b}: {word} by {iv} ({how})."


def verdict(v: Versus) -> str:
    m = v.result
    if m is None:
        return f"not tested ({v.note})"
    if m.diff is None or m.p is None:
        return f"not comparable ({m.reason})"
    if m.p >= ALPHA:
        return "no significant difference"
    return "A lower" if m.diff < 0 else "A higher"


def table(grid: Grid, vs: list[Versus]) -> Table:
    def row(v: Versus) -> tuple[str, ...]:
        m = v.result
        ok = m is not None and m.diff is not None
        n = f"{m.n_safety} / {m.n_help}" if m is not None else "—"
        return (eval_title(v.ev), "—" if v.a.seed is None else str(v.a.seed), cell_name(grid, v.a.train, v.a.test),
                cell_name(grid, v.b.train, v.b.test), n,
                _range(m.overlap) if m is not None and m.overlap else "—",
                _pts(m.diff) if m is not None and m.diff is not None else "—",
                f"[{_pts(m.low)}, {_pts(m.high)}]" if ok and m and m.low is not None and m.high is not None else "—",
                p_text(m).removeprefix("= ") if m is not None and m.p is not None else "—", verdict(v))
    judges = sorted({v.judge for v in vs})
    short = measure_short(judges[0]) if judges else "rate"
    header = ("safety set", "seed", "A (train → test)", "B (train → test)", "prompts (safety / helpfulness)",
              "helpfulness overlap (×100)", f"A − B ({short} points)", f"{LEVEL:.0%} interval", "p (bootstrap)",
              "verdict")
    help_key = vs[0].help_key if vs else ("", "")
    cap = (f"Safety: {'; '.join(defined(j) for j in judges)}. Each path's safety rate is read as a function of "
           f"{help_name(help_key)} (the first point along training, checkpoints joined by straight lines, where the "
           "path reached that helpfulness), averaged over the helpfulness range both paths cover: A − B is the area "
           f"between the curves divided by the range's width. Interval: {LEVEL:.0%} percentile interval of a paired "
           f"bootstrap over prompts ({N_BOOT:,} resamples, seed {SEED}; the same resample of safety and of "
           "helpfulness prompts for every point of both paths); p: bootstrap p-value for no difference (significant "
           f"below {ALPHA}); only prompts scored in every cell of both paths. Ranges overlapping on less than "
           f"{100 * MIN_OVERLAP:.0f} point are not compared.")
    return Table(header, tuple(row(v) for v in vs), cap)


def _err(a: Agg) -> tuple[float, float]:
    return (max(0.0, (a.mean - a.low) * 100) if a.low is not None else 0.0,
            max(0.0, (a.high - a.mean) * 100) if a.high is not None else 0.0)


def _series(grid: Grid, tr: str, te: str, key: tuple[str, str], steps: list[Point]) -> list[tuple[str, Agg | None]]:
    """Mean over seeds of each point of the path (metrics.json; step 0 = no fine-tuning under `te`)."""
    return [(p.label, grid.agg(None if p.cell.baseline else tr, te, *key,
                               step=None if p.final or p.cell.baseline else p.step)) for p in steps]


def figure(grid: Grid, trajs: list[Trajectory], ev: str, judge: str, help_key: tuple[str, str],
           keep: Sequence[tuple[str, str]] = ()) -> tuple[bytes, bool] | None:
    """Helpfulness (x) against the judge's safety rate (y), one line per (train, test) pair (mean over seeds), a
    marker at each point labelled with its step, 95% intervals as error bars (Wilson for rates). Returns (png,
    trimmed): beyond six pairs only the diagonal and PTST paths (ptst.report.curves.pick_cells) and those in `keep`
    are drawn."""
    first: dict[tuple[str, str], Trajectory] = {}
    for t in trajs:
        first.setdefault((t.train, t.test), t)
    picked, trimmed = pick_cells(grid, list(first))
    pairs = picked + [p for p in first if p in keep and p not in picked]
    if not pairs:
        return None
    fig = new_figure(7.6, 5.2)
    ax = fig.subplots()
    labels: list[tuple[float, float, str, str]] = []
    for (tr, te), color in zip(pairs, role_colors(grid, pairs), strict=True):
        assert tr is not None
        pts = first[(tr, te)].points
        xs, ys = _series(grid, tr, te, help_key, list(pts)), _series(grid, tr, te, (ev, f"asr.{judge}"), list(pts))
        drawn = [(lab, x, y) for (lab, x), (_, y) in zip(xs, ys, strict=True) if x is not None and y is not None]
        if not drawn:
            continue
        r = grid.role(tr, te)
        ax.errorbar([x.mean * 100 for _, x, _ in drawn], [y.mean * 100 for _, _, y in drawn],
                    xerr=list(zip(*(_err(x) for _, x, _ in drawn), strict=True)),
                    yerr=list(zip(*(_err(y) for _, _, y in drawn), strict=True)),
                    marker=STYLE[r].marker, color=color, ms=6, ls="-" if r == "ptst" else "--", lw=1.4,
                    elinewidth=0.7, capsize=2, alpha=0.9, label=cell_name(grid, tr, te))
        labels += [(x.mean * 100, y.mean * 100, lab, color) for lab, x, y in drawn]
    if not labels:
        return None
    title = metric_title(help_key[1])
    ax.set_xlabel(f"{eval_title(help_key[0])} {title}" + ("" if "×" in title else " (%)"))
    ax.set_ylabel(f"{eval_title(ev)} {measure_title(judge)} (%)")
    ax.set_title(f"{eval_title(ev)}: safety against helpfulness along training (labels: step)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.canvas.draw()  # final layout before placing the step labels in screen space
    place_labels(ax, labels, 6.5)
    return to_png(fig), trimmed


def _fname(*parts: str) -> str:
    return "fig-" + "-".join(re.sub(r"[^A-Za-z0-9._]+", "_", p) for p in parts) + ".png"


def _inputs(run_dir: Path | None, grid: Grid, judge: str | None) -> tuple[str, tuple[str, str], list, Wanted] | None:
    judge = headline_judge(grid, judge)
    help_key = primary_helpfulness(grid)
    if not grid.steps() or help_key is None or judge is None:
        return None
    trajs = trajectories(grid, Path(run_dir) if run_dir is not None else None)
    return (judge, help_key, trajs, configured(run_dir)) if trajs else None


def frontier_blocks(run_dir: str | Path | None, grid: Grid,
                    judge: str | None = None) -> tuple[list[Block], list[Figure]]:
    """The report section (heading, a figure per safety set, one sentence per comparison, the table) and its
    figures; ([], []) when the grid has no checkpoints, no helpfulness set or no judged safety set. `judge`: the
    report's --safety-judge (None: the headline judge)."""
    got = _inputs(Path(run_dir) if run_dir is not None else None, grid, judge)
    if got is None:
        return [], []
    judge, help_key, trajs, wanted = got
    figs = []
    for ev in safety_sets(grid, trajs, judge):
        drawn = figure(grid, trajs, ev, judge, help_key, [p for pair in wanted for p in pair])
        if drawn:
            also = " and those report.compare names" if wanted else ""
            note = f" Only the diagonal and PTST paths{also} are drawn (all: results.csv)." if drawn[1] else ""
            figs.append(Figure(_fname("frontier", ev, judge), drawn[0],
                               f"{eval_title(ev)}: {measure_title(judge)} against {help_name(help_key)} along "
                               "training, mean over seeds; step 0 = no fine-tuning under the same test template; "
                               "error bars = 95% intervals (Wilson for rates); solid = PTST, dashed = other paths."
                               + note))
    vs = compare(grid, trajs, judge, help_key, wanted=wanted)
    also = ", and the pairs report.compare names," if wanted else ""
    intro = (f"Each (train, test) path from no fine-tuning (step 0) through its checkpoints to the final adapter, "
             f"plotted as {help_name(help_key)} against the {measure_title(judge)}; PTST is compared with the "
             f"same-template paths{also} at equal helpfulness (rule under the table; docs/report.md).")
    blocks: list[Block] = [Heading(HEADING), Para(intro), *figs]
    if not vs:
        blocks.append(Para("No PTST path has a same-template path evaluated at checkpoints for the same seed: "
                           "nothing to compare at equal helpfulness."))
        return blocks, figs
    split = seeds_disagree(grid, vs, verdict)
    return [*blocks, *(Para(sentence(grid, v)) for v in vs), *map(Para, split), table(grid, vs)], figs


def _row(t: Trajectory, grid: Grid, step: int | None, ev: str, kind: str, metric: str,
         nums: tuple[Any, Any, Any, Any, Any], category: str, experiment: str) -> tuple[str, ...]:
    """One results.csv row; `nums` = (k, n, value, low, high)."""
    return tuple(csv_field(x) for x in (experiment, t.seed, t.train, t.test, step, ev, kind, metric, *nums,
                                 grid.role(t.train, t.test) == "ptst", category))


def tidy_rows(run_dir: str | Path | None, grid: Grid, judge: str | None = None) -> list[tuple[str, ...]]:
    """results.csv rows (ptst.report.tidy.COLUMNS): every path point (`frontier.<helpfulness metric>` on the
    helpfulness set and `frontier.<judge>` on each safety set, as metrics.json has them; `checkpoint` = the step,
    0 for the no-fine-tuning start, empty for the final adapter), then every matched comparison
    (`matched_diff.<judge>`: A − B with its interval, `n` = safety prompts, empty value when not comparable;
    `matched_p.<judge>`: its bootstrap p), on A's row with B in `category` (`vs <train> → <test>`)."""
    got = _inputs(Path(run_dir) if run_dir is not None else None, grid, judge)
    if got is None:
        return []
    judge, (hev, hm), trajs, wanted = got
    safety = safety_sets(grid, trajs, judge)
    out = []
    for t in trajs:
        for p in t.points:
            step, exp = (None if p.final else p.step), p.cell.experiment
            for ev, kind, metric, name in [(hev, "helpfulness", hm, hm)] + [(e, "safety", f"asr.{judge}", judge)
                                                                          for e in safety]:
                st = p.cell.evals[ev].metrics.get(metric) if ev in p.cell.evals else None
                if st is not None:
                    nums = (st.k, st.n, st.value, st.low, st.high)
                    out.append(_row(t, grid, step, ev, kind, f"frontier.{name}", nums, "", exp))
    for v in compare(grid, trajs, judge, (hev, hm), wanted=wanted):
        exp = next((t.points[-1].cell.experiment for t in (v.a, v.b) if t.points), grid.cells[0].experiment)
        m, vs = v.result, f"vs {v.b.train} → {v.b.test}"
        n = m.n_safety if m is not None else None
        diff = (None, n, m.diff, m.low, m.high) if m is not None else (None,) * 5
        p = (None, n, m.p, None, None) if m is not None else (None,) * 5
        out.append(_row(v.a, grid, None, v.ev, "safety", f"matched_diff.{judge}", diff, vs, exp))
        out.append(_row(v.a, grid, None, v.ev, "safety", f"matched_p.{judge}", p, vs, exp))
    return out
