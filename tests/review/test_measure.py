"""Each judge's error on a run's own reviewed answers, on a hand-built run labelled by a scripted reviewer.

The run (`fake_run`): training template chat:vanilla, tested under chat:vanilla (cell V) and chat:llama (cell L),
40 AdvBench answers each (ids advbench-0..39), judged by keyword (labels refusals), harmbench and llama-guard, and
every answer drawn into the sample (40 per stratum). The reviewer's labels and the judges' verdicts, by answer:

    cell V  harmful 0-9, refusal 10-19, harmless 20-39
            harmbench harmful: 0-7 (8 of 10 harmful), 10, 20, 21 (3 of 30 not harmful)
            keyword refusal:  10-18 (9 of 10 refusals), 20-23 (4 of 30 non-refusals)
            llama-guard harmful: 0-5 (6 of 10), 10-21 (12 of 30)
    cell L  harmful 0-4, refusal 5-34, harmless 35-39
            harmbench harmful: 0-3 (4 of 5), 5, 35 (2 of 35)
            keyword refusal:  5-34 (30 of 30), 35 (1 of 10)
            llama-guard harmful: 0-2 (3 of 5), 5-18 (14 of 35); 39 unscored

So, pooled over both cells, harmbench on "harmful?": 15 true positives, 12 flagged (sensitivity 12/15 = 0.80), 65
true negatives, 5 flagged (specificity 60/65 = 0.923); keyword on "refused?": sensitivity 39/40, specificity 35/40.
"""

from __future__ import annotations

import json
from pathlib import Path

from ptst.metrics import cohen_kappa, wilson
from ptst.review.labels import Label, add
from ptst.review.measure import HARMFUL, POOLED, REFUSED, has_review, measure
from ptst.review.sample import Sample, draw
from tests.report.fakerun import write_cell

V, L = "chat:vanilla", "chat:llama"
N = 40
SET = "advbench"
JUDGES = ("keyword", "harmbench", "llama-guard")


def _ids(*ranges: range | int) -> set[int]:
    return {i for r in ranges for i in (r if isinstance(r, range) else [r])}


# per design: the reviewer's label by answer index, and each judge's positive answers (keyword: "refusal")
DESIGNS = {
    "V": {"harmful": _ids(range(0, 10)), "refusal": _ids(range(10, 20)),
          "harmbench": _ids(range(0, 8), 10, 20, 21), "keyword": _ids(range(10, 19), range(20, 24)),
          "llama-guard": _ids(range(0, 6), range(10, 22)), "unscored": set()},
    "L": {"harmful": _ids(range(0, 5)), "refusal": _ids(range(5, 35)),
          "harmbench": _ids(range(0, 4), 5, 35), "keyword": _ids(range(5, 35), 35),
          "llama-guard": _ids(range(0, 3), range(5, 19)), "unscored": {39}},
}
CELLS = (("V", V, V), ("L", V, L))  # (design, train template, test template)


def truth(design: str, i: int) -> str:
    d = DESIGNS[design]
    return "harmful" if i in d["harmful"] else "refusal" if i in d["refusal"] else "harmless"


def _verdict(design: str, judge: str, i: int) -> dict:
    d = DESIGNS[design]
    if judge == "llama-guard" and i in d["unscored"]:
        label, harmful = "unscored", None
    elif judge == "keyword":
        label = "refusal" if i in d["keyword"] else "compliance"
        harmful = label == "compliance"
    else:
        harmful = i in d[judge]
        label = "harmful" if harmful else "safe"
    return {"id": f"{SET}-{i}", "judge": judge, "judge_version": "v1", "label": label, "harmful": harmful,
            "score": None, "explanation": "", "raw": "", "meta": {}}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def fake_run(tmp: Path, cells: tuple[tuple[str, str, str], ...] = CELLS) -> tuple[Path, dict[str, str]]:
    """The run, with every answer drawn into review/sample.json; returns (run, test-template design per cell)."""
    run = tmp / "run"
    designs = {}
    for design, train, test in cells:
        flags = [i not in DESIGNS[design]["keyword"] for i in range(N)]
        d = write_cell(run, train, test, safety={SET: flags}, judges=JUDGES)
        _jsonl(d / "generations" / f"{SET}.jsonl",
               [{"id": f"{SET}-{i}", "prompt": f"prompt {i}", "answer": f"{d.name} answer {i}"} for i in range(N)])
        for judge in JUDGES:
            _jsonl(d / "judgements" / f"{SET}.{judge}.jsonl", [_verdict(design, judge, i) for i in range(N)])
        designs[str(d.relative_to(run))] = design
    draw(run, per_stratum=N)
    return run, designs


def label_all(run: Path, designs: dict[str, str], reviewer: str = "alice", skip: frozenset = frozenset()) -> None:
    """The scripted reviewer: labels every sampled answer as its design says, but those `skip`ped
    ((cell, index) pairs)."""
    labels = []
    for item in Sample.read(run).items:
        i = int(item.answer_id.rsplit("-", 1)[1])
        if (item.cell, i) not in skip:
            labels.append(Label(item.rid, truth(designs[item.cell], i), reviewer, "2026-01-01T00:00:00+00:00"))
    add(run, labels)


def cell_of(designs: dict[str, str], test: str) -> str:
    return next(c for c in designs if c.endswith("/" + test.replace(":", "-")))


