"""A blinded, stratified sample of a run's answers for human review (`RUN/review/sample.json`).

Every answer of a safety or over-refusal set in every finished evaluation cell is in the population, grouped in
strata (evaluation cell, set). The sample draws up to `per_stratum` answers from each stratum in one seeded order
of the set's prompt ids, the same in every cell (so reviewed answers pair across cells), and a second draw after
more cells are added keeps every item already drawn and adds the new strata's. Each item gets an opaque review
id: a hash of the cell, the set, the answer's id and the answer's text, so a label can never outlive the answer it
was given to (a regenerated answer is a new item). The page shows the reviewer the prompt and the answer only, in
a shuffled order: no cell, template, judge or verdict."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import read_json, sha256_text, stable_hash, write_json_atomic
from ptst.records import read_generations
from ptst.runs.layout import EvalDir, RunDir
from ptst.runs.results import MetricsDoc

FORMAT = "ptst.review-sample/1"
REVIEWED_KINDS = ("safety", "over-refusal")


@dataclass(frozen=True)
class Item:
    """One answer to review. `cell`: the evaluation cell's path under the run (`chat-vanilla.s0/eval/chat-llama`),
    `label`: the set's label in that cell, `answer_id`: the generation's id there."""

    rid: str
    cell: str
    label: str
    kind: str
    answer_id: str
    answer_sha256: str
    train_template: str | None
    test_template: str

    @property
    def stratum(self) -> str:
        return f"{self.cell}|{self.label}"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Answer:
    """What the reviewer sees of an item: the prompt and the answer, nothing else."""

    rid: str
    prompt: str
    answer: str


def review_dir(run: str | Path) -> Path:
    return Path(run) / "review"


def sample_path(run: str | Path) -> Path:
    return review_dir(run) / "sample.json"


def rid_of(cell: str, label: str, answer_id: str, answer: str) -> str:
    """The opaque review id: stable for the same answer, new for a regenerated one."""
    return "r" + stable_hash({"cell": cell, "set": label, "id": answer_id, "answer": sha256_text(answer)})[:12]


def population(run: Path) -> dict[str, list[tuple[Item, Answer]]]:
    """stratum -> its answers, from every finished evaluation cell (metrics.json present) of the run."""
    out: dict[str, list[tuple[Item, Answer]]] = {}
    for d in RunDir(run).eval_dirs():
        if not d.metrics.is_file():
            continue
        doc = MetricsDoc.read(d.metrics)
        cell = str(d.path.relative_to(run))
        for label, res in doc.evals.items():
            if res.kind not in REVIEWED_KINDS or not d.generations(label).is_file():
                continue
            for g in read_generations(d.generations(label)):
                item = Item(rid_of(cell, label, g.id, g.answer), cell, label, res.kind, g.id, sha256_text(g.answer),
                            doc.cell.get("train_template"), doc.test_template)
                out.setdefault(item.stratum, []).append((item, Answer(item.rid, g.prompt, g.answer)))
    return out


@dataclass(frozen=True)
class Sample:
    """The drawn items, in review order, with the design that drew them."""

    seed: int
    per_stratum: int
    strata: dict[str, dict[str, int]]  # stratum -> {"population": N, "drawn": n}
    items: tuple[Item, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "seed": self.seed, "per_stratum": self.per_stratum, "strata": self.strata,
                "items": [i.to_dict() for i in self.items]}

    @classmethod
    def read(cls, run: str | Path) -> Sample:
        path = sample_path(run)
        if not path.is_file():
            raise PtstError(f"{run}: no review sample yet (run `ptst review {run}` to draw one)")
        doc = read_json(path)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PtstError(f"{path}: not a ptst review sample (format {FORMAT})")
        try:
            items = tuple(Item(**i) for i in doc["items"])
            return cls(int(doc["seed"]), int(doc["per_stratum"]), dict(doc["strata"]), items)
        except (KeyError, TypeError, ValueError) as e:
            raise PtstError(f"{path}: malformed review sample ({e})") from None

    def by_rid(self) -> dict[str, Item]:
        return {i.rid: i for i in self.items}


def _order(items: Iterable[Item], seed: int) -> list[Item]:
    """A shuffled review order that does not group a cell's answers together."""
    return sorted(items, key=lambda i: stable_hash({"seed": seed, "rid": i.rid}))


def _shuffled_ids(items: list[Item], seed: int) -> list[str]:
    ids = sorted({i.answer_id for i in items})
    random.Random(stable_hash({"seed": seed, "set": items[0].label if items else ""})).shuffle(ids)
    return ids


def draw(run: str | Path, per_stratum: int = 8, seed: int = 0) -> Sample:
    """Draw (or extend) the run's review sample and write it atomically: every item of an earlier sample whose
    answer is still there is kept; each stratum is filled up to `per_stratum` from a seeded shuffle."""
    run = Path(run)
    if per_stratum < 1:
        raise PtstError(f"--per-stratum must be >= 1, got {per_stratum}")
    pop = population(run)
    if not pop:
        raise PtstError(f"{run}: no answers to review (no finished evaluation cell with a safety or over-refusal "
                        "set; run `ptst run` first)")
    old = Sample.read(run) if sample_path(run).is_file() else None
    if old is not None and (old.seed, old.per_stratum) != (seed, per_stratum) and per_stratum < old.per_stratum:
        raise PtstError(f"{sample_path(run)} was drawn with {old.per_stratum} per stratum; a smaller sample would "
                        "drop labelled items (give --per-stratum >= that)")
    kept = {i.rid for i in old.items} if old is not None else set()
    chosen: list[Item] = []
    strata: dict[str, dict[str, int]] = {}
    for stratum in sorted(pop):
        items = [i for i, _ in pop[stratum]]
        # one shuffle of the answer ids per set: every cell draws the same prompts first, so reviewed answers
        # pair across cells (paired tests on the reviewed labels)
        rank = {aid: n for n, aid in enumerate(_shuffled_ids(items, seed))}
        picked = [i for i in items if i.rid in kept]
        fresh = sorted((i for i in items if i.rid not in kept), key=lambda i: rank[i.answer_id])
        picked += fresh[: max(0, per_stratum - len(picked))]
        chosen += picked
        strata[stratum] = {"population": len(items), "drawn": len(picked)}
    sample = Sample(seed, max(per_stratum, old.per_stratum if old else 0), strata, tuple(_order(chosen, seed)))
    write_json_atomic(sample_path(run), sample.to_dict())
    return sample


def answers(run: str | Path, sample: Sample) -> dict[str, Answer]:
    """rid -> prompt and answer, read from the cells' generations files (an item whose answer changed since it
    was drawn is left out: its label, if any, no longer applies)."""
    run = Path(run)
    out: dict[str, Answer] = {}
    by_cell: dict[tuple[str, str], list[Item]] = {}
    for i in sample.items:
        by_cell.setdefault((i.cell, i.label), []).append(i)
    for (cell, label), items in by_cell.items():
        path = EvalDir(run / cell).generations(label)
        gens = {g.id: g for g in read_generations(path)} if path.is_file() else {}
        for i in items:
            g = gens.get(i.answer_id)
            if g is not None and sha256_text(g.answer) == i.answer_sha256:
                out[i.rid] = Answer(i.rid, g.prompt, g.answer)
    return out
