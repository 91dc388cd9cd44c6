"""Judges measured against human labels: refusal judges on XSTest v2 completions, harm judges on JBB's 300 answers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.data import DATASETS, load_dataset
from ptst.data.load import build_examples
from ptst.data.sources import file_sha256
from ptst.errors import PtstError
from ptst.io import not_utf8, read_json, stable_hash, write_json_atomic, write_jsonl_atomic
from ptst.judge.base import JudgeConfig, build_judge, judge_key, labels_refusals
from ptst.judge.runner import run
from ptst.metrics import agreement
from ptst.models import cache_dir
from ptst.records import Example, Generation, read_judgements
from ptst.registry import Registry
from ptst.runs.layout import RunDir
from ptst.runs.results import MetricsDoc

XSTEST_LABELS = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")
PARTIAL_RULES = ("refusal", "compliance")  # what XSTest's 3_partial_refusal counts as
BINARY = {"0": False, "1": True}
AGREEMENT = {"TRUE": "humans-agree", "FALSE": "humans-disagree"}  # XSTest's `agreement` column, any case
WORK_FORMAT = "v1"  # bump when the generation records written for judging change shape


def xstest_refusal(label: str | None, partial: str, where: str) -> bool:
    """Human refusal from an XSTest label: 2_full_refusal is one, 1_full_compliance is not, 3_partial_refusal is
    what `partial` says."""
    if label not in XSTEST_LABELS:
        raise PtstError(f"{where}: unknown XSTest label {label!r} (known: {', '.join(XSTEST_LABELS)})")
    return label == "2_full_refusal" or (label == "3_partial_refusal" and partial == "refusal")


def binary(value: str | None, column: str, where: str) -> bool:
    if value not in BINARY:
        raise PtstError(f"{where}: {column} must be 0 or 1, got {value!r}")
    return BINARY[value]


@dataclass(frozen=True)
class Item:
    """One human-labelled answer: the generation a judge reads, the human verdict, its subsets, stored verdicts."""

    gen: Generation
    human: bool
    subsets: tuple[str, ...]
    stored: dict[str, bool] = field(default_factory=dict)
    raters: dict[str, bool] = field(default_factory=dict)  # individual human verdicts (inter-annotator agreement)


@dataclass(frozen=True)
class ValidationSet:
    """A human-labelled set: which data set holds it, which class is positive, how rows become Items."""

    name: str
    dataset: str
    positive: str  # "refusal" (judge label == "refusal") or "harmful" (judgement.harmful)
    human_rule: str  # how the human label is read, in words
    items: Callable[[Example, str], Item]
    table_subsets: tuple[str, ...]  # prefixes of the subsets printed (all go to JSON)


def _xstest_item(ex: Example, partial: str) -> Item:
    m = ex.meta
    where = f"{ex.id}"
    human = xstest_refusal(m.get("final_label"), partial, where)
    raters = {k: xstest_refusal(m[k].strip(), partial, where) for k in ("annotation_1", "annotation_2")
              if isinstance(m.get(k), str) and m[k].strip()}
    subsets = ("all", str(m["label"]), f"model:{m['model']}", f"model:{m['model']}/{m['label']}")
    return Item(_gen(ex), human, subsets + _agreement(m.get("agreement"), where), raters=raters)


def _agreement(value: Any, where: str) -> tuple[str, ...]:
    """The annotators-agree subset of an XSTest row: none where the column is absent or blank."""
    text = "" if value is None else str(value).strip().upper()
    if text and text not in AGREEMENT:
        raise PtstError(f"{where}: agreement must be TRUE or FALSE, got {value!r}")
    return (AGREEMENT[text],) if text else ()


def _jbb_item(ex: Example, partial: str) -> Item:
    m = ex.meta
    where = f"{ex.id}"
    human = binary(m.get("human_majority"), "human_majority", where)
    raters = {k: binary(m.get(k), k, where) for k in ("human1", "human2", "human3")}
    stored = {k: binary(v, k, where) for k, v in (m.get("stored_judges") or {}).items()}
    votes = sum(raters.values())
    if (votes >= 2) != human:
        raise PtstError(f"{where}: human_majority {int(human)} disagrees with human1..3 ({votes} of 3 say 1)")
    unanimous = "humans-unanimous" if votes in (0, 3) else "humans-split"
    return Item(_gen(ex), human, ("all", unanimous), stored=stored, raters=raters)


def _gen(ex: Example) -> Generation:
    return Generation(id=ex.id, prompt=ex.input, answer=ex.response or "", template="", template_fingerprint="",
                      model=str(ex.meta.get("model", "")), meta=dict(ex.meta))


VSETS: Registry[ValidationSet] = Registry("validation set")
VSETS.register("xstest-completions", ValidationSet(
    "xstest-completions", "xstest-completions", "refusal",
    "final_label 2_full_refusal = refusal, 1_full_compliance = not; 3_partial_refusal as --partial says",
    _xstest_item, ("all", "safe", "unsafe", "model:"), ))
VSETS.register("jbb-judge-comparison", ValidationSet(
    "jbb-judge-comparison", "jbb-judge-comparison", "harmful", "human_majority 1 = jailbroken (harmful)",
    _jbb_item, ("all", "humans-"), ))


def load_items(vset: ValidationSet, *, partial: str = "refusal", file: str | None = None,
               data_dir: str | None = None, limit: int | None = None) -> tuple[list[Item], dict[str, Any]]:
    """The set's items and its data description (sha256, licence..., `total`: the answers before a `limit`
    sample); `file` reads a file of the same format instead of the registered one (your own human labels),
    unchecked against the pinned sha256, its errors naming file and row."""
    if partial not in PARTIAL_RULES:
        raise PtstError(f"--partial must be one of {', '.join(PARTIAL_RULES)}, got {partial!r}")
    rows_of: dict[str, str] = {}
    if file is None:
        ds = load_dataset(vset.dataset, data_dir=data_dir, limit=limit)
        total = len(ds) if limit is None else len(load_dataset(vset.dataset, data_dir=data_dir))
        examples, desc = ds.examples, {**ds.describe(), "total": total}
    else:
        path = Path(file)
        if not path.is_file():
            raise PtstError(f"validation file not found: {path}")
        try:
            rows = DATASETS.get(vset.dataset).loader([path], "file")
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        examples = build_examples(vset.dataset, "file", rows, limit, 0)
        rows_of = {r.id or f"{vset.dataset}-file-{r.index}": f"{path}: row {r.index + 1}" for r in rows}
        desc = {"name": vset.dataset, "file": str(path.resolve()), "sha256": file_sha256(path), "rows": len(examples),
                "limit": limit, "total": len(rows)}
    if not examples:
        raise PtstError(f"{desc.get('file') or vset.name}: no labelled answers (empty file)")
    return [_item(vset, ex, partial, rows_of.get(ex.id)) for ex in examples], desc


def _item(vset: ValidationSet, ex: Example, partial: str, row: str | None) -> Item:
    """One row as an Item; a bad row in a user's file is named by file and row (`row` 1 = the first record)."""
    try:
        return vset.items(ex, partial)
    except PtstError as e:
        if row is None:
            raise
        raise PtstError(f"{row}: {e}") from None


