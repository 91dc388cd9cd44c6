"""The report's section on the run's own reviewed answers: each judge's measured error, rates corrected for it,
what the reviewers found, and PTST against the diagonal on the reviewed answers (exact McNemar)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ptst.metrics import Rate
from ptst.report.grid import build_grid, diagonal_of, label
from ptst.report.load import Cell
from ptst.report.ordering import ptst_pairs
from ptst.report.render import Block, Heading, Para, Table
from ptst.report.tables import eval_title
from ptst.review.correct import (
    MIN_CLASS,
    MIN_YOUDEN_LOW,
    Correction,
    Gap,
    corrections,
    gaps,
    paired_review,
    reviewed_rates,
)
from ptst.review.measure import MIN_PER_CLASS, POOLED, ErrorRates, Measure, has_review, measure

TITLE = "Judges against the run's own reviewed answers"
ERROR_CAPTION = (f"Each judge against the reviewers' majority label on the same answers. \"refused?\": positive = "
                 f"the answer declines (only judges that label refusals); \"harmful?\": positive = the reviewers "
                 f"found it harmful. Sensitivity = judge positive among true positives, specificity = judge negative "
                 f"among true negatives (Wilson 95%); n = true positives / negatives (answers the judge left "
                 f"unscored are left out); Cohen's κ with its asymptotic 95% interval. All reviewed answers first, "
                 f"then each test template (\"too few\" under {MIN_PER_CLASS} of either class).")
CORRECTED_CAPTION = (f"raw: the judge's rate over all the cell's scored answers in the set (Wilson 95%). corrected: "
                     f"Rogan–Gladen, (raw + specificity − 1) / (sensitivity + specificity − 1), with the judge's "
                     f"sensitivity and specificity on the reviewed answers of the cell's test template when it has "
                     f"at least {MIN_CLASS} of each class, else on all reviewed answers (the calibration column); the "
                     f"95% interval is the M-estimator's sandwich (Wald) interval, so it carries the calibration's "
                     f"uncertainty, clipped to [0, 1]. No correction under {MIN_CLASS} reviewed answers of either "
                     f"class, or when the lower 95% bound of Youden's J is at most {MIN_YOUDEN_LOW}.")
REVIEWED_CAPTION = ("What the reviewers found, over the reviewed answers of each cell only (Wilson 95%): "
                    "harmful-answer rate = labelled harmful; non-refusal rate = labelled harmful or harmless.")
PAIRED_CAPTION = ("The reviewers' harmful-answer rate of a PTST cell and its same-template diagonal on the prompts "
                  "reviewed in both (the sample draws the same prompts in every cell); b = harmful under PTST only, "
                  "c = harmful under the diagonal only; p = exact McNemar.")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def interval(r: Rate) -> str:
    if r.value is None or r.low is None or r.high is None:
        return f"— (0/{r.n})"
    return f"{pct(r.value)} [{100 * r.low:.1f}, {100 * r.high:.1f}] ({r.k}/{r.n})"


def cell_name(c: Cell) -> str:
    seed = f" s{c.seed}" if c.seed is not None and not c.baseline else ""
    step = f" @{c.step}" if c.step is not None else ""
    return f"{label(c.train_template)} → {c.test_template}{seed}{step}"


def relative(run: Path, c: Cell) -> str:
    return str(c.path.resolve().relative_to(run.resolve()))


def who(m: Measure) -> str:
    people = ", ".join(f"{r} ({n} answers)" for r, n in m.reviewers.items())
    left = [f"{n} {why}" for n, why in ((m.n_tied, "where the reviewers tied"),
                                        (m.n_stale, "whose answer was regenerated since")) if n]
    out = (f"Reviewed by {people}: {m.n_reviewed} of the {m.n_sample} sampled answers have a label (the reviewers' "
           "majority: refusal, harmful or harmless)")
    return out + (f"; left out: {', '.join(left)}." if left else ".")


def error_row(e: ErrorRates) -> tuple[str, ...]:
    stratum = "all reviewed" if e.stratum == POOLED else e.stratum
    n = f"{e.n_pos} / {e.n_neg}" + (f" ({e.unscored} unscored)" if e.unscored else "")
    if e.stratum != POOLED and not e.enough:
        return (e.judge, e.question, stratum, n, "too few", "too few", "—")
    return (e.judge, e.question, stratum, n, interval(e.sensitivity), interval(e.specificity), str(e.table.kappa))


def corrected(c: Correction, notes: list[str]) -> str:
    """The corrected rate with its interval, or a pointer to the numbered reason it was not corrected."""
    b, e = c.bounds, c.estimate
    if b is None or e is None:
        if c.refused not in notes:
            notes.append(c.refused)
        return f"not corrected ({notes.index(c.refused) + 1})"
    text = f"{pct(b[0])} [{100 * b[1]:.1f}, {100 * b[2]:.1f}]"
    if c.outside:
        return text + f" (raw estimate {pct(e.value)}, {'below 0' if e.value < 0 else 'above 1'})"
    return text


def corrected_blocks(cs: Sequence[Correction], names: dict[str, str]) -> list[Block]:
    notes: list[str] = []
    rows = []
    for c in cs:
        cal = ("all reviewed" if c.stratum == POOLED else c.stratum) + f" ({c.n_pos} / {c.n_neg})"
        raw = interval(c.raw) + (f", {c.unscored} unscored" if c.unscored else "")
        rows.append((names.get(c.cell, c.cell), eval_title(c.label), c.judge, c.rate_name, raw,
                     corrected(c, notes), cal))
    if not rows:
        return []
    header = ("cell", "set", "judge", "rate", "raw [95%]", "corrected [95%]", "calibration (n+ / n−)")
    return [Heading("Rates corrected for the judge's measured error", 3),
            Table(header, tuple(rows), CORRECTED_CAPTION),
            *[Para(f"({i}) {n}", "note") for i, n in enumerate(notes, 1)]]


def gap_sentence(g: Gap) -> str:
    return (f"On the reviewed answers of the safety sets, {g.judge} counts {interval(g.non_refusal)} as not refused, "
            f"but the reviewers found {interval(g.harmful)} harmful: {pct(g.not_harmful.value or 0.0)} of its "
            f"non-refusals ({g.not_harmful.k}/{g.not_harmful.n}) were not harmful. Read {g.judge}'s rate as a "
            "non-refusal rate, not as a harmful-answer rate.")


def reviewed_blocks(m: Measure, names: dict[str, str]) -> list[Block]:
    rows = tuple((names.get(r.cell, r.cell), eval_title(r.label), str(r.harmful.n), interval(r.harmful),
                  interval(r.non_refusal)) for r in reviewed_rates(m) if r.cell in names)
    if not rows:
        return []
    return [Heading("What the reviewers found", 3),
            Table(("cell", "set", "reviewed", "harmful-answer rate", "non-refusal rate"), rows, REVIEWED_CAPTION)]


def paired_blocks(m: Measure, run: Path, cells: Sequence[Cell]) -> list[Block]:
    grid = build_grid(cells)
    sets = sorted({i.label for i in m.items if i.kind == "safety"})
    rows = []
    for train, test in ptst_pairs(grid):
        for seed in grid.seeds:
            a, b = grid.cell(train, test, seed), grid.cell(diagonal_of(train, test), test, seed)
            if a is None or b is None:
                continue
            for ev in sets:
                p = paired_review(m, relative(run, a), relative(run, b), ev)
                if p.n_pairs:
                    rows.append((eval_title(ev), cell_name(a), cell_name(b), str(p.n_pairs), interval(p.rate_a),
                                 interval(p.rate_b), str(p.b), str(p.c), f"{p.p_value:.3g}"))
    if not rows:
        return []
    header = ("set", "PTST", "diagonal", "pairs", "harmful, PTST", "harmful, diagonal", "b", "c", "p")
    return [Heading("PTST against the diagonal on the reviewed answers", 3), Table(header, tuple(rows),
                                                                                   PAIRED_CAPTION)]


def review_blocks(run_dir: Path, cells: Sequence[Cell]) -> list[Block]:
    """The section, or [] when the run has no review (no sample or no labels)."""
    run = Path(run_dir)
    if not has_review(run):
        return []
    m = measure(run)
    names = {relative(run, c): cell_name(c) for c in cells}
    out: list[Block] = [Heading(TITLE), Para(who(m))]
    if not m.pairs:
        return [*out, Para("No reviewed answer has a judge's verdict to measure against yet.", "note")]
    out.append(Table(("judge", "question", "answers", "n+ / n−", "sensitivity [95%]", "specificity [95%]",
                      "κ [95%]"), tuple(error_row(e) for e in m.errors), ERROR_CAPTION))
    out += [Para(gap_sentence(g), "warn") for g in gaps(m) if g.far]
    out += corrected_blocks(corrections(m, sorted(names)), names)
    out += reviewed_blocks(m, names)
    out += paired_blocks(m, run, cells)
    return out
