"""Per-category safety-rate bars and checkpoint curves (the paper's early-stopping comparison) as PNG bytes."""

from __future__ import annotations

from typing import Any

from ptst.report.figures import STYLE, new_figure, to_png
from ptst.report.grid import Agg, Grid, label, primary_helpfulness, safety_prompt
from ptst.report.tables import PTST_MARK, eval_title, metric_title

ALL_UP_TO = 6  # draw every cell up to this many; beyond it only the highlighted ones
MAX_DRAWN = 12
RANK = {"baseline": 0, "diagonal": 1, "ptst": 2, "other": 3}
PALETTE = {"baseline": "Greys", "diagonal": "Reds", "ptst": "Blues", "other": "Greens"}


def pick_cells(grid: Grid, pairs: list[tuple[str | None, str]]) -> tuple[list[tuple[str | None, str]], bool]:
    """All pairs up to ALL_UP_TO; else the diagonal and PTST cells and the no-fine-tuning cells tested with a
    safety prompt, at most MAX_DRAWN. Returns (pairs, trimmed)."""
    if len(pairs) <= ALL_UP_TO:
        return pairs, False
    keep = [p for p in pairs if grid.role(*p) in ("diagonal", "ptst") or
            (p[0] is None and safety_prompt(p[1], grid.safety))]
    keep.sort(key=lambda p: RANK[grid.role(*p)])
    return keep[:MAX_DRAWN], True


def role_colors(grid: Grid, pairs: list[tuple[str | None, str]]) -> list[Any]:
    """One shade per cell from its role's palette: greys = no fine-tuning, reds = diagonal, blues = PTST."""
    from matplotlib import colormaps

    roles = [grid.role(*p) for p in pairs]
    out = []
    for p, r in zip(pairs, roles, strict=True):
        same = [q for q, rr in zip(pairs, roles, strict=True) if rr == r]
        i, n = same.index(p), len(same)
        out.append(colormaps[PALETTE[r]](0.75 if n == 1 else 0.95 - 0.5 * i / (n - 1)))
    return out


def cell_name(grid: Grid, tr: str | None, te: str) -> str:
    r = grid.role(tr, te)
    suffix = f" {PTST_MARK}" if r == "ptst" else " (diagonal)" if r == "diagonal" else ""
    return f"{label(tr)} → {te}{suffix}"


def _bars(ax: Any, grid: Grid, ev: str, metric: str, pairs: list, cats: list[str]) -> None:
    import numpy as np

    width = 0.8 / len(pairs)
    colors = role_colors(grid, pairs)
    for k, (tr, te) in enumerate(pairs):
        aggs = [grid.agg(tr, te, ev, metric, category=c) for c in cats]
        ys = [a.mean * 100 if a else np.nan for a in aggs]
        lo = [max(0.0, (a.mean - a.low) * 100) if a and a.low is not None else 0.0 for a in aggs]
        hi = [max(0.0, (a.high - a.mean) * 100) if a and a.high is not None else 0.0 for a in aggs]
        xs = np.arange(len(cats)) + (k - (len(pairs) - 1) / 2) * width
        ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=2, color=colors[k],
               label=cell_name(grid, tr, te), hatch="//" if grid.role(tr, te) == "diagonal" else None,
               edgecolor="white", error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(cats)), labels=cats)
    ax.set_ylabel(f"{metric_title(metric)} (%)")
    ax.grid(axis="y", alpha=0.3)


def category_bars(grid: Grid, ev: str, judge: str) -> tuple[bytes, bool] | None:
    """The judge's safety rate per category (e.g. DirectHarm4's four) for the final cells; error bars = pooled 95%
    Wilson."""
    metric = f"asr.{judge}"
    cats = grid.categories(ev, metric)
    if not cats:
        return None
    pairs = [(tr, te) for tr in grid.trains for te in grid.tests
             if any(grid.agg(tr, te, ev, metric, category=c) for c in cats)]
    pairs, trimmed = pick_cells(grid, pairs)
    if not pairs:
        return None
    fig = new_figure(max(7.5, 3.2 + len(cats) * (0.5 + 0.22 * len(pairs))), 4.2)
    ax = fig.subplots()
    _bars(ax, grid, ev, metric, pairs, cats)
    ax.set_title(f"{eval_title(ev)} — {metric_title(metric)} by category", fontsize=11)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    return to_png(fig), trimmed


