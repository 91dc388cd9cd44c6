"""Grid figures as PNG bytes (matplotlib, Agg canvas): metric heatmaps and the safety-vs-helpfulness scatter."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from ptst.report.grid import Agg, Grid, label, primary_helpfulness
from ptst.report.tables import PTST_MARK, eval_title, is_percent, metric_title, panel_title


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    ms: float
    name: str


# One style per role, shared by every figure: PTST reads as the safe choice, the diagonal as the risky one.
STYLE = {
    "baseline": Style("#222222", "*", 13, "no fine-tuning"),
    "diagonal": Style("#c62828", "s", 7, "same template (diagonal)"),
    "ptst": Style("#1565c0", "^", 8, f"PTST {PTST_MARK}"),
    "other": Style("#9e9e9e", "o", 5, "other cells"),
}
CMAPS = {"safety": "Reds", "helpfulness": "Greens", "over-refusal": "Oranges"}  # none blue: PTST boxes are
BOX = {"diagonal": ("#111111", "-"), "ptst": ("#1565c0", "--")}


def new_figure(w: float, h: float) -> Any:
    """A pyplot-free Figure on an Agg canvas: no global state, no GUI backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version string: same input, same bytes
    return buf.getvalue()


def _matrix(grid: Grid, ev: str, metric: str) -> tuple[list[list[Agg | None]], bool]:
    m = [[grid.agg(tr, te, ev, metric) for te in grid.tests] for tr in grid.trains]
    return m, is_percent([a for row in m for a in row if a is not None])


