"""Which paths the frontier compares at equal helpfulness ("strategy A vs strategy B"), and what each side is called:
every PTST path against its same-template paths, then the pairs the run's grid.yaml `report.compare` names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ptst.report.grid import Grid, diagonal_of, registry_defence
from ptst.report.tables import eval_title
from ptst.runs.results import split_row
from ptst.specs.report import PathName, compare_pairs, of_run

Key = tuple[str, str, "int | None"]  # (train, test, seed) of a path
Wanted = Sequence[tuple[PathName, PathName]]


def configured(run_dir: str | Path | None) -> list[tuple[PathName, PathName]]:
    """The run's grid.yaml `report.compare` as [(A, B)] of (train, test); a PtstError names a malformed entry."""
    return compare_pairs(of_run(run_dir).get("compare", []))


def pair_keys(grid: Grid, keys: Sequence[Key], wanted: Wanted = ()) -> list[tuple[Key, Key]]:
    """(A, B) per comparison: each PTST path (train without, test with the safety prompt) against the same-template
    path of its test template and of its training template, same seed, where both were evaluated at checkpoints
    (`keys`); then each `wanted` pair for every seed either side has (one with seed None when neither has any:
    its sentence says it was not compared), a pair already listed, either way round, not repeated."""
    have = set(keys)
    out: list[tuple[Key, Key]] = []
    for tr, te, seed in keys:
        if grid.role(tr, te) == "ptst":
            same = ((diagonal_of(tr, te), te, seed), (tr, split_row(tr)[0], seed))
            out += [((tr, te, seed), k) for k in same if k in have]
    for a, b in wanted:
        seeds = sorted({s for tr, te, s in keys if (tr, te) in (a, b)}, key=lambda s: (s is None, s or 0))
        for s in seeds or [None]:
            pair = ((*a, s), (*b, s))
            if pair not in out and pair[::-1] not in out:  # B vs A is the same comparison, sign flipped
                out.append(pair)
    return out


def who(grid: Grid, train: str, test: str) -> str:
    """A path as the sentence names it, possessive: by its role (PTST, same template), else by the strategy it is
    (safety mixing, inoculation, a test-time defence), else "the path's"."""
    r, (base, mix) = grid.role(train, test), split_row(train)
    if r == "ptst":  # an inoculation-trained model tested with the safety prompt is both strategies at once
        lead = "inoculation with PTST" if registry_defence(base) == "inoculation" else "PTST"
        return f"{lead}{' with safety mixing' if mix else ''}'s (train {train}, test {test})"
    pair = f"(train {train}, test {test})"
    if mix:
        return f"safety mixing's {pair}"
    if r == "diagonal":
        return f"the same-template path's (train and test {test})"
    if registry_defence(base) == "inoculation":
        return f"inoculation's {pair}"
    if registry_defence(test) == "test-time":
        return f"the test-time defence's {pair}"
    return f"the path's {pair}"


def seeds_disagree(grid: Grid, vs: Sequence[Any], verdict: Callable[[Any], str]) -> list[str]:
    """One sentence per comparison (A, B, safety set) whose seeds reach different verdicts at equal helpfulness
    ("A lower" in one, "no significant difference" or "A higher" in another). `vs`: the frontier's Versus list, and
    its `verdict`; comparisons not tested in a seed are left out."""
    groups: dict[tuple[str, str, str, str, str], list[Any]] = {}
    for v in vs:
        if v.result is not None and v.result.diff is not None and v.a.seed is not None:
            groups.setdefault((v.a.train, v.a.test, v.b.train, v.b.test, v.ev), []).append(v)
    out = []
    for (atr, ate, btr, bte, ev), g in groups.items():
        if len(g) > 1 and len({verdict(v) for v in g}) > 1:
            per = "; ".join(f"seed {v.a.seed}: {verdict(v).replace('A ', '')} ({100 * v.result.diff:+.1f} points)"
                            for v in g)
            out.append(f"The seeds disagree on {who(grid, atr, ate)} against {who(grid, btr, bte)} on "
                       f"{eval_title(ev)} at equal helpfulness ({per}): each seed is its own comparison, and the "
                       "bootstrap over prompts says nothing about another training run; more seeds would say which "
                       "is typical.")
    return out
