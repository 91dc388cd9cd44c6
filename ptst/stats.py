"""Distributions and tests ptst.metrics combines seeds with: Student's t and chi-square (integer degrees of
freedom, closed forms; no scipy), a combined effect, homogeneity of proportions and of means across seeds."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

MAX_TABLES = 100_000  # above this many tables the homogeneity test of proportions falls back to Pearson's chi-square


def t_within(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df > 0 (Abramowitz & Stegun 26.7.3-4, finite series)."""
    if df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    th = math.atan(abs(t) / math.sqrt(df))
    c2, term, total = math.cos(th) ** 2, 1.0, 1.0
    if df % 2 == 0:
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return math.sin(th) * total
    if df == 1:
        return 2 * th / math.pi
    for k in range(1, (df - 1) // 2):
        term *= 2 * k / (2 * k + 1) * c2
        total += term
    return 2 / math.pi * (th + math.sin(th) * math.cos(th) * total)


def t_crit(df: int, level: float = 0.95) -> float:
    """The t with P(|T| <= t) = level (two-sided critical value; 4.303 for df 2 at 95%), by bisection."""
    lo, hi = 0.0, 1.0
    while t_within(hi, df) < level:
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_within(mid, df) < level else (lo, mid)
    return (lo + hi) / 2


def combined_effect(diffs: Sequence[float], pooled: float, pooled_se: float | None, z: float
                    ) -> tuple[float, float | None, float | None, str]:
    """Several seeds' differences as one effect: with 3 or more seeds their mean with its t interval over seeds, else
    the pooled difference with its normal interval (z * pooled_se; none without a standard error)."""
    k = len(diffs)
    if k >= 3:
        m = sum(diffs) / k
        half = t_crit(k - 1) * math.sqrt(sum((d - m) ** 2 for d in diffs) / (k - 1) / k)
        return m, m - half, m + half, "t over seeds"
    if pooled_se is None:
        return pooled, None, None, "pooled normal"
    return pooled, pooled - z * pooled_se, pooled + z * pooled_se, "pooled normal"


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for the chi-square distribution with integer df > 0 (closed forms through erfc and exp)."""
    if df < 1:
        raise ValueError(f"df must be a positive integer, got {df}")
    if x <= 0:
        return 1.0
    h = x / 2
    if df % 2 == 0:
        term = total = 1.0
        for i in range(1, df // 2):
            term *= h / i
            total += term
        return min(1.0, math.exp(-h) * total)
    term, total = math.sqrt(h) / math.gamma(1.5), 0.0
    for i in range(1, (df + 1) // 2):
        total += term
        term *= h / (i + 0.5)
    return min(1.0, math.erfc(math.sqrt(h)) + math.exp(-h) * total)


def _weights(ms: Sequence[int], left: int, rest: Sequence[int], i: int = 0) -> Iterator[int]:
    """Every table's weight prod_s C(m_s, x_s) over 0 <= x_s <= m_s with sum x_s = left (seeds i onwards)."""
    if i == len(ms) - 1:
        yield math.comb(ms[i], left)
        return
    for x in range(max(0, left - rest[i + 1]), min(ms[i], left) + 1):
        w = math.comb(ms[i], x)
        for v in _weights(ms, left - x, rest, i + 1):
            yield w * v


def homogeneity(b: Sequence[int], c: Sequence[int], max_tables: int = MAX_TABLES) -> tuple[float, str] | None:
    """Do the seeds' discordant pairs split alike? H0: b_s ~ Binomial(b_s + c_s, pi), one pi for every seed.

    (p, "exact"): the exact conditional test of the 2 x k table (Fisher's exact test for two seeds, Freeman-Halton
    for more): given each seed's m_s = b_s + c_s and the pooled b, the b_s are multivariate hypergeometric with
    weights prod_s C(m_s, x_s); p = the share of the weight on tables no more probable than the observed one
    (integer arithmetic, no tolerance needed). (p, "chi-square"): Pearson's chi-square with k - 1 df, when
    enumerating would visit more than `max_tables` tables. Seeds without discordant pairs carry no information
    and are left out; None when fewer than two seeds remain."""
    kept = sorted((bs + cs, bs) for bs, cs in zip(b, c, strict=True) if bs + cs)
    if len(kept) < 2:
        return None
    ms, bs = [m for m, _ in kept], [x for _, x in kept]
    big_b, big_m = sum(bs), sum(ms)
    if big_b in (0, big_m):
        return 1.0, "exact"
    if math.prod(m + 1 for m in ms[:-1]) <= max_tables:
        observed = math.prod(math.comb(m, x) for m, x in zip(ms, bs, strict=True))
        rest = [sum(ms[i:]) for i in range(len(ms))]
        extreme = sum(w for w in _weights(ms, big_b, rest) if w <= observed)
        return min(1.0, extreme / math.comb(big_m, big_b)), "exact"
    pi = big_b / big_m
    x2 = sum((x - m * pi) ** 2 / (m * pi * (1 - pi)) for m, x in kept)
    return chi2_sf(x2, len(ms) - 1), "chi-square"


def cochran_q(means: Sequence[float], ses: Sequence[float]) -> float | None:
    """Cochran's Q test that several seeds' mean differences are one: Q = sum w_s (m_s - m_w)^2 with w_s = 1 / se_s^2,
    chi-square with k - 1 df. None with fewer than two seeds or a seed whose standard error is 0."""
    if len(means) < 2 or any(s <= 0 for s in ses):
        return None
    w = [1 / s**2 for s in ses]
    mw = sum(wi * m for wi, m in zip(w, means, strict=True)) / sum(w)
    q = sum(wi * (m - mw) ** 2 for wi, m in zip(w, means, strict=True))
    return chi2_sf(q, len(means) - 1)
