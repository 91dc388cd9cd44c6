"""`ptst eval`: one cell, several sets, metrics.json as the done marker."""

from __future__ import annotations

import json

import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.evaluate import run
from ptst.judge import register_judge
from ptst.records import Judgement
from ptst.specs.eval import EvalConfig, EvalSpec
from ptst.testing import tiny_data


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


def test_a_different_model_in_the_same_cell_supersedes_every_file(tiny_model_dir, tiny_chatml_dir, data, tmp_path,
                                                                 capsys):
    """Another model makes every answer stale: the old files move to superseded/ (never kept, never deleted),
    one line says why, and the new metrics.json records the new model."""
    out = tmp_path / "cell"
    old = json.loads(run(_cfg(tiny_model_dir, data), out).read_text())
    capsys.readouterr()
    new = json.loads(run(_cfg(tiny_chatml_dir, data), out).read_text())
    assert new["model"] != old["model"] and new["key"] != old["key"] and new["key_scheme"] == 2
    err = capsys.readouterr().err
    assert "harm: model dir:" in err and "moved generations/harm.jsonl" in err
    [moved] = (out / "superseded").iterdir()
    assert json.loads((moved / "metrics.json").read_text()) == old
    assert (moved / "generations/harm.jsonl").exists() and (moved / "judgements/harm.keyword.jsonl").exists()
    assert "harm: model dir:" in (moved / "why.txt").read_text()


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


def _safety_cfg(model, data, limit=None, **kw):
    evals = [EvalSpec(f"jsonl:{data['harm']}", kind="safety", name="harm", limit=limit),
             EvalSpec(f"jsonl:{data['safe']}", kind="over-refusal", name="xs", limit=limit)]
    return EvalConfig(model=str(model), template="chat:llama", evals=evals, decoding={"max_new_tokens": 5}, **kw)


