"""Two fine-tuning paths compared at equal helpfulness: each path's safety rate as a function of helpfulness, the
mean vertical gap over the helpfulness range both cover, and its paired bootstrap over prompts. Pure statistics on
per-prompt outcome matrices (numpy inside the functions), so it is tested without a run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

N_BOOT = 2000
LEVEL = 0.95
# Helpfulness ranges (0-1 scale) that overlap on less than this are not compared: one point of accuracy is below the
# resolution of any helpfulness set this tool evaluates, so a narrower overlap is a coincidence, not a range.
MIN_OVERLAP = 0.01


@dataclass(frozen=True)
class Matched:
    """A's safety rate minus B's at equal helpfulness, averaged over the helpfulness range both paths cover (the area
    between the two curves divided by the range's width). `low`/`high`: the percentile interval of the paired
    bootstrap at `level`; `p`: the bootstrap p-value for "no difference" (the smallest two-sided level whose
    percentile interval excludes 0). `diff` is None when the ranges do not overlap by `MIN_OVERLAP`: `reason` says
    why. Rates and helpfulness are fractions (0-1)."""

    diff: float | None
    low: float | None
    high: float | None
    p: float | None
    n_safety: int  # safety prompts, resampled together for every point of both paths
    n_help: int  # helpfulness prompts, resampled likewise (independently of the safety prompts)
    range_a: tuple[float, float]
    range_b: tuple[float, float]
    overlap: tuple[float, float] | None
    n_boot: int
    n_used: int  # resamples in which the ranges still overlapped by MIN_OVERLAP: the interval and p are over these
    seed: int
    level: float = LEVEL
    reason: str = ""

    @property
    def comparable(self) -> bool:
        return self.diff is not None


def first_passage(x: Any, y: Any, h: Any) -> Any:
    """The safety rate y at the first point along the path (points in step order, joined by straight lines) where
    helpfulness x equals h. Arrays: x, y (R, K) for R paths of K points, h (R, M); returns (R, M), NaN where the path
    never reaches h. For a path whose helpfulness only rises this is ordinary piecewise-linear interpolation; where
    it dips, the level is read where training first reached it (the early-stopping reading)."""
    import numpy as np

    x0, x1, y0, y1 = x[:, :-1, None], x[:, 1:, None], y[:, :-1, None], y[:, 1:, None]
    hh = h[:, None, :]
    inside = (hh >= np.minimum(x0, x1)) & (hh <= np.maximum(x0, x1))  # (R, K-1, M): segment k reaches h
    seg = inside.argmax(axis=1)  # the first such segment

    def at(a: Any) -> Any:
        return np.take_along_axis(a[:, :, 0], seg, axis=1)

    xa, xb, ya, yb = at(x0), at(x1), at(y0), at(y1)
    dx = xb - xa
    t = np.divide(h - xa, dx, out=np.zeros(h.shape), where=dx != 0)  # a flat segment is reached at its start
    return np.where(inside.any(axis=1), ya + t * (yb - ya), np.nan)


def mean_gap(xa: Any, ya: Any, xb: Any, yb: Any, min_overlap: float = MIN_OVERLAP) -> tuple[Any, Any, Any]:
    """Mean of A's curve minus B's over the overlap of their helpfulness ranges, for R path pairs at once (arrays
    (R, K_A) and (R, K_B)); returns (gap, overlap low, overlap high), gap NaN where the overlap is narrower than
    `min_overlap`. Exact: between consecutive helpfulness values of either path both curves are linear (the first
    segment reaching a level cannot change there), so the midpoint rule on those sub-intervals integrates them."""
    import numpy as np

    lo = np.maximum(xa.min(axis=1), xb.min(axis=1))
    hi = np.minimum(xa.max(axis=1), xb.max(axis=1))
    ok = hi - lo >= max(min_overlap, 1e-12)
    top = np.maximum(hi, lo)
    cuts = np.concatenate([xa, xb, lo[:, None], top[:, None]], axis=1)
    cuts = np.sort(np.clip(cuts, lo[:, None], top[:, None]), axis=1)
    mids, widths = (cuts[:, 1:] + cuts[:, :-1]) / 2, np.diff(cuts, axis=1)
    gap = first_passage(xa, ya, mids) - first_passage(xb, yb, mids)
    area = np.where(widths > 0, widths * np.nan_to_num(gap), 0.0).sum(axis=1)
    width = np.where(ok, top - lo, 1.0)
    return np.where(ok, area / width, np.nan), lo, hi


def matched_point(xa: Any, ya: Any, xb: Any, yb: Any, min_overlap: float = MIN_OVERLAP) -> float | None:
    """`mean_gap` for one pair of paths given as point lists (helpfulness, safety rate in step order)."""
    import numpy as np

    a = [np.asarray(v, dtype=float)[None, :] for v in (xa, ya, xb, yb)]
    g = float(mean_gap(a[0], a[1], a[2], a[3], min_overlap)[0][0])
    return None if np.isnan(g) else g


def _check(help_a: Any, safe_a: Any, help_b: Any, safe_b: Any) -> None:
    if help_a.ndim != 2 or safe_a.ndim != 2 or help_b.ndim != 2 or safe_b.ndim != 2:
        raise ValueError("outcome matrices must be 2-D: one row per path point, one column per prompt")
    if help_a.shape[0] != safe_a.shape[0] or help_b.shape[0] != safe_b.shape[0]:
        raise ValueError("a path's helpfulness and safety matrices need one row per point each")
    if help_a.shape[1] != help_b.shape[1] or safe_a.shape[1] != safe_b.shape[1]:
        raise ValueError("both paths must be scored on the same prompts (the same columns)")
    if min(help_a.shape[0], help_b.shape[0]) < 2 or min(help_a.shape[1], safe_a.shape[1]) < 1:
        raise ValueError("each path needs at least two points and each matrix at least one prompt")


def _span(x: Any) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def matched_difference(help_a: Any, safe_a: Any, help_b: Any, safe_b: Any, n_boot: int = N_BOOT, seed: int = 0,
                       min_overlap: float = MIN_OVERLAP, level: float = LEVEL) -> Matched:
    """Compare paths A and B at equal helpfulness. Each matrix has one row per path point (step order: no
    fine-tuning, checkpoints, final adapter) and one column per prompt, the same prompts in the same columns for
    every point of both paths: helpfulness scores (0/1 accuracy or graded, e.g. ROUGE-L) and safety outcomes (1 =
    counted by the judge). The bootstrap resamples the prompt columns with replacement, once per resample for
    every point of both paths (the safety and the helpfulness prompts independently: they are different sets);
    seeded, so the same inputs give the same interval."""
    import numpy as np

    ha, sa, hb, sb = (np.asarray(m, dtype=float) for m in (help_a, safe_a, help_b, safe_b))
    _check(ha, sa, hb, sb)
    n_h, n_s = ha.shape[1], sa.shape[1]
    xa, ya, xb, yb = ha.mean(axis=1), sa.mean(axis=1), hb.mean(axis=1), sb.mean(axis=1)
    d0, lo, hi = mean_gap(xa[None], ya[None], xb[None], yb[None], min_overlap)
    base: dict[str, Any] = {"n_safety": n_s, "n_help": n_h, "range_a": _span(xa), "range_b": _span(xb),
                            "n_boot": n_boot, "seed": seed, "level": level}
    if np.isnan(d0[0]):
        flat = [name for name, x in (("A", xa), ("B", xb)) if x.max() - x.min() < min_overlap]
        why = (f"helpfulness stayed within {100 * min_overlap:.1f} points along "
               + ("both paths" if len(flat) == 2 else f"path {flat[0]}") if flat else
               "helpfulness ranges do not overlap" if hi[0] < lo[0] else
               f"helpfulness ranges overlap on {100 * max(0.0, float(hi[0] - lo[0])):.1f} points, less than "
               f"{100 * min_overlap:.1f}")
        return Matched(None, None, None, None, overlap=None, n_used=0, reason=why, **base)
    rng = np.random.default_rng(seed)
    wh = rng.multinomial(n_h, np.full(n_h, 1.0 / n_h), size=n_boot) / n_h  # (B, n_h) resample weights
    ws = rng.multinomial(n_s, np.full(n_s, 1.0 / n_s), size=n_boot) / n_s
    d = mean_gap(wh @ ha.T, ws @ sa.T, wh @ hb.T, ws @ sb.T, min_overlap)[0]
    used = d[~np.isnan(d)]
    m = len(used)
    if not m:  # the point estimate's overlap vanishes in every resample: no interval to give
        return Matched(float(d0[0]), None, None, None, overlap=(float(lo[0]), float(hi[0])), n_used=0,
                       reason="the helpfulness ranges overlapped in no bootstrap resample", **base)
    low, high = (float(q) for q in np.quantile(used, [(1 - level) / 2, (1 + level) / 2]))
    p = min(1.0, 2 * min((1 + int((used <= 0).sum())) / (m + 1), (1 + int((used >= 0).sum())) / (m + 1)))
    return Matched(float(d0[0]), low, high, p, overlap=(float(lo[0]), float(hi[0])), n_used=m, **base)