def _series(grid: Grid, tr: str, te: str, ev: str, metric: str) -> list[tuple[int, Agg]]:
    """(step, value) along training; step 0 is the no-fine-tuning cell tested with the same template."""
    pts = [(s, grid.agg(tr, te, ev, metric, step=s)) for s in grid.steps()]
    base = grid.agg(None, te, ev, metric)
    out = [(s, a) for s, a in pts if a is not None]
    return ([(0, base)] if base is not None and out else []) + out


def _curve_panel(ax: Any, grid: Grid, pairs: list, ev: str, metric: str) -> None:
    for (tr, te), color in zip(pairs, role_colors(grid, pairs), strict=True):
        pts = _series(grid, tr, te, ev, metric)
        if not pts:
            continue
        st = STYLE[grid.role(tr, te)]
        xs = [s for s, _ in pts]
        ax.plot(xs, [a.mean * 100 for _, a in pts], marker=st.marker, color=color, ms=5,
                ls="-" if grid.role(tr, te) == "ptst" else "--", label=cell_name(grid, tr, te), alpha=0.9)
        if all(a.low is not None and a.high is not None for _, a in pts):
            ax.fill_between(xs, [a.low * 100 for _, a in pts], [a.high * 100 for _, a in pts],  # type: ignore
                            color=color, alpha=0.12, lw=0)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{eval_title(ev)} {metric_title(metric)} (%)")
    ax.grid(alpha=0.3)


def _tradeoff_panel(ax: Any, grid: Grid, pairs: list, help_key: tuple[str, str], ev: str, metric: str) -> None:
    for (tr, te), color in zip(pairs, role_colors(grid, pairs), strict=True):
        hs, ss = dict(_series(grid, tr, te, *help_key)), dict(_series(grid, tr, te, ev, metric))
        steps = sorted(set(hs) & set(ss))
        if not steps:
            continue
        st = STYLE[grid.role(tr, te)]
        xs, ys = [hs[s].mean * 100 for s in steps], [ss[s].mean * 100 for s in steps]
        ax.plot(xs, ys, marker=st.marker, color=color, ms=5, ls="-" if grid.role(tr, te) == "ptst" else "--")
        ax.annotate(f"step {steps[-1]}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 3), fontsize=7,
                    color=color)
    ax.set_xlabel(f"{eval_title(help_key[0])} {metric_title(help_key[1])} (%)")
    ax.set_ylabel(f"{eval_title(ev)} {metric_title(metric)} (%)")
    ax.set_title("trade-off along training", fontsize=10)
    ax.grid(alpha=0.3)


def checkpoint_curves(grid: Grid, judge: str | None) -> tuple[bytes, bool] | None:
    """The judge's safety rate and helpfulness against training step for every (train, test) evaluated at
    checkpoints."""
    if not grid.steps():
        return None
    found: list[tuple[str | None, str]] = sorted(
        {(c.train_template, c.test_template) for c in grid.cells if c.step is not None and c.train_template},
        key=lambda p: (RANK[grid.role(*p)], str(p[0]), p[1]))
    pairs, trimmed = pick_cells(grid, found)
    def evaluated(key: tuple[str, str] | None) -> bool:  # some checkpoint cell carries this metric
        return key is not None and any(grid.agg(tr, te, *key, step=s) for tr, te in pairs for s in grid.steps())

    help_key = primary_helpfulness(grid)
    help_key = help_key if evaluated(help_key) else None
    safety = [(e, f"asr.{judge}") for e in grid.evals("safety") if evaluated((e, f"asr.{judge}"))]
    panels = safety + ([help_key] if help_key else [])
    if not pairs or not panels:
        return None
    n = len(panels) + (1 if help_key and safety else 0)
    ncol = 2 if n == 4 else min(n, 3)
    nrow = -(-n // ncol)
    fig = new_figure(4.4 * ncol + 0.4, 3.6 * nrow + 0.9)
    axes = list(fig.subplots(nrow, ncol, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    for ax, (ev, metric) in zip(axes, panels, strict=False):  # the last axes may be the trade-off panel
        _curve_panel(ax, grid, pairs, ev, metric)
    if help_key and safety:
        _tradeoff_panel(axes[-1], grid, pairs, help_key, *safety[0])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)) or 1, fontsize=8,
               frameon=False)
    fig.suptitle("Along fine-tuning: checkpoints (step 0 = no fine-tuning, same test template)", fontsize=11)
    return to_png(fig), trimmed