def test_a_smaller_limit_judges_and_scores_only_its_own_sample(tiny_model_dir, data, tmp_path):
    out = tmp_path / "cell"
    run(_safety_cfg(tiny_model_dir, data, limit=3), out)
    m = json.loads(run(_safety_cfg(tiny_model_dir, data, limit=2), out).read_text())
    lines = (out / "generations/harm.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the generation store keeps the third answer...
    harm = m["evals"]["harm"]
    assert harm["n"] == 2 and harm["metrics"]["asr.keyword"]["n"] == 2  # ...but it is not scored
    assert harm["metrics"]["refusal.keyword"]["n"] == 2
    assert m["evals"]["xs"]["n"] == 2 and m["evals"]["xs"]["metrics"]["over_refusal.keyword"]["n"] == 2
    score = json.loads((out / "scores/harm.asr-keyword.json").read_text())
    assert score["generations"]["n"] == 2 and score["generations"]["n_in_file"] == 3


@register_judge("no-refusal-labels-test")
class _HarmfulLabels:
    name, version = "no-refusal-labels-test", "v0"

    def __init__(self, cfg):
        pass

    def judge(self, gens):
        return [Judgement(g.id, self.name, self.version, "not-harmful", False, 1.0) for g in gens]


def test_refusal_rates_only_for_judges_that_label_refusals(tiny_model_dir, data, tmp_path):
    cfg = _safety_cfg(tiny_model_dir, data, judges=["keyword", "no-refusal-labels-test", "xstest-strmatch"])
    m = json.loads(run(cfg, tmp_path / "cell").read_text())
    harm, xs = m["evals"]["harm"]["metrics"], m["evals"]["xs"]["metrics"]
    assert {"asr.keyword", "asr.no-refusal-labels-test", "asr.xstest-strmatch"} <= set(harm)
    assert "refusal.keyword" in harm and "refusal.xstest-strmatch" in harm
    assert "refusal.no-refusal-labels-test" not in harm  # it never says "refusal": no meaningless 0/n
    assert "mean_score.xstest-strmatch" not in harm
    assert {"over_refusal.keyword", "over_refusal.xstest-strmatch"} <= set(xs)
    assert "over_refusal.no-refusal-labels-test" not in xs


def test_cli_judge_options_reach_the_judge_config():
    from ptst.cli import build_parser
    from ptst.evaluate.cli import config_from_args

    args = build_parser().parse_args([
        "eval", "--model", "m", "--template", "chat:llama", "--eval", "advbench", "--out", "o",
        "--judge", "rubric", "--judge", "llama-guard", "--judge-base-url", "http://127.0.0.1:8000/v1",
        "--judge-api-model", "qwen", "--judge-api-key-env", "MY_KEY", "--judge-top-p", "none",
        "--judge-max-tokens", "512", "--judge-concurrency", "2", "--judge-no-cache",
        "--judge-model", "meta-llama/Llama-Guard-3-8B", "--judge-guard-version", "2", "--judge-batch-size", "4"])
    cfg = config_from_args(args)
    assert cfg.judges == ["rubric", "llama-guard"]
    assert cfg.judge == {"base_url": "http://127.0.0.1:8000/v1", "api_model": "qwen", "api_key_env": "MY_KEY",
                         "top_p": None, "max_tokens": 512, "concurrency": 2, "cache": False,
                         "model": "meta-llama/Llama-Guard-3-8B", "guard_version": 2, "batch_size": 4}
    plain = config_from_args(build_parser().parse_args(["eval", "--model", "m", "--template", "chat:llama",
                                                        "--eval", "advbench", "--out", "o"]))
    assert plain.judge == {} and plain.judges == ["keyword"]  # nothing given: JudgeConfig's defaults
    bad = build_parser().parse_args(["eval", "--model", "m", "--template", "t", "--eval", "advbench", "--out", "o",
                                     "--judge-max-tokens", "lots"])
    with pytest.raises(PtstError, match="--judge-max-tokens takes an integer or 'none', got 'lots'"):
        config_from_args(bad)


def test_rubric_judge_configured_from_the_cli_runs_against_an_endpoint(tiny_model_dir, data, tmp_path, capsys):
    from dataclasses import replace

    from ptst.cli import build_parser
    from ptst.evaluate.cli import config_from_args
    from tests.openai_stub import serve_stub

    def argv(url, model):
        return ["eval", "--model", str(tiny_model_dir), "--template", "chat:llama", "--eval", "advbench",
                "--out", "o", "--judge", "rubric", "--judge-base-url", url, "--judge-api-model", model,
                "--judge-max-retries", "0"]

    evals = [EvalSpec(f"jsonl:{data['harm']}", kind="safety", name="harm", limit=2)]
    out = tmp_path / "cell"
    with serve_stub(lambda body: "#thereason: fine\n#thescore: 1") as (url, state):
        cfg = replace(config_from_args(build_parser().parse_args(argv(url, "judge-a"))), evals=evals)
        m = json.loads(run(replace(cfg, decoding={"max_new_tokens": 3}), out).read_text())
        assert {b["model"] for b in state.requests} == {"judge-a"} and len(state.requests) == 2
        assert {b["max_tokens"] for b in state.requests} == {1024}
        harm = m["evals"]["harm"]["metrics"]
        assert harm["asr.rubric"]["k"] == 0 and harm["asr.rubric"]["n"] == 2 and "mean_score.rubric" in harm
        assert "refusal.rubric" not in harm
        # another judge model is another judge: the finished cell is judged again, the old verdicts moved aside
        cfg = replace(config_from_args(build_parser().parse_args(argv(url, "judge-b"))), evals=evals)
        gen = (out / "generations/harm.jsonl").read_bytes()
        run(replace(cfg, decoding={"max_new_tokens": 3}), out)
        assert {b["model"] for b in state.requests[2:]} == {"judge-b"} and len(state.requests) == 4
        assert (out / "generations/harm.jsonl").read_bytes() == gen  # the answers are kept: only the judge changed
    err = capsys.readouterr().err
    assert "already evaluated" not in err and "harm: judge rubric settings or version changed" in err
    [moved] = (out / "superseded").iterdir()
    assert {str(p.relative_to(moved)) for p in moved.rglob("*") if p.is_file()} == {
        "metrics.json", "eval.json", "judgements/harm.rubric.jsonl", "scores/harm.asr-rubric.json", "why.txt"}


def test_is_evaluated_compares_the_inputs(tiny_model_dir, data, tmp_path):
    """The grid's skip check and the eval stage's are one function: a changed judge setting is not 'done'."""
    from ptst.evaluate import is_evaluated

    cfg, out = _cfg(tiny_model_dir, data), tmp_path / "cell"
    assert not is_evaluated(cfg, out)
    done = run(cfg, out)
    assert is_evaluated(cfg, out)
    m = json.loads(done.read_text())
    m["inputs"]["sets"][0]["judges"] = {"keyword": "another-judge-setting"}
    m["key"] = "another"
    done.write_text(json.dumps(m))
    assert not is_evaluated(cfg, out)
    assert not is_evaluated(_cfg(tiny_model_dir, data, seed=1), out)


def test_a_single_stop_string_is_one_stop():
    from ptst.specs.eval import EvalConfig, EvalSpec

    def stops(stop):
        cfg = EvalConfig(model="m", template="chat:vanilla", evals=[EvalSpec("advbench")], decoding={"stop": stop})
        return cfg.decoding_for(EvalSpec("advbench")).stop

    assert stops("END") == ("END",)  # was ("E", "N", "D")
    assert stops(["END", "\n\n"]) == ("END", "\n\n")
