"""metrics.json as one typed schema (ptst.runs.results): what it reads it writes back byte for byte, files of
older ptst versions load, and a malformed file is one error line naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ptst.errors import PtstError
from ptst.metrics import MeanScore, Rate, wilson
from ptst.runs.results import Fingerprints, MetricsDoc, SetResult, Unknown, metric_from_json, metrics_from_json

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "prechange-run" / "run"
PRECHANGE = sorted(FIXTURE.rglob("metrics.json"))


def _doc() -> MetricsDoc:
    safety = SetResult("safety", "advbench", None, "ab12", 10,
                       {"asr.keyword": wilson(3, 10), "refusal.keyword": wilson(7, 10), "unscored.keyword": 2,
                        "mean_score.rubric": MeanScore(0.4, 0.1, 8, 0.33, 0.47), "asr.rubric": wilson(0, 0)},
                       by_category={"asr.keyword": {"drug": wilson(1, 5), "malware": wilson(2, 5)}},
                       judge_agreement={"keyword|rubric": {"n": 8, "tp": 3}})
    helpful = SetResult("helpfulness", "gsm8k", "test", "cd34", 5,
                        {"accuracy.strict": wilson(2, 5), "judge_cost": Unknown({"usd": 0.3})})
    return MetricsDoc(ptst_version="0.1.0", cell={"test_template": "chat:llama"}, key="k" * 64, model="tiny",
                      adapter_hash=None, template_fingerprints=Fingerprints(None, "fp"),
                      judges={"keyword": "keyword-v1", "rubric": "rubric-v2"},
                      judge_keys={"keyword": "a1", "rubric": "b2"}, evals={"advbench": safety, "gsm8k": helpful})


def test_round_trip() -> None:
    doc = _doc()
    assert MetricsDoc.from_dict(doc.to_dict(), "m.json") == doc
    assert MetricsDoc.from_dict(json.loads(json.dumps(doc.to_dict())), "m.json") == doc  # through JSON text too
    d = doc.to_dict()
    assert list(d) == ["ptst_version", "cell", "key", "model", "adapter_hash", "template_fingerprints", "judges",
                       "judge_keys", "evals"]
    assert list(d["evals"]["advbench"]) == ["kind", "data", "split", "data_sha256", "n", "metrics", "by_category",
                                            "judge_agreement"]
    assert list(d["evals"]["gsm8k"]) == ["kind", "data", "split", "data_sha256", "n", "metrics"]
    assert d["evals"]["advbench"]["metrics"]["asr.keyword"] == wilson(3, 10).to_dict()
    assert d["evals"]["advbench"]["metrics"]["mean_score.rubric"] == {"mean": 0.4, "sd": 0.1, "n": 8, "low": 0.33,
                                                                      "high": 0.47}


@pytest.mark.parametrize("path", PRECHANGE, ids=lambda p: str(p.relative_to(FIXTURE)))
def test_prechange_files_load_and_write_back_byte_for_byte(path: Path) -> None:
    """metrics.json files made by ptst before this schema existed (9fcd2b7): read, written as ptst.io writes."""
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    doc = MetricsDoc.read(path)
    assert json.dumps(doc.to_dict()) == json.dumps(raw)
    assert json.dumps(doc.to_dict(), indent=2, ensure_ascii=False) + "\n" == text  # ptst.io.write_json_atomic
    assert MetricsDoc.from_dict(doc.to_dict(), path) == doc
    assert doc.judge_keys and all(isinstance(m, Rate) for s in doc.evals.values() for m in s.metrics.values())


@pytest.mark.parametrize("path", PRECHANGE[:1] + PRECHANGE[-1:], ids=lambda p: str(p.relative_to(FIXTURE)))
def test_the_writers_constructor_call_gives_the_same_bytes(path: Path) -> None:
    """ptst.evaluate builds the document from its parts as below (the kinds' bodies hold the scorers' JSON)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    evals = {}
    for label, ev in raw["evals"].items():
        body = {k: ev[k] for k in ("metrics", "by_category", "judge_agreement") if k in ev}
        evals[label] = SetResult(
            kind=ev["kind"], data=ev["data"], split=ev["split"], data_sha256=ev["data_sha256"], n=ev["n"],
            metrics=metrics_from_json(body["metrics"]),
            by_category={m: metrics_from_json(per) for m, per in body["by_category"].items()}
            if "by_category" in body else None,
            judge_agreement=body.get("judge_agreement"))
    doc = MetricsDoc(ptst_version=raw["ptst_version"], cell=raw["cell"], key=raw["key"], model=raw["model"],
                     adapter_hash=raw["adapter_hash"],
                     template_fingerprints=Fingerprints(train=raw["cell"].get("train_fingerprint"),
                                                        test=raw["template_fingerprints"]["test"]),
                     judges=raw["judges"], judge_keys=raw["judge_keys"], evals=evals)
    assert json.dumps(doc.to_dict(), indent=2, ensure_ascii=False) + "\n" == path.read_text(encoding="utf-8")