def labelled(tmp: Path) -> Path:
    run, designs = fake_run(tmp)
    label_all(run, designs)
    return run


def test_no_review_until_labelled(tmp_path: Path) -> None:
    run, _ = fake_run(tmp_path)
    assert not has_review(run)


def test_sensitivity_specificity_and_kappa_pooled(tmp_path: Path) -> None:
    """harmbench, "harmful?": tp 12, fn 3, fp 5, tn 60 (n = 80). Sensitivity 12/15, specificity 60/65.
    Kappa by hand: p_o = 72/80 = 0.9; judge positive 17/80, truth positive 15/80, so
    p_e = (17·15 + 63·65) / 80² = 4350/6400 = 0.6796875 and κ = (0.9 − 0.6796875) / (1 − 0.6796875) = 0.68780."""
    m = measure(labelled(tmp_path))
    assert (m.n_sample, m.n_reviewed, m.reviewers, m.judges) == (80, 80, {"alice": 80}, tuple(sorted(JUDGES)))
    e = m.error("harmbench", HARMFUL)
    assert e is not None and (e.n_pos, e.n_neg, e.unscored) == (15, 65, 0)
    assert e.sensitivity == wilson(12, 15) and e.specificity == wilson(60, 65)
    assert abs(e.sensitivity.value - 0.8) < 1e-12 and abs(e.specificity.value - 60 / 65) < 1e-12
    assert e.table.kappa.value is not None and abs(e.table.kappa.value - 0.2203125 / 0.3203125) < 1e-12
    assert abs(e.table.kappa.value - 0.68780) < 1e-5
    assert e.table.kappa == cohen_kappa(12, 5, 3, 60)
    k = m.error("keyword", REFUSED)
    assert k is not None and (k.n_pos, k.n_neg) == (40, 40)
    assert k.sensitivity == wilson(39, 40) and k.specificity == wilson(35, 40)
    kh = m.error("keyword", HARMFUL)  # keyword's harmful = no refusal phrase: every harmful answer, 21 others
    assert kh is not None and kh.sensitivity == wilson(15, 15) and kh.specificity == wilson(44, 65)


def test_refused_is_asked_only_of_refusal_judges(tmp_path: Path) -> None:
    m = measure(labelled(tmp_path))
    assert m.error("harmbench", REFUSED) is None and m.error("llama-guard", REFUSED) is None
    assert {e.question for e in m.errors if e.judge == "keyword"} == {REFUSED, HARMFUL}


def test_unscored_verdicts_are_left_out_and_counted(tmp_path: Path) -> None:
    m = measure(labelled(tmp_path))
    e = m.error("llama-guard", HARMFUL)
    assert e is not None and (e.n_pos, e.n_neg, e.unscored) == (15, 64, 1)
    assert e.sensitivity == wilson(9, 15) and e.specificity == wilson(38, 64)


def test_per_template_split(tmp_path: Path) -> None:
    m = measure(labelled(tmp_path))
    assert m.templates() == [L, V]
    v, ll = m.error("keyword", REFUSED, V), m.error("keyword", REFUSED, L)
    assert v is not None and ll is not None
    assert (v.n_pos, v.n_neg, v.sensitivity, v.specificity) == (10, 30, wilson(9, 10), wilson(26, 30))
    assert (ll.n_pos, ll.n_neg, ll.sensitivity, ll.specificity) == (30, 10, wilson(30, 30), wilson(9, 10))
    h = m.error("harmbench", HARMFUL, L)
    assert h is not None and (h.n_pos, h.n_neg, h.enough) == (5, 35, True)
    assert h.sensitivity == wilson(4, 5) and h.specificity == wilson(33, 35)
    assert m.error("harmbench", HARMFUL, POOLED) == m.error("harmbench", HARMFUL)


def test_too_few_in_a_template(tmp_path: Path) -> None:
    run, designs = fake_run(tmp_path)
    cell_l = cell_of(designs, L)
    label_all(run, designs, skip=frozenset({(cell_l, 0)}))  # one harmful answer under chat:llama left unlabelled
    m = measure(run)
    h = m.error("harmbench", HARMFUL, L)
    assert h is not None and (h.n_pos, h.n_neg, h.enough) == (4, 35, False)
    assert m.n_reviewed == 79 and m.n_labelled == 79


def test_ties_and_regenerated_answers_are_left_out(tmp_path: Path) -> None:
    run = labelled(tmp_path)
    items = Sample.read(run).items
    first, second = items[0], items[1]
    said = measure(run).truths[first.rid]
    add(run, [Label(first.rid, "harmless" if said != "harmless" else "refusal", "bob", "t")])
    # alice and bob now split on `first`: a tie, no label
    gens = run / second.cell / "generations" / f"{second.label}.jsonl"
    rows = [json.loads(x) for x in gens.read_text().splitlines()]
    for r in rows:
        if r["id"] == second.answer_id:
            r["answer"] = "regenerated"
    _jsonl(gens, rows)
    m = measure(run)
    assert (m.n_labelled, m.n_tied, m.n_stale, m.n_reviewed) == (80, 1, 1, 78)
    assert m.reviewers == {"alice": 80, "bob": 1}
    assert first.rid not in m.truths and second.rid not in m.truths
    json.dumps(m.to_dict())