def heatmap(grid: Grid, ev: str, metric: str) -> bytes | None:
    """Rows = training template (no fine-tuning first), columns = test template; diagonal boxed, PTST dashed."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    cells, percent = _matrix(grid, ev, metric)
    scale = 100.0 if percent else 1.0
    vals = np.array([[np.nan if a is None else a.mean * scale for a in row] for row in cells], dtype=float)
    if np.isnan(vals).all():
        return None
    nr, nc = vals.shape
    fig = new_figure(2.8 + 1.15 * nc, 1.7 + 0.55 * nr)
    ax = fig.subplots()
    cmap = colormaps[CMAPS.get(grid.kinds[ev], "Greys")].with_extremes(bad="#f2f2f2")
    # A safety rate is read against zero; helpfulness and over-refusal against their own range, so differences show.
    lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
    vmin = 0.0 if grid.kinds[ev] == "safety" else lo - 0.15 * max(hi - lo, 1e-9)
    vmax = max(hi, vmin + (5.0 if percent else 1e-9))
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i, tr in enumerate(grid.trains):
        for j, te in enumerate(grid.tests):
            a, r = cells[i][j], grid.role(tr, te)
            if a is None:
                ax.text(j, i, "—", ha="center", va="center", color="#888888", fontsize=9)
                continue
            text = f"{a.mean * scale:.1f}" if percent else f"{a.mean:.3g}"
            if a.std is not None:
                text += f"\n±{a.std * scale:.1f}" if percent else f"\n±{a.std:.2g}"
            if r == "ptst":
                text += f" {PTST_MARK}"
            dark = (a.mean * scale - vmin) / (vmax - vmin) > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=8.5, color="white" if dark else "#111111",
                    fontweight="bold" if r == "diagonal" else "normal")
            if r in BOX:
                ec, ls = BOX[r]
                ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, lw=2.2, ec=ec, ls=ls))
    ax.set_xticks(range(nc), labels=list(grid.tests), rotation=30, ha="right")
    ax.set_yticks(range(nr), labels=[label(t) for t in grid.trains])
    if grid.trains and grid.trains[0] is None and nr > 1:
        ax.axhline(0.5, color="white", lw=4)
    ax.set_xlabel("test template")
    ax.set_ylabel("training template")
    ax.set_title(panel_title(ev, metric) + (" (%)" if percent else ""), fontsize=11)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return to_png(fig)


def _err(a: Agg, scale: float) -> tuple[list[float], list[float]]:
    m = a.mean * scale
    lo = m - a.low * scale if a.low is not None else 0.0
    hi = a.high * scale - m if a.high is not None else 0.0
    return [max(0.0, lo)], [max(0.0, hi)]


def place_labels(ax: Any, items: list[tuple[float, float, str, str]], size: float = 7.0) -> None:
    """Annotate points, nudging each label upwards (in screen points) until it clears the ones already placed;
    a label that would run past the right edge of the axes goes to the left of its point."""
    boxes: list[tuple[float, float, float]] = []  # x0, x1, y in display points
    to_pts = 72.0 / ax.figure.dpi
    right_edge = ax.get_window_extent().x1 * to_pts
    for x, y, text, color in sorted(items, key=lambda it: (it[1], it[0])):
        px, py = (v * to_pts for v in ax.transData.transform((x, y)))
        w = 0.58 * size * len(text)
        left = px + 5 + w > right_edge
        x0, x1 = (px - 5 - w, px - 5) if left else (px + 5, px + 5 + w)
        dy = 4.0
        while any(x0 < b1 and b0 < x1 and abs(py + dy - by) < size + 1 for b0, b1, by in boxes):
            dy += size + 1
        boxes.append((x0, x1, py + dy))
        ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(-5 if left else 5, dy), fontsize=size,
                          color=color, ha="right" if left else "left",
                          arrowprops={"arrowstyle": "-", "color": color, "lw": 0.4, "alpha": 0.6} if dy > 12 else None)
        ann.set_in_layout(False)


Labels = list[tuple[float, float, str, str]]


def _scatter_panel(ax: Any, grid: Grid, help_key: tuple[str, str], ev: str, metric: str) -> tuple[set[str], Labels]:
    seen: set[str] = set()
    labels: Labels = []
    for tr in grid.trains:
        for te in grid.tests:
            h, s = grid.agg(tr, te, *help_key), grid.agg(tr, te, ev, metric)
            if h is None or s is None:
                continue
            r = grid.role(tr, te)
            st = STYLE[r]
            ax.errorbar([h.mean * 100], [s.mean * 100], xerr=_err(h, 100), yerr=_err(s, 100), fmt=st.marker,
                        color=st.color, ms=st.ms, elinewidth=0.9, capsize=2, alpha=0.9,
                        zorder=3 if r != "other" else 2)
            if r != "other":
                labels.append((h.mean * 100, s.mean * 100, f"{label(tr)} → {te}", st.color))
            seen.add(r)
    ax.set_xlabel(f"{eval_title(help_key[0])} {metric_title(help_key[1])} (%)")
    ax.set_ylabel(f"{eval_title(ev)} {metric_title(metric)} (%)")
    ax.grid(alpha=0.3)
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    return seen, labels


def scatter(grid: Grid, judge: str | None) -> bytes | None:
    """One point per cell (mean over seeds), pooled 95% Wilson intervals as error bars; a panel per safety set."""
    from matplotlib.lines import Line2D

    help_key = primary_helpfulness(grid)
    metric = f"asr.{judge}"
    evs = [e for e in grid.evals("safety") if metric in grid.metric_names[e]]
    if help_key is None or judge is None or not evs:
        return None
    fig = new_figure(5.2 * len(evs) + 0.4, 4.6)
    axes = fig.subplots(1, len(evs), squeeze=False)[0]
    seen: set[str] = set()
    labels = []
    for ax, ev in zip(axes, evs, strict=True):
        got = _scatter_panel(ax, grid, help_key, ev, metric)
        seen |= got[0]
        labels.append(got[1])
    handles = [Line2D([], [], ls="", marker=st.marker, color=st.color, ms=st.ms, label=st.name)
               for r, st in STYLE.items() if r in seen]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle("Safety vs helpfulness (lower right is better)", fontsize=11)
    fig.canvas.draw()  # settle the layout so data -> screen positions are final before placing labels
    for ax, items in zip(axes, labels, strict=True):
        place_labels(ax, items)
    return to_png(fig)