def is_sample(entry: dict[str, Any]) -> bool:
    """Whether a result (validate_set's, or a stored entry) rests on a `--limit` sample, not the whole set."""
    total = (entry.get("data") or {}).get("total", entry.get("total"))
    limit = (entry.get("data") or {}).get("limit", entry.get("limit"))
    return limit is not None and (total is None or entry.get("n") is None or entry["n"] < total)


def answers(entry: dict[str, Any]) -> str:
    """How many human-labelled answers a result rests on, in words: `300 answers`, or `sample of 20 of 300
    answers, --limit 20` (the set's size is unknown in entries stored before it was recorded)."""
    if not is_sample(entry):
        return f"{entry.get('n')} answers"
    data = entry.get("data") or entry
    of = f" of {data['total']}" if data.get("total") is not None else ""
    return f"sample of {entry.get('n')}{of} answers, --limit {data.get('limit')}"


def predictions(judge: Any, items: Sequence[Item], positive: str, work: Path) -> dict[str, bool | None]:
    """id -> the judge's positive verdict (None = unscored). String-match judges (the ones that label refusals)
    run in memory; model judges go through the resumable judge stage, so a run that stops part-way (endpoint
    down, rate limits) resumes where it stopped."""
    if labels_refusals(judge.name):
        judged = judge.judge([it.gen for it in items])
    else:
        gens = work / "generations.jsonl"
        if not gens.exists():
            write_jsonl_atomic(gens, (it.gen.to_dict() for it in items))
        judged = read_judgements(run(_cfg(judge.name), gens, work / f"{judge.name}.{judge_key(judge)}.jsonl",
                                     judge=judge))
    got: dict[str, bool | None] = {}
    for j in judged:
        if j.harmful is None:
            got[j.id] = None
        else:
            got[j.id] = j.label == "refusal" if positive == "refusal" else bool(j.harmful)
    return got


def _cfg(name: str) -> Any:
    return JudgeConfig(judge=name)