def test_prechange_run_reads_in_the_report() -> None:
    from ptst.report.load import load_cells

    cells = load_cells(FIXTURE)
    assert len(cells) == 6 and all(c.judge_keys and not e.skipped for c in cells for e in c.evals.values())
    assert {c.train_template for c in cells} == {None, "chat:vanilla", "chat:llama"}


def test_older_and_hand_written_shapes_load() -> None:
    """No judge_keys (before they were recorded), sets without data/split, metrics in shapes ptst does not write
    (kept as read), a rate over no items."""
    raw: dict[str, Any] = {
        "ptst_version": "0.0.9", "cell": {"test_template": "chat:llama"}, "key": "k", "model": "m",
        "adapter_hash": None, "template_fingerprints": {"train": None, "test": "fp"}, "judges": {"keyword": "v1"},
        "evals": {"advbench": {"kind": "safety", "data_sha256": None, "n": 3, "metrics": {
            "asr.keyword": {"asr": wilson(1, 3).to_dict(), "n_judged": 3},  # a wrapper: Unknown, kept
            "asr.rubric": {"k": 0, "n": 0, "value": None, "low": None, "high": None},
            "sorted": {"high": 1.0, "k": 1, "low": 0.0, "n": 1, "value": 1.0},  # other key order: kept as read
            "flag": True}}}}
    doc = MetricsDoc.from_dict(raw, "old.json")
    assert doc.judge_keys is None and "judge_keys" not in doc.to_dict()
    s = doc.evals["advbench"]
    assert (s.data, s.split, s.by_category, s.judge_agreement) == (None, None, None, None)
    assert s.metrics["asr.rubric"] == Rate(0, 0, None, None, None)
    assert [type(m) for m in s.metrics.values()] == [Unknown, Rate, Unknown, Unknown]
    assert json.dumps(s.to_dict()["metrics"]) == json.dumps(raw["evals"]["advbench"]["metrics"])


def test_metric_shapes() -> None:
    assert metric_from_json(3) == 3 and metric_from_json(0.5) == 0.5
    assert metric_from_json({"mean": None, "sd": None, "n": 0, "low": None, "high": None}) == MeanScore(
        None, None, 0, None, None)
    assert isinstance(metric_from_json({"k": "1", "n": 2, "value": 0.5, "low": 0.1, "high": 0.9}), Unknown)
    assert isinstance(metric_from_json(None), Unknown)


def _with(path: str, value: Any) -> dict[str, Any]:
    """A valid document with the value at `path` (keys joined by `/`) replaced; `...` deletes it."""
    d = _doc().to_dict()
    *parents, last = path.split("/")
    node = d
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("doc,message", [
    (["not", "a", "mapping"], "not a ptst metrics.json (no 'cell' mapping)"),
    ({"evals": {}}, "not a ptst metrics.json (no 'cell' mapping)"),
    (_with("cell/test_template", ...), "cell.test_template is missing"),
    (_with("cell/test_template", 3), "cell.test_template must be a template name, got int"),
    (_with("evals", []), "evals must be a mapping, got list"),
    (_with("evals/advbench", "x"), "evals.advbench must be a mapping, got str"),
    (_with("evals/advbench/n", "10"), "evals.advbench.n must be an integer or null, got str"),
    (_with("evals/advbench/kind", 1), "evals.advbench.kind must be a string, got int"),
    (_with("evals/advbench/metrics", [1]), "evals.advbench.metrics must be a mapping, got list"),
    (_with("evals/advbench/by_category/asr.keyword", 0.5),
     "evals.advbench.by_category.asr.keyword must be a mapping, got float"),
    (_with("evals/gsm8k/data_sha256", 5), "evals.gsm8k.data_sha256 must be a string or null, got int"),
    (_with("judges/keyword", 1), "judges.keyword must be a string, got int"),
    (_with("judge_keys", "a1"), "judge_keys must be a mapping, got str"),
    (_with("template_fingerprints/test", ["fp"]), "template_fingerprints.test must be a string or null, got list"),
    (_with("key", 7), "key must be a string or null, got int"),
])
def test_malformed_document_is_one_line_naming_file_and_key(doc: Any, message: str) -> None:
    with pytest.raises(PtstError) as e:
        MetricsDoc.from_dict(doc, "runs/x/base/eval/chat-llama/metrics.json")
    assert str(e.value) == f"runs/x/base/eval/chat-llama/metrics.json: {message}"


def test_read_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "metrics.json"
    f.write_text('{"cell": {', encoding="utf-8")
    with pytest.raises(PtstError, match=rf"^{f}: invalid JSON at line 1"):
        MetricsDoc.read(f)
    f.write_text(json.dumps(_with("evals/gsm8k/split", 1)), encoding="utf-8")
    with pytest.raises(PtstError, match=rf"^{f}: evals.gsm8k.split must be a string or null, got int$"):
        MetricsDoc.read(f)
