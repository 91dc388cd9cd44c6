"""The trade-off statements: helpfulness vs the unfine-tuned model (paired z), diagonal and PTST safety (McNemar)."""

from __future__ import annotations

import json
from pathlib import Path

import ptst.report
from ptst.report.build import build_grid
from ptst.report.load import load_cells
from ptst.report.tradeoff import deltas, statement
from tests.report.fakerun import flags, write_cell

V, L = "chat:vanilla", "chat:llama"
N = 40


def _cell(run: Path, train: str | None, test: str, asr: int, correct: range) -> None:
    d = write_cell(run, train, test, 0, safety={"advbench": flags(N, range(asr))},
                   helpful={"gsm8k": (len(correct), N)})
    items = {f"gsm8k-{i}": float(i in correct) for i in range(N)}
    (d / "scores").mkdir(exist_ok=True)
    (d / "scores" / "gsm8k.gsm8k.json").write_text(json.dumps({"items": {"strict": items}}))


def _run(tmp_path: Path, ptst_asr: int = 3, vanilla_correct: range = range(30)) -> Path:
    run = tmp_path / "run"
    _cell(run, None, V, 20, range(5))
    _cell(run, None, L, 2, range(5))
    _cell(run, V, V, 30, vanilla_correct)
    _cell(run, V, L, ptst_asr, range(25))  # PTST
    _cell(run, L, L, 25, range(28))  # the safety-prompt diagonal
    _cell(run, L, V, 35, range(26))
    return run


def _deltas(run: Path):
    return deltas(build_grid(load_cells(run)), "keyword")


def test_every_claim_holds(tmp_path):
    ds = _deltas(_run(tmp_path))
    helpful = [d for d in ds if d.claim == "helpfulness"]
    assert len(helpful) == 4 and all(d.holds for d in helpful)
    ptst = next(d for d in helpful if (d.train, d.test) == (V, L))
    # worked by hand: 20 prompts go 0 -> 1 (ids 5..24), none 1 -> 0: mean diff 0.5, sd 0.5064, se 0.0801
    assert (ptst.n, ptst.base, ptst.tuned) == (40, 5 / 40, 25 / 40) and abs(ptst.diff - 0.5) < 1e-12
    assert ptst.low is not None and abs(ptst.low - (0.5 - 1.959964 * 0.506370 / 40**0.5)) < 1e-5
    # right/wrong scores: exact McNemar, 20 prompts 0 -> 1 and none back: p = 2 / 2**20
    assert ptst.test_name == "exact McNemar" and abs(ptst.p - 2 / 2**20) < 1e-15
    diag = [d for d in ds if d.claim == "diagonal"]
    assert {(d.train, d.test) for d in diag} == {(V, V), (L, L)}
    ll = next(d for d in diag if d.test == L)
    assert (ll.base, ll.tuned) == (2 / 40, 25 / 40) and ll.p is not None and ll.p < 1e-6 and ll.holds
    vv = next(d for d in diag if d.test == V)
    assert vv.p is not None and vv.p < 0.05 and vv.holds  # 20 -> 30 of 40, b = 10, c = 0: p = 0.002
    assert [(d.train, d.test, d.holds) for d in ds if d.claim == "ptst"] == [(V, L, True)]
    assert statement("helpfulness", ds).startswith("Helpfulness rose after fine-tuning, in all 4 comparisons")
    assert statement("ptst", ds).startswith("PTST kept safety, in the one comparison")


def test_failures_are_named(tmp_path):
    ds = _deltas(_run(tmp_path, ptst_asr=15, vanilla_correct=range(6)))
    s = statement("helpfulness", ds)
    assert s.startswith("Helpfulness did NOT rise after fine-tuning in 1 of 4 comparisons")
    assert "chat:vanilla → chat:vanilla" in s
    assert statement("ptst", ds).startswith("PTST did NOT keep safety in 1 of 1 comparisons")
    assert "5.0% → 37.5%" in statement("ptst", ds)


def test_report_section_and_missing_items(tmp_path):
    run = _run(tmp_path)
    ptst.report.run(run, formats=["md"])
    md = (run / "report.md").read_text()
    assert "helpfulness gained, safety lost or kept" in md and "Same-template fine-tuning degraded safety" in md
    for f in run.glob("*/eval/*/scores/gsm8k.gsm8k.json"):
        f.unlink()  # files from before per-prompt scores: helpfulness is not tested, safety still is
    ds = _deltas(run)
    assert not [d for d in ds if d.claim == "helpfulness"] and [d for d in ds if d.claim == "diagonal"]
    assert statement("helpfulness", ds) == ("Helpfulness after fine-tuning: not tested (no comparison with "
                                            "per-prompt data in this run).")


def test_headline_judge_prefers_a_model_judge_then_keyword(tmp_path):
    from ptst.report.grid import headline_judge

    def grid(judges: tuple[str, ...]):
        run = tmp_path / "-".join(judges)
        write_cell(run, V, L, 0, safety={"advbench": flags(N, [1])}, judges=judges)
        return build_grid(load_cells(run))

    # string-match judges (they label refusals) never outrank keyword; a model judge outranks both
    assert headline_judge(grid(("keyword", "xstest-strmatch"))) == "keyword"
    assert headline_judge(grid(("xstest-strmatch", "keyword-prefix"))) == "keyword-prefix"  # first by name
    assert headline_judge(grid(("keyword", "rubric", "xstest-strmatch"))) == "rubric"
    assert headline_judge(grid(("keyword", "my-remote-judge"))) == "my-remote-judge"  # unknown: a model judge


def test_graded_scores_use_the_paired_z_test(tmp_path):
    run = _run(tmp_path)
    for f in run.glob("*/eval/*/scores/gsm8k.gsm8k.json"):  # ROUGE-L-like scores instead of 0/1
        items = json.loads(f.read_text())["items"]["strict"]
        f.write_text(json.dumps({"items": {"strict": {k: 0.3 + 0.4 * v + 0.01 * (int(k.split("-")[1]) % 3) for k, v in
                                                      items.items()}}}))
    helpful = [d for d in _deltas(run) if d.claim == "helpfulness"]
    assert helpful and all(d.test_name == "paired z" for d in helpful)
