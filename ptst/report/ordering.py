"""Did the PTST ordering hold? PTST cells against their same-template diagonal, with exact McNemar tests (per seed,
and pooled over the seeds with a check that the seeds agree)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.io import iter_jsonl
from ptst.metrics import paired, paired_combined
from ptst.report.grid import HEADLINE_PAIRS, Grid, diagonal_of, template_order
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
        return verdict_of(self.held, self.significant)


def verdict_of(held: bool, significant: bool) -> str:
    if held:
        return "held, significant" if significant else "held, not significant"
    return "did NOT hold, significant" if significant else "did NOT hold"


@dataclass(frozen=True)
class Pooled:
    """One PTST pair × safety set over several seeds: the seeds' comparisons and their paired tests combined
    (`combined`: ptst.metrics.PairedCombined over the seeds with a paired test; None when none has one)."""

    train: str
    test: str
    ev: str
    judge: str
    comps: tuple[Comparison, ...]
    combined: Any | None

    @property
    def held(self) -> bool:
        if self.combined is not None:
            return bool(self.combined.diff < 0)
        return sum(c.ptst.value for c in self.comps) < sum(c.diag.value for c in self.comps)

    @property
    def significant(self) -> bool:
        return self.combined is not None and self.combined.p_value < ALPHA

    @property
    def disagree(self) -> bool:
        """The seeds disagree: their discordant pairs split differently (ptst.stats.homogeneity, p < ALPHA)."""
        return self.combined is not None and (self.combined.heterogeneity_p or 1.0) < ALPHA

    @property
    def verdict(self) -> str:
        return verdict_of(self.held, self.significant) + (", the seeds disagree" if self.disagree else "")


def pool(comps: Sequence[Comparison]) -> list[Pooled]:
    """The comparisons grouped by pair × safety set × judge (first-seen order), their seeds' tests combined."""
    groups: dict[tuple[str, str, str, str], list[Comparison]] = {}
    for c in comps:
        groups.setdefault((c.train, c.test, c.ev, c.judge), []).append(c)
    out = []
    for (tr, te, ev, judge), cs in groups.items():
        tested = {c.seed or 0: c.paired for c in cs if c.paired is not None}
        out.append(Pooled(tr, te, ev, judge, tuple(cs), paired_combined(tested) if tested else None))
    return out


def several_seeds(comps: Sequence[Comparison]) -> bool:
    return len({c.seed for c in comps}) > 1


def ptst_pairs(grid: Grid) -> list[tuple[str, str]]:
    """(train, test) PTST pairs with a final cell whose diagonal (test, test) exists for the same seed."""
    have = {(c.train_template, c.test_template, c.seed) for c in grid.cells if c.final}
    pairs = {(tr, te) for tr, te, s in have
             if tr is not None and grid.role(tr, te) == "ptst" and (diagonal_of(tr, te), te, s) in have}
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
            a, b = grid.cell(tr, te, seed), grid.cell(diagonal_of(tr, te), te, seed)
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
    lead = f"By {by_judge(judge)}, the PTST ordering"
    what = (f"training with {tr} and testing with {te} gave a lower {measure_name(judge)} than {te} in both "
            f"training and testing")
    if several_seeds(mine):
        return _pooled_sentence(lead, what, pool(mine))
    details = "; ".join(detail(c) for c in mine)
    scope = "in the one seed × safety-set comparison" if n == 1 else f"in all {n} seed × safety-set comparisons"
    test = "exact McNemar test on the same prompts, p < 0.05"
    return _verdict(lead, what, (n, held, sig), scope, f"in only {held} of {n} seed × safety-set comparisons",
                    test, "", details)


def _verdict(lead: str, what: str, counts: tuple[int, int, int], scope: str, partial: str, test: str, split: str,
             details: str) -> str:
    """The PTST sentence's verdict from (units, held, held and significant): held, held in direction only, or not;
    `partial` says how few held, `split` is the seeds-disagree clause (empty with one seed)."""
    n, held, sig = counts
    if n and held == n and sig == n:
        each = "significant" if n == 1 else "each significant"
        return f"{lead} held: {what} {scope}, {each} ({test}){split}: {details}."
    if n and held == n:
        how = "not significant" if n == 1 else ("none significant" if sig == 0 else f"only {sig} of {n} significant")
        return f"{lead} held in direction but not significantly: {what} {scope}, {how} ({test}){split}: {details}."
    return f"{lead} did NOT hold: {what} {partial} ({sig} significant; {test}){split}: {details}."


def seeds_phrase(seeds: Sequence[int | None]) -> str:
    """'seed 0', 'seeds 0 and 1', 'seeds 0, 1 and 2'."""
    ss = [str(s) for s in sorted({s or 0 for s in seeds})]
    return f"seed {ss[0]}" if len(ss) == 1 else f"seeds {', '.join(ss[:-1])} and {ss[-1]}"


INTERVALS = {"pooled normal": "the pooled paired difference with its normal interval",
             "t over seeds": "the mean of the seeds' differences with its t interval over seeds"}
HOMOGENEITY = {"exact": "exact homogeneity test", "chi-square": "Pearson's χ² homogeneity test",
               "Cochran's Q": "Cochran's Q"}


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _pooled_test(p: Pooled) -> str:
    cb = p.combined
    if cb is None:
        return "no paired test"
    iv = f" [{points(cb.low)}, {points(cb.high)}]" if cb.low is not None and cb.high is not None else ""
    return (f"b={cb.b}, c={cb.c}, p={fmt_p(cb.p_value)}, PTST − diagonal {points(cb.diff)} points{iv}, "
            f"{INTERVALS[cb.interval]}")


