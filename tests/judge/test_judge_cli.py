"""`ptst judge` and `ptst judge validate` list the judge registry, in help texts and error messages."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ptst.cli import main
from ptst.judge import JUDGES, register_judge
from ptst.judge.base import judge_names, refusal_judge_names
from ptst.records import Judgement
from tests.judge.helpers import gen, write_gens


@pytest.fixture
def plain_judge(monkeypatch):
    """A judge that labels no refusals, registered for one test only (the registry holds a copy meanwhile)."""
    monkeypatch.setattr(JUDGES, "_items", dict(JUDGES.items()))

    @register_judge("plain-test-judge")
    class Plain:
        name, version = "plain-test-judge", "v0"

        def __init__(self, cfg):
            pass

        def judge(self, gens):
            return [Judgement(g.id, self.name, self.version, "not-harmful", False, 0.0) for g in gens]

    return "plain-test-judge"


def _help(argv, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def _listed(text: str, pattern: str) -> list[str]:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in help"
    return m.group(1).strip().split(", ")


def test_help_lists_exactly_the_registered_judges(plain_judge, monkeypatch, capsys):
    names = judge_names()
    assert plain_judge in names and {"keyword", "rubric", "llama-guard", "harmbench"} <= set(names)
    out = _help(["judge"], monkeypatch, capsys)
    assert _listed(out, r"judge name: (.*)") == names
    assert _listed(out, r"--empty-answer RULE\s+(.*?): an empty answer") == refusal_judge_names()
    assert plain_judge not in refusal_judge_names()
    out = _help(["judge", "validate"], monkeypatch, capsys)
    assert _listed(out, r"judge to validate \(repeat\): (.*)") == names


def test_errors_list_the_registered_judges(plain_judge, tmp_path, capsys):
    path = write_gens(tmp_path / "g.jsonl", [gen("1", "Sure.")])
    assert main(["judge", "--generations", str(path), "--judge", "no-such-judge"]) == 2
    assert f"known: {', '.join(judge_names())}" in capsys.readouterr().err
    assert main(["judge", "validate", "--judge", plain_judge, "--set", "xstest-completions"]) == 2
    err = capsys.readouterr().err
    assert f"none of {plain_judge} labels refusals ({', '.join(refusal_judge_names())} do)" in err


def test_listing_judges_scorers_and_eval_defaults_imports_no_torch():
    code = ("import sys; from ptst.judge.base import judge_names; from ptst.score import scorer_names; "
            "from ptst.data import eval_defaults; judge_names(); scorer_names(); eval_defaults('gsm8k'); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
