"""What an evaluation cell computes for each kind of set, from its generations file: safety (every judge's
verdicts, ASR, refusal, judge agreement), helpfulness (the set's scorer) and over-refusal (refusal of benign
prompts by the judges that label refusals)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ptst import judge as J
from ptst import score as S
from ptst.errors import PtstError
from ptst.io import read_json
from ptst.metrics import judge_agreement, rate
from ptst.runs.layout import EvalDir
from ptst.score import scorer_names
from ptst.specs.eval import EvalConfig, EvalSpec


def set_judges(cfg: EvalConfig, spec: EvalSpec) -> list[str]:
    """The judges a set is judged by: every judge (safety), those that label refusals, else keyword
    (over-refusal), none (helpfulness)."""
    if spec.kind == "safety":
        return list(cfg.judges)
    if spec.kind == "over-refusal":
        return [j for j in cfg.judges if J.labels_refusals(j)] or ["keyword"]
    return []


def set_scorers(spec: EvalSpec, judges: list[str]) -> dict[str, str]:
    """The score files of a set (`asr-JUDGE`, `xstest-JUDGE`, or the helpfulness scorer) -> the scorer."""
    if spec.kind == "helpfulness":
        assert spec.scorer
        return {spec.scorer: spec.scorer}
    scorer = "asr" if spec.kind == "safety" else "xstest"
    return {f"{scorer}-{j}": scorer for j in judges}


def _rate_from_labels(judgements: list[Any], label: str, ids: set[str]) -> dict[str, Any]:
    r, _ = rate(None if j.harmful is None else j.label == label for j in judgements if j.id in ids)
    return r.to_dict()


def _safety(cfg: EvalConfig, spec: EvalSpec, gen: Path, out: EvalDir, ids: list[str], up: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    cats: dict[str, Any] = {}
    judged: dict[str, Any] = {}
    wanted = set(ids)
    for name in set_judges(cfg, spec):
        jpath = J.run(cfg.judge_config(name), gen, out.judgements(spec.label, name), ids=ids, upstream=up)
        judged[name] = [j for j in J.read_judgements(jpath) if j.id in wanted]
        spath = S.run(S.ScoreConfig("asr", judgements=str(jpath)), gen,
                      out.scores(spec.label, f"asr-{name}"), ids=ids)
        doc = read_json(spath)
        metrics[f"asr.{name}"] = doc["asr"]
        refusals = J.labels_refusals(name)
        if refusals:  # only judges that label refusals: a rubric or classifier never says "refusal"
            metrics[f"refusal.{name}"] = _rate_from_labels(J.read_judgements(jpath), "refusal", set(ids))
        if "mean_score" in doc and not refusals:
            metrics[f"mean_score.{name}"] = doc["mean_score"]
        if doc.get("unscored"):
            metrics[f"unscored.{name}"] = doc["unscored"]
        if "by_category" in doc:
            cats[f"asr.{name}"] = {c: v["asr"] for c, v in doc["by_category"].items()}
    body = {"metrics": metrics, "by_category": cats}
    if len(judged) > 1:  # several judges on the same answers: how far their verdicts agree (Cohen's kappa)
        body["judge_agreement"] = judge_agreement(judged)
    return body


def _helpfulness(cfg: EvalConfig, spec: EvalSpec, gen: Path, out: EvalDir, ids: list[str], up: str
                 ) -> dict[str, Any]:
    assert spec.scorer
    doc = read_json(S.run(S.ScoreConfig(spec.scorer), gen, out.scores(spec.label, spec.scorer), ids=ids))
    return {"metrics": S.helpfulness_metrics(spec.scorer, doc)}  # each scorer maps its own doc (its registration)


def _over_refusal(cfg: EvalConfig, spec: EvalSpec, gen: Path, out: EvalDir, ids: list[str], up: str
                  ) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name in set_judges(cfg, spec):
        jpath = J.run(cfg.judge_config(name), gen, out.judgements(spec.label, name), ids=ids, upstream=up)
        doc = read_json(S.run(S.ScoreConfig("xstest", judgements=str(jpath)), gen,
                              out.scores(spec.label, f"xstest-{name}"), ids=ids))
        if "safe" in doc:
            metrics[f"over_refusal.{name}"] = doc["safe"]["over_refusal"]
        if "unsafe" in doc:
            metrics[f"refusal_unsafe.{name}"] = doc["unsafe"]["refusal"]
    return {"metrics": metrics}


def check_spec(spec: EvalSpec, where: str) -> None:
    """Refuse, before anything is generated, a helpfulness set whose scorer is not a helpfulness scorer."""
    known = scorer_names("helpfulness")
    if spec.kind == "helpfulness" and spec.scorer not in known:
        raise PtstError(f"{where}: scorer {spec.scorer!r} is not a helpfulness scorer (known: {', '.join(known)})")


# kind -> the body of a set's entry in metrics.json (`metrics`, and `by_category` / `judge_agreement` for safety),
# from (cell config, set, generations file, cell directory, the sample's ids, the generations file's key hash)
KINDS: dict[str, Callable[[EvalConfig, EvalSpec, Path, EvalDir, list[str], str], dict[str, Any]]] = {
    "safety": _safety, "helpfulness": _helpfulness, "over-refusal": _over_refusal}
