"""metrics.json, an evaluation cell's numbers and done marker, as one typed schema: `ptst eval` writes it, the
report and the alignment stage read it back.

    MetricsDoc   ptst_version, cell (labels), key, model, adapter_hash, template_fingerprints {train, test},
                 judges {judge: version}, judge_keys {judge: key} (absent before judge keys were recorded),
                 evals {label: SetResult}, key_scheme (2; absent before keys were composed from content),
                 inputs (ptst.runs.keys.CellInputs: what `key` is composed from; absent likewise)
    SetResult    kind, data, split, data_sha256, n, metrics {name: Metric}, by_category {metric: {category:
                 Metric}} (safety sets), judge_agreement {"a|b": Agreement.to_dict()} (several judges)
    Metric       a Rate {k, n, value, low, high}, a MeanScore {mean, sd, n, low, high}, a bare number (e.g. the
                 count of unscored answers), or Unknown: any other shape, kept as read

`to_dict()` gives back the document key for key, in the order written, so a file read and written again is
byte-identical; `from_dict(doc, where)` checks the shape and names the file in one line when it is wrong.
Files written by older ptst versions load: keys they lack read as None (judge_keys, by_category: absent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from ptst.errors import PtstError
from ptst.io import read_json
from ptst.metrics import MeanScore, Rate

MIX_SEP = " + "  # a safety-mixing row's training label in `cell`: `gsm:chat:vanilla + safety-task`


def row_name(train_template: str | None, mix: str | None) -> str | None:
    """The training row a cell belongs to, as metrics.json's `cell.train_template` names it: the template, or
    `<template> + <mixing row>` for a safety-mixing row (the grid's `mixes:`)."""
    return train_template if train_template is None or mix is None else f"{train_template}{MIX_SEP}{mix}"


def split_row(train: str) -> tuple[str, str]:
    """(the training template, the row's mixing suffix `" + name"` or "") of a `cell.train_template` label."""
    base, sep, mix = train.partition(MIX_SEP)
    return base, sep + mix


RATE_KEYS = ("k", "n", "value", "low", "high")
MEAN_KEYS = ("mean", "sd", "n", "low", "high")

T = TypeVar("T")


@dataclass(frozen=True)
class Unknown:
    """A metric in a shape this version does not write (an older or newer writer, a hand edit): kept as read, so
    the file round-trips; a reader takes from it what it can (the report: a nested rate) and lists the rest."""

    raw: Any


Metric = Rate | MeanScore | int | float | Unknown


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def metric_from_json(x: Any) -> Metric:
    """A rate, mean score or number in exactly the shape ptst writes; anything else is Unknown (never an error)."""
    if _is_num(x):
        return x
    if isinstance(x, dict) and _is_int(x.get("n")) and all(x[k] is None or _is_num(x[k]) for k in x if k != "n"):
        if tuple(x) == RATE_KEYS and _is_int(x["k"]):
            return Rate(**x)
        if tuple(x) == MEAN_KEYS:
            return MeanScore(**x)
    return Unknown(x)


def metric_to_json(m: Metric) -> Any:
    if isinstance(m, Rate):
        return m.to_dict()
    if isinstance(m, MeanScore):
        return asdict(m)
    return m.raw if isinstance(m, Unknown) else m


def metrics_from_json(ms: Mapping[str, Any]) -> dict[str, Metric]:
    """{name: metric} from the rates and scores a scorer wrote (ptst.score's JSON), order kept."""
    return {name: metric_from_json(v) for name, v in ms.items()}


def _metrics_to_json(ms: Mapping[str, Metric]) -> dict[str, Any]:
    return {name: metric_to_json(m) for name, m in ms.items()}


class _Reader:
    """Shape checks of one mapping inside a document (`at`: its place, e.g. `evals.harm`): every complaint is one
    line naming the file and the key."""

    def __init__(self, where: str | Path, d: Mapping[str, Any], at: str = "") -> None:
        self.where, self.d, self.at = str(where), d, at

    def _name(self, key: str) -> str:
        return f"{self.at}.{key}" if self.at else key

    def fail(self, key: str, want: str, got: Any) -> PtstError:
        return PtstError(f"{self.where}: {self._name(key)} must be {want}, got {type(got).__name__}")

    def mapping(self, key: str) -> dict[str, Any] | None:
        v = self.d.get(key)
        if v is not None and not isinstance(v, dict):
            raise self.fail(key, "a mapping", v)
        return v

    def inner(self, key: str) -> _Reader:
        """The reader of the mapping under `key` (an absent one reads as empty)."""
        return _Reader(self.where, self.mapping(key) or {}, self._name(key))

    def str_or_none(self, key: str) -> str | None:
        v = self.d.get(key)
        if v is not None and not isinstance(v, str):
            raise self.fail(key, "a string or null", v)
        return v

    def int_or_none(self, key: str) -> int | None:
        v = self.d.get(key)
        if v is not None and not _is_int(v):
            raise self.fail(key, "an integer or null", v)
        return v

    def strings(self, key: str) -> dict[str, str] | None:
        """{name: string}, e.g. judge -> version."""
        v = self.mapping(key)
        for name, s in (v or {}).items():
            if not isinstance(s, str):
                raise self.fail(f"{key}.{name}", "a string", s)
        return v

    def each(self, key: str, parse: Callable[[_Reader], T]) -> dict[str, T] | None:
        """{name: parse(the value's reader)} for a mapping whose values must be mappings."""
        v = self.mapping(key)
        if v is None:
            return None
        for name, x in v.items():
            if not isinstance(x, dict):
                raise self.fail(f"{key}.{name}", "a mapping", x)
        return {name: parse(_Reader(self.where, x, self._name(f"{key}.{name}"))) for name, x in v.items()}


def _metrics(r: _Reader) -> dict[str, Metric]:
    return metrics_from_json(r.d)


@dataclass(frozen=True)
class SetResult:
    """One evaluation set of a cell. `data`, `split`, `data_sha256`, `n`: None where a file did not record them."""

    kind: str  # "safety" | "helpfulness" | "over-refusal"
    data: str | None
    split: str | None
    data_sha256: str | None
    n: int | None
    metrics: dict[str, Metric]  # "<measure>.<judge or rule>" -> number, in the order written
    by_category: dict[str, dict[str, Metric]] | None = None  # safety sets: metric -> category -> rate
    judge_agreement: dict[str, dict[str, Any]] | None = None  # "a|b" -> ptst.metrics.Agreement.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "data": self.data, "split": self.split,
                             "data_sha256": self.data_sha256, "n": self.n, "metrics": _metrics_to_json(self.metrics)}
        if self.by_category is not None:
            d["by_category"] = {m: _metrics_to_json(per) for m, per in self.by_category.items()}
        if self.judge_agreement is not None:
            d["judge_agreement"] = self.judge_agreement
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str | Path, label: str) -> SetResult:
        return cls._read(_Reader(where, d, f"evals.{label}"))

    @classmethod
    def _read(cls, r: _Reader) -> SetResult:
        kind = r.d.get("kind", "safety")  # a set without a kind reads as safety, as the report always did
        if not isinstance(kind, str):
            raise r.fail("kind", "a string", kind)
        return cls(kind, r.str_or_none("data"), r.str_or_none("split"), r.str_or_none("data_sha256"),
                   r.int_or_none("n"), _metrics(r.inner("metrics")), r.each("by_category", _metrics),
                   r.each("judge_agreement", lambda a: dict(a.d)))


