"""Synthetic run directories that follow docs/run-layout.md: metrics.json, eval.json and judgement JSONL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ptst.metrics import wilson
from ptst.runs.results import MetricsDoc, row_name

JUDGE_VERSION = "kw-1"


def slug(template: str) -> str:
    return template.replace(":", "-")


def cell_dir(run: Path, train: str | None, test: str, seed: int = 0, step: int | None = None,
             mix: str | None = None) -> Path:
    """As the grid names it: `<train>.s<seed>`, or `<train>+<mix>.s<seed>` for a safety-mixing row."""
    train_cell = "base" if train is None else f"{slug(train)}{'' if mix is None else '+' + mix}.s{seed}"
    return run / train_cell / "eval" / (slug(test) + (f"@step-{step}" if step is not None else ""))


def flags(n: int, harmful: Sequence[int]) -> list[bool | None]:
    """n prompts; the listed indices are judged harmful."""
    hs = set(harmful)
    return [i in hs for i in range(n)]


def _rate(k: int, n: int) -> dict:
    return wilson(k, n).to_dict()


def _safety(name: str, outcomes: Sequence[bool | None], judges: Sequence[str], cats: Sequence[str] | None) -> dict:
    scored = [o for o in outcomes if o is not None]
    k, n = sum(bool(o) for o in scored), len(scored)
    ev: dict = {"kind": "safety", "data": name, "split": None, "data_sha256": f"sha-{name}", "n": len(outcomes),
                "metrics": {}}
    for j in judges:
        ev["metrics"].update({f"asr.{j}": _rate(k, n), f"refusal.{j}": _rate(n - k, n)})
        if len(outcomes) > n:  # as ptst.evaluate writes it: a bare count, only when some answers were unscored
            ev["metrics"][f"unscored.{j}"] = len(outcomes) - n
    if cats is not None:
        per: dict = {}
        for c in sorted(set(cats)):
            sel = [o for o, cc in zip(outcomes, cats, strict=True) if cc == c and o is not None]
            per[c] = _rate(sum(bool(o) for o in sel), len(sel))
        ev["by_category"] = {f"asr.{j}": per for j in judges}
    return ev


def write_judgements(path: Path, name: str, outcomes: Sequence[bool | None], judge: str) -> None:
    rows = [{"id": f"{name}-{i}", "judge": judge, "judge_version": JUDGE_VERSION,
             "label": "unscored" if o is None else "compliance" if o else "refusal", "harmful": o,
             "score": None if o is None else float(bool(o)), "explanation": "", "raw": "", "meta": {}}
            for i, o in enumerate(outcomes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


Outcomes = dict[str, Sequence[bool | None]]
Counts = dict[str, tuple[int, int]]


def _flag(template: str | None) -> bool | None:
    from ptst.errors import PtstError
    from ptst.templates import get_template

    try:
        return None if template is None else get_template(template).safety_prompt
    except PtstError:
        return None


def write_cell(run: Path, train: str | None, test: str, seed: int = 0, *, step: int | None = None,
               safety: Outcomes | None = None, helpful: Counts | None = None, over: Counts | None = None,
               categories: dict[str, Sequence[str]] | None = None, judges: Sequence[str] = ("keyword",),
               experiment: str = "exp", judgement_files: bool = True,
               safety_flags: tuple[bool | None, bool | None] | None = None, mix: str | None = None) -> Path:
    """One finished evaluation cell shaped as `ptst.evaluate` writes it; `safety` maps eval -> per-prompt harmful
    flags (ids `<eval>-<i>`), judged alike by every judge in `judges`. The cell records the templates'
    safety-prompt flags (from the registry unless `safety_flags` gives them), as the grid runner does. `mix`: the
    safety-mixing row `train` was trained with (its label `<train> + <mix>`, as ptst.grid.cells.eval_config)."""
    d = cell_dir(run, train, test, seed, step, mix)
    evals: dict = {}
    for name, outcomes in (safety or {}).items():
        evals[name] = _safety(name, outcomes, judges, (categories or {}).get(name))
        for j in judges if judgement_files else ():
            write_judgements(d / "judgements" / f"{name}.{j}.jsonl", name, outcomes, j)
    for name, (k, n) in (helpful or {}).items():
        evals[name] = {"kind": "helpfulness", "data_sha256": f"sha-{name}", "n": n,
                       "metrics": {"accuracy.strict": _rate(k, n), "accuracy.flexible": _rate(min(n, k + 1), n)}}
    for name, (k, n) in (over or {}).items():
        evals[name] = {"kind": "over-refusal", "data_sha256": f"sha-{name}", "n": n,
                       "metrics": {f"over_refusal.{judges[0]}": _rate(k, n)}}
    train_cell = d.parent.parent.name
    flags = safety_flags or (_flag(train), _flag(test))
    versions = {j: JUDGE_VERSION for j in judges}
    labels = {"experiment": experiment, "train_template": row_name(train, mix), "test_template": test, "seed": seed,
              "checkpoint": step, "train_cell": train_cell, "train_fingerprint": None,
              "train_safety_prompt": flags[0], "test_safety_prompt": flags[1]}
    if mix is not None:
        labels["mix"] = mix
    doc = {"ptst_version": "0.1.0", "cell": labels,
           "key": f"key-{train_cell}-{d.name}", "model": "tiny-model", "adapter_hash": None,
           "template_fingerprints": {"train": None if train is None else f"fp-{train}", "test": f"fp-{test}"},
           "judges": versions, "evals": evals}
    d.mkdir(parents=True, exist_ok=True)
    key = {"model": "tiny-model", "adapter_hash": None, "template": test, "evals": [{"data": e} for e in evals],
           "decoding": {"temperature": 0}, "generate": {}, "seed": 0, "judges": versions, "ptst_version": "0.1.0"}
    (d / "eval.json").write_text(json.dumps(key), encoding="utf-8")
    checked = MetricsDoc.from_dict(doc, d / "metrics.json").to_dict()  # the shared schema's shape (data, split: null)
    (d / "metrics.json").write_text(json.dumps(checked, indent=2), encoding="utf-8")
    return d
