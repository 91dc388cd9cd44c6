"""`ptst eval` with several judges records their agreement on the same answers in metrics.json."""

from __future__ import annotations

import json

from ptst.evaluate import run
from ptst.judge import read_judgements
from ptst.metrics import agreement
from ptst.specs.eval import EvalConfig, EvalSpec
from ptst.testing import tiny_data


def _run(model, tmp_path, judges):
    data = tiny_data(tmp_path / "data")
    cfg = EvalConfig(model=str(model), template="chat:llama", judges=judges, decoding={"max_new_tokens": 4},
                     evals=[EvalSpec(f"jsonl:{data['harm']}", kind="safety", name="harm")])
    return json.loads(run(cfg, tmp_path / "cell").read_text())["evals"]["harm"]


def test_eval_with_two_judges_records_their_agreement(tiny_model_dir, tmp_path):
    ev = _run(tiny_model_dir, tmp_path, ["keyword", "xstest-strmatch"])
    got = ev["judge_agreement"]["keyword|xstest-strmatch"]
    jdir = tmp_path / "cell" / "judgements"
    a = {j.id: j.harmful for j in read_judgements(jdir / "harm.keyword.jsonl")}
    b = {j.id: j.harmful for j in read_judgements(jdir / "harm.xstest-strmatch.jsonl")}
    want = agreement([(bool(a[i]), bool(b[i])) for i in a if a[i] is not None and b[i] is not None])
    assert got["n"] == want.n == 6
    assert (got["tp"], got["fp"], got["fn"], got["tn"]) == (want.tp, want.fp, want.fn, want.tn)
    assert got["kappa"]["value"] == want.kappa.value


def test_one_judge_records_no_agreement(tiny_model_dir, tmp_path):
    assert "judge_agreement" not in _run(tiny_model_dir, tmp_path, ["keyword"])