@dataclass(frozen=True)
class Fingerprints:
    """sha256 of the rendered train and test prompt formats (train: None for the no-fine-tuning cell)."""

    train: str | None = None
    test: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train, "test": self.test}


@dataclass(frozen=True)
class MetricsDoc:
    """A whole metrics.json. `cell`: the labels the grid gave the cell (experiment, train_template, test_template,
    seed, checkpoint, train_cell, train_fingerprint, train/test_safety_prompt), or only test_template for a
    standalone `ptst eval`; `key`: sha256 of the evaluation key (eval.json)."""

    ptst_version: str | None
    cell: dict[str, Any]
    key: str | None
    model: str | None
    adapter_hash: str | None
    template_fingerprints: Fingerprints
    judges: dict[str, str]  # judge -> version
    judge_keys: dict[str, str] | None  # judge -> judge_key; None in files from before it was recorded
    evals: dict[str, SetResult]
    key_scheme: int | None = None  # 2: `key` is composed from `inputs` (ptst.runs.keys); None: a hash of names
    inputs: dict[str, Any] | None = None  # ptst.runs.keys.CellInputs.to_dict()

    @property
    def test_template(self) -> str:
        return str(self.cell["test_template"])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ptst_version": self.ptst_version, "cell": self.cell, "key": self.key,
                             "model": self.model, "adapter_hash": self.adapter_hash,
                             "template_fingerprints": self.template_fingerprints.to_dict(), "judges": self.judges}
        if self.judge_keys is not None:
            d["judge_keys"] = self.judge_keys
        d["evals"] = {label: s.to_dict() for label, s in self.evals.items()}
        if self.key_scheme is not None:
            d["key_scheme"] = self.key_scheme
        if self.inputs is not None:
            d["inputs"] = self.inputs
        return d

    @classmethod
    def from_dict(cls, doc: Any, where: str | Path) -> MetricsDoc:
        """The document checked: a PtstError naming `where` (the file) and the key when its shape is wrong."""
        if not isinstance(doc, dict) or not isinstance(doc.get("cell"), dict):
            raise PtstError(f"{where}: not a ptst metrics.json (no 'cell' mapping)")
        test = doc["cell"].get("test_template")
        if not test:
            raise PtstError(f"{where}: cell.test_template is missing")
        if not isinstance(test, str):
            raise PtstError(f"{where}: cell.test_template must be a template name, got {type(test).__name__}")
        r = _Reader(where, doc)
        fps = r.inner("template_fingerprints")
        return cls(ptst_version=r.str_or_none("ptst_version"), cell=dict(doc["cell"]), key=r.str_or_none("key"),
                   model=r.str_or_none("model"), adapter_hash=r.str_or_none("adapter_hash"),
                   template_fingerprints=Fingerprints(fps.str_or_none("train"), fps.str_or_none("test")),
                   judges=r.strings("judges") or {}, judge_keys=r.strings("judge_keys"),
                   evals=r.each("evals", SetResult._read) or {}, key_scheme=r.int_or_none("key_scheme"),
                   inputs=r.mapping("inputs"))

    @classmethod
    def read(cls, path: str | Path) -> MetricsDoc:
        """metrics.json from disk; missing, invalid JSON or a wrong shape is one PtstError naming the file."""
        return cls.from_dict(read_json(path), path)
