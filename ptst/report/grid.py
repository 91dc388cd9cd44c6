"""The grid view of a run: template roles (diagonal, PTST, baseline), ordering, and aggregation over seeds."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ptst.errors import PtstError
from ptst.metrics import wilson
from ptst.registry import did_you_mean
from ptst.report.load import Cell, Stat
from ptst.report.rate_names import refusal_detector
from ptst.runs.results import split_row
from ptst.templates import TEMPLATES, get_template

KIND_ORDER = ("helpfulness", "safety", "over-refusal")
BASELINE_LABEL = "no fine-tuning"
# The headline PTST pair: the paper's chat:vanilla -> chat:llama, or its GSM8K-prompt twin.
HEADLINE_PAIRS = (("chat:vanilla", "chat:llama"), ("gsm:chat:vanilla", "gsm:chat:llama"),
                  ("paper:chat:vanilla", "paper:chat:llama"), ("paper:gsm:chat:vanilla", "paper:gsm:chat:llama"))


@functools.cache
def registry_safety_prompt(name: str) -> bool | None:
    """Whether a template carries a safety system prompt; None when the template cannot be resolved."""
    try:
        return get_template(name).safety_prompt
    except (PtstError, OSError):
        return None


def safety_prompt(name: str, recorded: Mapping[str, bool] | None = None) -> bool | None:
    """The flag the evaluation recorded in metrics.json (what was actually run) if any, else the registry's (for a
    safety-mixing row, its training template's)."""
    if recorded and name in recorded:
        return recorded[name]
    return registry_safety_prompt(split_row(name)[0])


def diagonal_of(train: str, test: str) -> str:
    """The same-template row a (train → test) cell is compared with: the test template used in training too, in the
    same safety-mixing row (`chat:vanilla + safety-task` → `chat:llama + safety-task`)."""
    return test + split_row(train)[1]


def recorded_safety(cells: Iterable[Cell]) -> dict[str, bool]:
    """template -> safety-prompt flag from the cells' `train_safety_prompt` / `test_safety_prompt` labels."""
    out: dict[str, bool] = {}
    for c in cells:
        for side, name in (("train", c.train_template), ("test", c.test_template)):
            flag = c.safety.get(side)
            if name is not None and flag is not None:
                out.setdefault(name, flag)
    return out


def role(train: str | None, test: str, recorded: Mapping[str, bool] | None = None) -> str:
    """'baseline' (no fine-tuning), 'diagonal' (same template), 'ptst' (no safety prompt in training, one in
    testing) or 'other'."""
    if train is None:
        return "baseline"
    if split_row(train)[0] == test:
        return "diagonal"
    if safety_prompt(train, recorded) is False and safety_prompt(test, recorded) is True:
        return "ptst"
    return "other"


def template_order(names: Iterable[str]) -> list[str]:
    """Registry order (the paper's: text:vanilla, text:alpaca, chat:vanilla, chat:alpaca, chat:llama, ...)."""
    known = {n: i for i, n in enumerate(TEMPLATES.names())}

    def key(n: str) -> tuple[int, str, str]:  # paper:X by X; a safety-mixing row right after its template's
        base, mix = split_row(n)
        return known.get(base.removeprefix("paper:"), len(known)), base, mix

    return sorted(set(names), key=key)


@functools.cache
def registry_defence(name: str) -> str:
    """The registry's `defence` of a template ("", "test-time", "inoculation", "safety-prompt"); "" when the
    template cannot be resolved."""
    try:
        return get_template(name).defence
    except (PtstError, OSError):
        return ""


def label(train: str | None) -> str:
    """A training template as the report names it (Table 1 rows, figures, curves, review): its name, with its defence
    kind when it has one ("chat:inoculation-tan (inoculation)", "chat:self-reminder (test-time defence)"); None is
    the no-fine-tuning row."""
    if train is None:
        return BASELINE_LABEL
    mark = {"inoculation": "inoculation", "test-time": "test-time defence"}.get(registry_defence(train))
    return f"{train} ({mark})" if mark else train