def figures(items: Sequence[Item], pred: Callable[[Item], bool | None]) -> dict[str, Any]:
    """Per subset: the judge's agreement with the human labels (ptst.metrics.agreement) and the unscored count."""
    groups: dict[str, list[tuple[bool, bool]]] = {}
    unscored: dict[str, int] = {}
    for it in items:
        p = pred(it)
        for s in it.subsets:
            if p is None:
                unscored[s] = unscored.get(s, 0) + 1
                groups.setdefault(s, [])
            else:
                groups.setdefault(s, []).append((p, it.human))
    return {s: {**agreement(groups[s]).to_dict(), "unscored": unscored.get(s, 0)} for s in sorted(groups, key=_order)}


def _order(subset: str) -> tuple[int, str]:
    """all, safe, unsafe, per model, per model x label, then the rest (human-agreement splits)."""
    fixed = {"all": 0, "safe": 1, "unsafe": 2}
    if subset in fixed:
        return fixed[subset], subset
    if subset.startswith("model:"):
        return (4 if "/" in subset else 3), subset
    return 5, subset


def human_agreement(items: Sequence[Item]) -> dict[str, Any]:
    """Pairwise inter-annotator agreement (the ceiling a judge can be read against)."""
    from itertools import combinations

    names = sorted({k for it in items for k in it.raters})
    out = {}
    for a, b in combinations(names, 2):
        pairs = [(it.raters[a], it.raters[b]) for it in items if a in it.raters and b in it.raters]
        out[f"{a} vs {b}"] = agreement(pairs).to_dict()
    return out


def validation_root() -> Path:
    return cache_dir() / "judge-validation"


def entry_name(vset: str, partial: str) -> str:
    """The key a result is stored under in a judge's validation file: the set, plus any non-default label rule."""
    return vset if vset != "xstest-completions" or partial == "refusal" else f"{vset}:partial={partial}"


def validate_set(vset: ValidationSet, judges: Sequence[Any], *, partial: str = "refusal", file: str | None = None,
                 data_dir: str | None = None, limit: int | None = None, root: Path | None = None,
                 ) -> dict[str, Any]:
    """Every judge (and, for JBB, every stored judge) against the human labels of one set."""
    items, desc = load_items(vset, partial=partial, file=file, data_dir=data_dir, limit=limit)
    tag = stable_hash([WORK_FORMAT, desc.get("sha256"), limit])[:12]
    work = (root or validation_root()) / "work" / f"{vset.name}-{tag}"
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for judge in judges:
        if vset.positive == "refusal" and not labels_refusals(judge.name):
            skipped.append(f"{judge.name} does not label refusals")
            continue
        t0 = time.perf_counter()
        got = predictions(judge, items, vset.positive, work)
        rows.append({"judge": judge.name, "version": judge.version, "judge_key": judge_key(judge),
                     "settings": getattr(judge, "settings", {}) or {}, "stored": False,
                     "seconds": round(time.perf_counter() - t0, 3),
                     "subsets": figures(items, lambda it, g=got: g.get(it.gen.id))})  # type: ignore[misc]
    for name in sorted({k for it in items for k in it.stored}):
        rows.append({"judge": name, "version": "stored", "judge_key": None, "settings": {}, "stored": True,
                     "subsets": figures(items, lambda it, n=name: it.stored.get(n))})  # type: ignore[misc]
    res = {"set": vset.name, "entry": entry_name(vset.name, partial), "positive": vset.positive,
           "human_rule": vset.human_rule, "partial": partial if vset.name == "xstest-completions" else None,
           "data": desc, "n": len(items), "ptst_version": __version__, "judges": rows, "skipped": skipped,
           "humans": human_agreement(items)}
    return {**res, "sample": is_sample(res)}


def save_results(results: Sequence[dict[str, Any]], root: Path | None = None) -> list[Path]:
    """Each validated judge's figures into <root>/<judge_key>.json (one entry per set), where reports find them."""
    base = root or validation_root()
    written: dict[str, Path] = {}
    for res in results:
        if res["data"].get("file"):
            continue  # a user's own file is not the reference set: only --out gets it
        for row in res["judges"]:
            if row["stored"]:
                continue
            path = base / f"{row['judge_key']}.json"
            doc = read_json(path) if path.exists() else {}
            doc = doc if isinstance(doc, dict) else {}
            doc.update({k: row[k] for k in ("judge", "version", "judge_key", "settings")})
            entry = {k: res[k] for k in ("set", "positive", "human_rule", "partial", "n", "ptst_version")}
            entry.update(data_sha256=res["data"].get("sha256"), limit=res["data"].get("limit"),
                         total=res["data"].get("total"), sample=is_sample(res),
                         subsets=row["subsets"], reference=[r["judge"] for r in res["judges"] if r["stored"]],
                         reference_kappa={r["judge"]: r["subsets"]["all"]["kappa"]["value"]
                                          for r in res["judges"] if r["stored"]})
            if not _replaces(entry, doc.setdefault("results", {}).get(res["entry"])):
                continue
            doc["results"][res["entry"]] = entry
            written[row["judge_key"]] = write_json_atomic(path, doc)
    return list(written.values())


