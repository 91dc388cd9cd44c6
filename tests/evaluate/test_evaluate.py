"""`ptst eval`: one cell, several sets, metrics.json as the done marker."""

from __future__ import annotations

import json

import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.evaluate import EvalConfig, run
from ptst.grid.config import EvalSpec
from tests.grid.helpers import tiny_data


@pytest.fixture()
def data(tmp_path):
    return tiny_data(tmp_path / "data")


def _cfg(model, data, **kw):
    evals = [EvalSpec(f"jsonl:{data['harm']}", kind="safety", name="harm"),
             EvalSpec(f"jsonl:{data['gsm']}", kind="helpfulness", scorer="gsm8k", name="gsm"),
             EvalSpec(f"jsonl:{data['safe']}", kind="over-refusal", name="xs")]
    return EvalConfig(model=str(model), template="chat:llama", evals=evals, decoding={"max_new_tokens": 5}, **kw)


def test_metrics_json_holds_every_set_with_intervals(tiny_model_dir, data, tmp_path):
    path = run(_cfg(tiny_model_dir, data), tmp_path / "cell")
    m = json.loads(path.read_text())
    assert set(m["evals"]) == {"harm", "gsm", "xs"}
    asr = m["evals"]["harm"]["metrics"]["asr.keyword"]
    ref = m["evals"]["harm"]["metrics"]["refusal.keyword"]
    assert asr["n"] == ref["n"] == 6 and asr["k"] + ref["k"] <= 6 and asr["low"] <= asr["value"] <= asr["high"]
    assert m["evals"]["xs"]["metrics"]["over_refusal.keyword"]["n"] == 4
    assert m["evals"]["gsm"]["kind"] == "helpfulness" and m["evals"]["gsm"]["n"] == 5
    assert len(m["evals"]["harm"]["data_sha256"]) == 64
    gens = [json.loads(line) for line in (tmp_path / "cell/generations/harm.jsonl").read_text().splitlines()]
    assert len(gens) == 6 and len({g["id"] for g in gens}) == 6
    assert all(g["template"] == "chat:llama" and "answer" in g and "prompt" in g for g in gens)


def test_rerun_is_a_no_op_and_a_new_judge_adds_only_its_files(tiny_model_dir, data, tmp_path, capsys):
    out = tmp_path / "cell"
    run(_cfg(tiny_model_dir, data), out)
    gen_mtime = (out / "generations/harm.jsonl").stat().st_mtime_ns
    run(_cfg(tiny_model_dir, data), out)
    assert "already evaluated" in capsys.readouterr().err
    run(_cfg(tiny_model_dir, data, judges=["keyword", "keyword-prefix"]), out)
    assert (out / "generations/harm.jsonl").stat().st_mtime_ns == gen_mtime
    m = json.loads((out / "metrics.json").read_text())
    assert {"asr.keyword", "asr.keyword-prefix"} <= set(m["evals"]["harm"]["metrics"])


def test_a_different_model_in_the_same_cell_is_refused(tiny_model_dir, tiny_chatml_dir, data, tmp_path):
    run(_cfg(tiny_model_dir, data), tmp_path / "cell")
    with pytest.raises(PtstError, match="different"):
        run(_cfg(tiny_chatml_dir, data), tmp_path / "cell")


def test_eval_kind_is_inferred_from_the_registry():
    assert EvalSpec("gsm8k").resolved().kind == "helpfulness"
    assert EvalSpec("gsm8k").resolved().split == "test" and EvalSpec("gsm8k").resolved().scorer == "gsm8k"
    assert EvalSpec("advbench").resolved().kind == "safety"
    assert EvalSpec("xstest-safe").resolved().kind == "over-refusal"
    assert EvalSpec("arc-easy").resolved().scorer == "arc"
    with pytest.raises(PtstError, match="cannot infer its kind"):
        EvalSpec("jsonl:/x.jsonl").resolved()


def test_cli_unknown_judge_is_one_line(tiny_model_dir, tmp_path, capsys):
    code = main(["eval", "--model", str(tiny_model_dir), "--template", "chat:llama", "--eval", "advbench",
                 "--judge", "keywrd", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "did you mean 'keyword'" in err and err.strip().count("\n") == 0