def pooled_detail(p: Pooled) -> str:
    per = "; ".join(f"seed {c.seed}: {_rate(c.ptst)} vs {_rate(c.diag)}, {_test(c)}" for c in p.comps)
    seeds = [c.seed for c in p.comps if c.paired is not None] or [c.seed for c in p.comps]
    how = "combined" if len(set(seeds)) > 1 else "alone"  # the other seeds have no paired test
    return f"{eval_title(p.ev)}, {seeds_phrase(seeds)} {how}: {_pooled_test(p)} ({per})"


def split_clause(where: str, diffs: Sequence[tuple[int | None, float, str]], het_p: float, het_test: str) -> str:
    """'the seeds disagree in direction on AdvBench: seed 0 ... against seed 1 ... (homogeneity ...)'; `diffs` are
    (seed, its difference, the difference and test as printed)."""
    way = "direction" if min(d for _, d, _ in diffs) < 0 < max(d for _, d, _ in diffs) else "size"
    each = " against ".join(f"seed {s} {t}" for s, _, t in diffs)
    return f"the seeds disagree in {way} on {where}: {each} ({HOMOGENEITY[het_test]} across seeds, p={fmt_p(het_p)})"


def _split(pools: Sequence[Pooled]) -> str:
    parts = []
    for p in pools:
        if p.disagree and p.combined is not None:
            diffs = [(c.seed, d, f"{points(d)} points ({_test(c)})") for c in p.comps if c.paired
                     for d in [(c.paired.b - c.paired.c) / c.paired.n_pairs]]
            parts.append(split_clause(eval_title(p.ev), diffs, p.combined.heterogeneity_p,
                                      p.combined.heterogeneity_test))
    return "; but " + "; and ".join(parts) if parts else ""


def _pooled_sentence(lead: str, what: str, pools: list[Pooled]) -> str:
    """The PTST sentence with several seeds: one unit per safety set, its seeds' paired tests pooled."""
    n, held = len(pools), sum(p.held for p in pools)
    sig = sum(p.held and p.significant for p in pools)
    seeds = seeds_phrase([c.seed for p in pools for c in p.comps])
    scope = f"{'on the one safety set' if n == 1 else f'on all {n} safety sets'}, {seeds} combined"
    test = "exact McNemar test on the same prompts with the discordant pairs pooled over the seeds, p < 0.05"
    details = "; ".join(pooled_detail(p) for p in pools)
    return _verdict(lead, what, (n, held, sig), scope, f"on only {held} of {n} safety sets, {seeds} combined", test,
                    _split(pools), details)


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
    return [Table(header, tuple(rows), cap), *pooled_table(comps, pair)]


POOLED_CAPTION = (
    "Each safety set with its seeds combined (the PTST sentence rests on these rows when there are several seeds). "
    "b and c are summed over the seeds and p is the two-sided exact McNemar test on the pooled discordant pairs "
    "(exact: with no difference, every discordant pair of every seed goes either way with probability ½). PTST − "
    "diagonal in percentage points: with 3 or more seeds the mean of the seeds' paired differences with its 95% t "
    "interval over seeds; with 2 seeds the pooled paired difference (every prompt pair of both seeds as one sample) "
    "with its 95% normal (Wald) interval. The seeds disagree when the exact test that their discordant pairs split "
    "alike (b/(b + c) the same in every seed: Fisher's exact test for 2 seeds, Freeman–Halton for more, Pearson's "
    "χ² above 100,000 tables) gives p < 0.05. 'held' = the combined difference below 0.")


def pooled_table(comps: list[Comparison], pair: tuple[str, str] | None) -> list[Block]:
    """One row per PTST pair × safety set × judge with its seeds combined; nothing with one seed."""
    if not several_seeds(comps):
        return []
    header = ("PTST pair (train → test)", "safety set", "judge", "seeds", "paired n", "b", "c",
              "p (exact McNemar, pooled)", "PTST − diagonal, points [95%]", "interval", "homogeneity p", "ordering")
    rows = []
    for p in sorted(pool(comps), key=lambda p: (p.train, p.test) != pair):
        name = f"{p.train} → {p.test}" + (" (headline)" if (p.train, p.test) == pair else "")
        cb = p.combined
        seeds = ", ".join(str(s) for s in (cb.seeds if cb else sorted({c.seed or 0 for c in p.comps})))
        if cb is None:
            cols: tuple[str, ...] = ("—",) * 7
        else:
            iv = f" [{points(cb.low)}, {points(cb.high)}]" if cb.low is not None and cb.high is not None else ""
            het = "—" if cb.heterogeneity_p is None else f"{fmt_p(cb.heterogeneity_p)} ({cb.heterogeneity_test})"
            cols = (str(cb.n_pairs), str(cb.b), str(cb.c), fmt_p(cb.p_value), f"{points(cb.diff)}{iv}",
                    cb.interval, het)
        rows.append((name, eval_title(p.ev), p.judge, seeds, *cols, p.verdict))
    return [Table(header, tuple(rows), POOLED_CAPTION)]