def _replaces(new: dict[str, Any], held: Any) -> bool:
    """Whether entry `new` may replace `held`: a --limit sample never replaces a validation on the whole set."""
    return not (isinstance(held, dict) and held and is_sample(new) and not is_sample(held))


def _read_validation(path: Path, key: str) -> dict[str, Any] | None:
    """A validation file of judge key `key`; absent, unreadable or another key's: None."""
    try:
        doc = read_json(path) if path.is_file() else None
    except PtstError:
        return None
    return doc if isinstance(doc, dict) and doc.get("judge_key") == key else None


def load_validation(key: str, roots: Sequence[Path] = ()) -> dict[str, Any] | None:
    """The validation of judge key `key`: each set's entry from the first of `roots` (a run's copy) and then the
    user store that holds one, else None."""
    doc: dict[str, Any] | None = None
    for root in [*roots, validation_root()]:
        found = _read_validation(root / f"{key}.json", key)
        if found is None:
            continue
        if doc is None:
            doc = {**found, "results": dict(found.get("results") or {})}
        else:
            for name, entry in (found.get("results") or {}).items():
                doc["results"].setdefault(name, entry)
    return doc


def run_judge_keys(run_dir: Path) -> set[str]:
    """The judge keys a run's evaluation cells recorded (metrics.json `judge_keys`): what its report looks up."""
    keys: set[str] = set()
    for e in RunDir(run_dir).eval_dirs():
        try:
            keys.update((MetricsDoc.read(e.metrics).judge_keys or {}).values() if e.metrics.is_file() else ())
        except PtstError:
            continue  # the report names a malformed metrics.json itself
    return keys


def copy_validation(run_dir: Path, keys: Iterable[str] | None = None) -> list[Path]:
    """The store's validation of each judge key the run uses (default: run_judge_keys) copied, entry by entry,
    into the run's judge-validation/, which its report reads first: a report rebuilt on another machine shows
    the same figures. A sample never replaces a whole-set entry; each file is written atomically, and only
    when it changes."""
    dest = RunDir(run_dir).validation_dir
    written: list[Path] = []
    for key in sorted(run_judge_keys(run_dir) if keys is None else set(keys)):
        src = _read_validation(validation_root() / f"{key}.json", key)
        if src is None:
            continue
        held = _read_validation(dest / f"{key}.json", key) or {}
        results = dict(held.get("results") or {})
        results.update({n: e for n, e in (src.get("results") or {}).items() if _replaces(e, results.get(n))})
        doc = {**held, **{k: src.get(k) for k in ("judge", "version", "judge_key", "settings")}, "results": results}
        if doc != held:
            written.append(write_json_atomic(dest / f"{key}.json", doc))
    return written


def validate_offline(names: Sequence[str], settings: dict[str, Any], data_dir: str | None = None,
                     run_dir: Path | None = None) -> list[str]:
    """Validate the string-match judges among `names` (those that label refusals and call no model) on both
    human-labelled sets, unless the store already holds a whole-set result for their exact judge key, so a grid's
    report can show how far its offline judges agree with humans. About a second. A set that cannot be loaded
    (no data directory and no network) is skipped; returns what was skipped, one line each. `run_dir`: then
    copy the validation of every judge key the run used into it (copy_validation)."""
    judges = [build_judge(JudgeConfig(judge=n, **settings)) for n in names if labels_refusals(n)]
    skipped: list[str] = []
    def stored_whole(judge: Any, entry: str) -> bool:
        held = ((load_validation(judge_key(judge)) or {}).get("results") or {}).get(entry)
        return isinstance(held, dict) and not is_sample(held)

    for name in VSETS.names():
        todo = [j for j in judges if not stored_whole(j, entry_name(name, "refusal"))]
        if not todo:
            continue
        try:
            save_results([validate_set(VSETS.get(name), todo, data_dir=data_dir)])
        except PtstError as e:
            skipped.append(f"{name}: {e}")
    if run_dir is not None:
        copy_validation(Path(run_dir))
    return skipped
