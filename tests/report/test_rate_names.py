"""A refusal detector's rate reads as a non-refusal rate, a harm judge's as a harmful-answer rate; "ASR" only where
the paper's term is quoted and explained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ptst.report
from ptst.judge import judge_names, refusal_judge_names
from ptst.report.rate_names import REVIEWED, measure_name, measure_short, paper_term
from ptst.report.tables import metric_title
from tests.report.fakerun import flags, write_cell

V, L = "chat:vanilla", "chat:llama"
ADV = {(None, L): [], (V, V): range(15), (V, L): [0, 20], (L, L): range(10)}


def _run(run: Path, judges: tuple[str, ...]) -> Path:
    for (tr, te), harmful in ADV.items():
        write_cell(run, tr, te, safety={"advbench": flags(50, harmful)}, helpful={"gsm8k": (12, 40)}, judges=judges)
    ptst.report.run(run)
    return run


def _bare_asr(text: str) -> list[str]:
    """Every "ASR" that is not the paper's term being quoted."""
    return [m.group(0) for m in re.finditer(r".{0,20}\bASRs?\b", text) if not m.group(0).endswith("the paper's ASR")]


@pytest.mark.parametrize("judge", ["keyword", "keyword-prefix", "xstest-strmatch", "rubric", "llama-guard",
                                   "harmbench", REVIEWED, "a-judge-from-elsewhere"])
def test_the_measure_follows_the_judge(judge: str) -> None:
    detector = judge in ("keyword", "keyword-prefix", "xstest-strmatch")
    assert measure_name(judge) == ("non-refusal rate" if detector else "harmful-answer rate")
    assert measure_short(judge) == ("NR%" if detector else "HA%")
    assert metric_title(f"asr.{judge}") == f"{measure_name(judge)} ({judge})"


def test_every_registered_refusal_detector_is_a_non_refusal_rate() -> None:
    for judge in judge_names():
        want = "non-refusal rate" if judge in refusal_judge_names() else "harmful-answer rate"
        assert measure_name(judge) == want, judge


def test_a_refusal_detector_run_says_non_refusal_rate_and_never_bare_asr(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", ("keyword",))
    md = (run / "report.md").read_text(encoding="utf-8")
    headline = md.split("\n\n")[1]
    assert headline.startswith("By the keyword judge's non-refusal rate (a refusal detector, not a harm judge), the "
                               "PTST ordering held: ")
    assert "### AdvBench — non-refusal rate (keyword)" in md and "harmful-answer rate" not in md
    assert "| NR% PTST | NR% diagonal |" in md
    assert "headline safety judge: keyword (non-refusal rate)." in md
    assert md.count("the paper's ASR") == 1 and _bare_asr(md) == []  # quoted and explained once, nowhere else
    assert paper_term(["keyword"]) in md
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "non-refusal rate (keyword)" in html and _bare_asr(html) == []
    tex = (run / "table1.tex").read_text(encoding="utf-8")
    assert "AdvBench: non-refusal rate (keyword)" in tex and tex.count("the paper's ASR") == 1 and _bare_asr(tex) == []


def test_a_harm_judge_column_is_a_harmful_answer_rate(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", ("keyword", "rubric"))
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "### AdvBench — harmful-answer rate (rubric)" in md and "### AdvBench — non-refusal rate (keyword)" in md
    assert md.split("\n\n")[1].startswith("By the rubric judge's harmful-answer rate, the PTST ordering held: ")
    assert "| HA% PTST | HA% diagonal |" in md
    row = next(r for r in md.splitlines() if r.startswith("| ptst | chat:vanilla → chat:llama |"))
    assert "| harmful-answer rate (rubric) | 50 | 0.0% | 4.0% |" in row  # the trade-off table names the measure
    assert "a significant rise of the rubric judge's harmful-answer rate over the unfine-tuned model" in md
    assert "keyword (NR%) vs rubric (HA%)" in md  # judge agreement: the two rates are not the same measure
    assert md.count("the paper's ASR") == 1 and _bare_asr(md) == []