@dataclass(frozen=True)
class Agg:
    """One grid cell's metric over seeds: the per-seed values and the pooled 95% Wilson interval."""

    values: tuple[float, ...]
    seeds: tuple[int | None, ...]
    pooled: Stat | None
    ns: tuple[int | None, ...] = ()  # per-seed sample sizes

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation across seeds (ddof = 1); None with one seed."""
        if len(self.values) < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (len(self.values) - 1))

    @property
    def low(self) -> float | None:
        return self.pooled.low if self.pooled else None

    @property
    def high(self) -> float | None:
        return self.pooled.high if self.pooled else None


def aggregate(items: Sequence[tuple[int | None, Stat]]) -> Agg:
    """Mean ± std of the per-seed values; the interval is Wilson on the pooled k/n (a seed's own with one)."""
    stats = [s for _, s in items]
    pooled: Stat | None = None
    if len(stats) == 1:
        pooled = stats[0] if stats[0].low is not None else None
    elif all(s.k is not None and s.n is not None for s in stats):
        r = wilson(sum(s.k or 0 for s in stats), sum(s.n or 0 for s in stats))
        if r.value is not None:
            pooled = Stat(r.value, r.k, r.n, r.low, r.high)
    return Agg(tuple(s.value for s in stats), tuple(seed for seed, _ in items), pooled, tuple(s.n for s in stats))


Key = tuple[str | None, str, "int | None", str, str, "str | None"]  # train, test, step, eval, metric, category


@dataclass(frozen=True)
class Grid:
    """All cells of a run indexed for tables and figures."""

    cells: tuple[Cell, ...]
    trains: tuple[str | None, ...]  # row order; None (no fine-tuning) first
    tests: tuple[str, ...]
    seeds: tuple[int | None, ...]  # the training seeds of fine-tuned cells
    kinds: dict[str, str]  # eval name -> kind
    metric_names: dict[str, tuple[str, ...]]  # eval name -> metric names, in file order
    index: dict[Key, tuple[tuple[int | None, Stat], ...]]
    safety: dict[str, bool]  # recorded safety-prompt flags (see recorded_safety)

    def role(self, train: str | None, test: str) -> str:
        return role(train, test, self.safety)

    def agg(self, train: str | None, test: str, ev: str, metric: str, step: int | None = None,
            category: str | None = None) -> Agg | None:
        items = self.index.get((train, test, step, ev, metric, category))
        return aggregate(items) if items else None

    def evals(self, kind: str | None = None) -> list[str]:
        """Eval names ordered by kind (helpfulness, safety, over-refusal, others), then by name."""
        rank = {k: i for i, k in enumerate(KIND_ORDER)}
        names = sorted(self.kinds, key=lambda e: (rank.get(self.kinds[e], len(rank)), e))
        return [e for e in names if kind is None or self.kinds[e] == kind]

    def judges(self) -> list[str]:
        """Safety judges: the `<judge>` of every `asr.<judge>` metric of a safety eval."""
        found = {m.split(".", 1)[1] for e in self.evals("safety") for m in self.metric_names[e]
                 if m.startswith("asr.") and "." in m}
        return sorted(found)

    def categories(self, ev: str, metric: str) -> list[str]:
        return sorted({k[5] for k in self.index if k[3] == ev and k[4] == metric and k[5] is not None})

    def steps(self) -> list[int]:
        return sorted({c.step for c in self.cells if c.step is not None})

    def cell(self, train: str | None, test: str, seed: int | None, step: int | None = None) -> Cell | None:
        for c in self.cells:
            if (c.train_template, c.test_template, c.seed, c.step) == (train, test, seed, step):
                return c
        return None


def build_grid(cells: Sequence[Cell]) -> Grid:
    index: dict[Key, list[tuple[int | None, Stat]]] = {}
    kinds: dict[str, str] = {}
    metric_names: dict[str, list[str]] = {}
    for c in cells:
        for name, ev in c.evals.items():
            kinds.setdefault(name, ev.kind)
            names = metric_names.setdefault(name, [])
            names += [m for m in ev.metrics if m not in names]
            for m, s in ev.metrics.items():
                index.setdefault((c.train_template, c.test_template, c.step, name, m, None), []).append((c.seed, s))
            for m, per in ev.by_category.items():
                for cat, s in per.items():
                    index.setdefault((c.train_template, c.test_template, c.step, name, m, cat), []).append((c.seed, s))
    trains = [t for t in template_order(c.train_template for c in cells if c.train_template is not None)]
    rows: list[str | None] = ([None] if any(c.baseline for c in cells) else []) + list(trains)
    seeds = sorted({c.seed for c in cells if not c.baseline and c.seed is not None})
    frozen = {k: tuple(sorted(v, key=lambda it: (it[0] is None, it[0] or 0))) for k, v in index.items()}
    return Grid(tuple(cells), tuple(rows), tuple(template_order(c.test_template for c in cells)), tuple(seeds),
                kinds, {k: tuple(v) for k, v in metric_names.items()}, frozen, recorded_safety(cells))


def headline_judge(grid: Grid, wanted: str | None = None) -> str | None:
    """`wanted` if given (an error when absent); else the first model judge by name (one that does not label
    refusals: rubric, Llama Guard, HarmBench, ...), else `keyword`, else the first string-match judge by name."""
    judges = grid.judges()
    if wanted is not None:
        if wanted not in judges:
            have = ", ".join(judges) or "none"
            raise PtstError(f"no safety metric asr.{wanted} in this run{did_you_mean(wanted, judges)}; judges: {have}")
        return wanted
    model_judges = [j for j in judges if not refusal_detector(j)]
    ranked = model_judges or (["keyword"] if "keyword" in judges else judges)
    return ranked[0] if ranked else None


def primary_helpfulness(grid: Grid) -> tuple[str, str] | None:
    """(eval, metric) of the headline helpfulness number: `accuracy.strict` if present, else the first metric."""
    for ev in grid.evals("helpfulness"):
        names = grid.metric_names[ev]
        if names:
            return ev, ("accuracy.strict" if "accuracy.strict" in names else names[0])
    return None


def table_metrics(grid: Grid, judges: Sequence[str]) -> list[tuple[str, str]]:
    """The (eval, metric) pairs that get a Table-1 panel: every helpfulness and over-refusal metric, and
    `asr.<judge>` of every safety eval for the chosen judges."""
    out: list[tuple[str, str]] = []
    for ev in grid.evals():
        for m in grid.metric_names[ev]:
            if grid.kinds[ev] != "safety" or m in {f"asr.{j}" for j in judges}:
                out.append((ev, m))
    return out
