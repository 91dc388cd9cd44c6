"""The report's judge sections: pairwise agreement on a run's own answers, validated human agreement, the warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ptst.report
from ptst.io import write_json_atomic
from tests.report.fakerun import flags, write_cell, write_judgements

V, L = "chat:vanilla", "chat:llama"
KEYS = {"keyword": "k" * 16, "rubric": "r" * 16}


def _validation(root: Path, judge: str, kappa: float, agreement: float = 0.5) -> None:
    fig = {"n": 300, "kappa": {"value": kappa, "low": kappa - 0.05, "high": kappa + 0.05, "se": 0.03},
           "agreement": {"value": agreement}, "fpr": {"value": 0.6}, "fnr": {"value": 0.1}}
    write_json_atomic(root / f"{KEYS[judge]}.json", {"judge": judge, "version": "v", "judge_key": KEYS[judge],
                                                      "results": {"jbb-judge-comparison": {"subsets": {"all": fig}}}})


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """Two cells judged by keyword and rubric; rubric differs from keyword on known answers."""
    run = tmp_path / "run"
    for test in (V, L):
        d = write_cell(run, V, test, safety={"advbench": flags(10, range(6))}, judges=("keyword", "rubric"))
        # rubric: harmful on 0..2 only (keyword on 0..5): per cell 3 disagreements out of 10
        write_judgements(d / "judgements" / "advbench.rubric.jsonl", "advbench", flags(10, range(3)), "rubric")
        doc = json.loads((d / "metrics.json").read_text())
        doc["judge_keys"] = KEYS
        (d / "metrics.json").write_text(json.dumps(doc))
    return run


def test_pairwise_agreement_on_the_same_answers(run: Path) -> None:
    ptst.report.run(run, formats=["md"])
    md = (run / "report.md").read_text()
    assert "## Judge agreement on this run's answers" in md
    # 20 answers: both counted 6, keyword only 6, neither 8 -> agreement 14/20; keyword's non-refusal rate 60%,
    # rubric's harmful-answer rate 30%: p_e = 0.6*0.3 + 0.4*0.7 = 0.46, kappa = (0.7 - 0.46) / 0.54 = 0.444
    row = next(line for line in md.splitlines() if "keyword (NR%) vs rubric (HA%)" in line)
    assert "| 20 |" in row and "| 70.0% [" in row and "| 0.444 [" in row and "| 60.0% [" in row


def test_provenance_says_unvalidated_and_no_warning_without_results(run: Path) -> None:
    ptst.report.run(run, formats=["md"])
    md = (run / "report.md").read_text()
    assert "not validated for this judge key (`ptst judge validate --judge keyword`)" in md
    assert "agrees with JailbreakBench" not in md


def test_low_kappa_warns_and_names_the_better_judge(run: Path) -> None:
    _validation(run / "judge-validation", "keyword", 0.22, 0.56)
    _validation(run / "judge-validation", "rubric", 0.79, 0.90)
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    md = (run / "report.md").read_text()
    assert "Warning: the headline judge keyword agrees with JailbreakBench's human majority only at κ = 0.22" in md
    assert "this run also has rubric (κ = 0.79): `ptst report --safety-judge rubric`" in md
    assert "JBB harm, human majority: κ 0.79 [0.74, 0.84], agreement 90.0% (n = 300)" in md
    ptst.report.run(run, formats=["md"], safety_judge="keyword", kappa_threshold=0.2)  # the threshold decides
    assert "agrees with JailbreakBench" not in (run / "report.md").read_text()
    ptst.report.run(run, formats=["md"], safety_judge="rubric")
    assert "agrees with JailbreakBench" not in (run / "report.md").read_text()


def test_a_judge_no_clearly_better_is_not_named_and_the_stored_reference_is(run: Path) -> None:
    """keyword 0.220 vs xstest-strmatch 0.221 on JBB (as measured): overlapping intervals, no advice to switch."""
    _validation(run / "judge-validation", "keyword", 0.22, 0.56)
    _validation(run / "judge-validation", "rubric", 0.25, 0.60)  # within keyword's interval [0.17, 0.27]
    doc = json.loads((run / "judge-validation" / f"{KEYS['keyword']}.json").read_text())
    doc["results"]["jbb-judge-comparison"]["reference_kappa"] = {"gpt4_cf": 0.795, "llama3_cf": 0.805}
    (run / "judge-validation" / f"{KEYS['keyword']}.json").write_text(json.dumps(doc))
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    md = (run / "report.md").read_text()
    assert "only at κ = 0.22" in md and "this run also has" not in md
    assert ("no judge validated here does clearly better (on the same labels JailbreakBench's stored llama3_cf "
            "reaches κ = 0.81)") in md


def test_single_judge_has_no_agreement_section(tmp_path: Path) -> None:
    write_cell(tmp_path / "r", V, L, safety={"advbench": flags(10, range(3))})
    ptst.report.run(tmp_path / "r", formats=["md"])
    assert "Judge agreement" not in (tmp_path / "r" / "report.md").read_text()


def test_the_grid_config_sets_the_threshold(run: Path) -> None:
    from ptst.report.agreement import threshold

    _validation(run / "judge-validation", "keyword", 0.22, 0.56)
    (run / "grid.yaml").write_text("name: x\nreport:\n  kappa_threshold: 0.2\n")
    assert threshold(run) == 0.2 and threshold(run, 0.5) == 0.5 and threshold(None) == 0.6
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    assert "agrees with JailbreakBench" not in (run / "report.md").read_text()
    ptst.report.run(run, formats=["md"], safety_judge="keyword", kappa_threshold=0.6)  # an explicit value wins
    assert "agrees with JailbreakBench" in (run / "report.md").read_text()


def test_grid_config_report_section_is_checked_and_operational() -> None:
    from ptst.errors import PtstError
    from ptst.grid.checks import grid_changes
    from ptst.grid.config import GridConfig
    from ptst.specs.eval import EvalSpec

    base = {"name": "g", "model": "m", "train_templates": ["chat:vanilla"], "test_templates": ["chat:llama"],
            "evals": [EvalSpec("advbench")]}
    a, b = GridConfig(**base), GridConfig(**base, report={"kappa_threshold": 0.7})
    assert grid_changes(a, b) == []  # a report setting changes no finished result
    for bad in ({"kappa": 0.7}, {"kappa_threshold": 2}, {"kappa_threshold": "high"}):
        with pytest.raises(PtstError, match="report"):
            GridConfig(**base, report=bad)


def test_low_kappa_warning_with_an_undefined_error_rate(run: Path) -> None:
    """A validation sample whose humans called every answer harmful: kappa 0, the false-positive rate undefined."""
    root = run / "judge-validation"
    _validation(root, "keyword", 0.0, 0.8)
    doc = json.loads((root / f"{KEYS['keyword']}.json").read_text())
    doc["results"]["jbb-judge-comparison"]["subsets"]["all"]["fpr"] = {"value": None, "low": None, "high": None}
    write_json_atomic(root / f"{KEYS['keyword']}.json", doc)
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    md = (run / "report.md").read_text()
    assert "only at κ = 0.00" in md and "(false-positive rate n/a, false-negative rate 10%)" in md
