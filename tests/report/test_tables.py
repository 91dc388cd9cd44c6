"""results.csv rows, the Table-1 markdown, diagonal/PTST marks and mean ± std over seeds, from synthetic runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import ptst.report
from tests.report.fakerun import cell_dir, flags, write_cell

CONTRACT = ["experiment", "seed", "train_template", "test_template", "checkpoint", "eval", "kind", "metric",
            "k", "n", "value", "low", "high", "ptst_cell"]
V, L = "chat:vanilla", "chat:llama"
ADV = {(None, V): [7], (None, L): [], (V, V): range(15), (V, L): [0, 20], (L, V): range(18), (L, L): range(10)}
ADV_KW = "AdvBench — non-refusal rate (keyword)"  # the keyword judge is a refusal detector
GSM = {(None, V): 10, (None, L): 10, (V, V): 14, (V, L): 16, (L, V): 13, (L, L): 15}


def grid_2x2(run: Path, skip: tuple = (), helpful: bool = True, categories: bool = False) -> Path:
    """chat:vanilla / chat:llama in training and testing, plus the no-fine-tuning row; 50 AdvBench, 40 GSM8K."""
    cats = {"advbench": (["malware", "drug", "phishing", "disinfo"] * 13)[:50]} if categories else None
    for (tr, te), harmful in ADV.items():
        if (tr, te) in skip:
            continue
        write_cell(run, tr, te, 0, safety={"advbench": flags(50, harmful)},
                   helpful={"gsm8k": (GSM[tr, te], 40)} if helpful else None, categories=cats)
    return run


def md_table(md: str, title: str) -> list[str]:
    """The table lines under the `### <title>` heading."""
    lines = md.splitlines()
    i = lines.index(f"### {title}") + 2
    out = []
    while i < len(lines) and lines[i].startswith("|"):
        out.append(lines[i])
        i += 1
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_results_csv_follows_the_contract(tmp_path: Path) -> None:
    run = grid_2x2(tmp_path / "run", categories=True)
    ptst.report.run(run)
    with open(run / "results.csv", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert header == CONTRACT + ["category"]  # the contract's columns, then the additive `category`
    rows = read_csv(run / "results.csv")
    # per cell: asr + refusal, strict + flexible accuracy, and 4 category rows of asr.keyword
    assert len(rows) == 6 * (2 + 2 + 4)
    ptst_row = [r for r in rows if (r["train_template"], r["test_template"], r["metric"], r["category"])
                == (V, L, "asr.keyword", "")]
    assert len(ptst_row) == 1
    r = ptst_row[0]
    assert (r["experiment"], r["seed"], r["checkpoint"], r["eval"], r["kind"]) == ("exp", "0", "", "advbench", "safety")
    assert (r["k"], r["n"], float(r["value"]), r["ptst_cell"]) == ("2", "50", 0.04, "true")
    assert float(r["low"]) == pytest.approx(0.0110, abs=1e-4) and float(r["high"]) == pytest.approx(0.1346, abs=1e-4)
    assert {x["ptst_cell"] for x in rows if (x["train_template"], x["test_template"]) != (V, L)} == {"false"}
    base = [x for x in rows if x["train_template"] == "" and x["test_template"] == V and x["metric"] == "asr.keyword"]
    # prompt 7 is the 8th of the malware/drug/phishing/disinfo cycle: disinfo
    assert [(x["k"], x["category"]) for x in base] == [("1", ""), ("1", "disinfo"), ("0", "drug"), ("0", "malware"),
                                                        ("0", "phishing")]
    assert sum(int(x["k"]) for x in base[1:]) == int(base[0]["k"])


def test_table_one_markdown_exact_cells(tmp_path: Path) -> None:
    run = grid_2x2(tmp_path / "run")
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    assert md_table(md, ADV_KW) == [
        "| train ↓ / test → | chat:vanilla | chat:llama |",
        "|---|---|---|",
        "| no fine-tuning | 2.0 [0.4, 10.5] | 0.0 [0.0, 7.1] |",
        "| chat:vanilla | **30.0 [19.1, 43.8]** | 4.0 [1.1, 13.5] † |",
        "| chat:llama | 36.0 [24.1, 49.9] | **20.0 [11.2, 33.0]** |",
    ]
    assert md_table(md, "GSM8K — accuracy (strict)")[2:] == [
        "| no fine-tuning | 25.0 [14.2, 40.2] | 25.0 [14.2, 40.2] |",
        "| chat:vanilla | **35.0 [22.1, 50.5]** | 40.0 [26.3, 55.4] † |",
        "| chat:llama | 32.5 [20.1, 48.0] | **37.5 [24.2, 53.0]** |",
    ]
    assert "**bold** = the same template in training and testing" in md and "† = PTST cell" in md
    assert md.index("GSM8K — accuracy (strict)") < md.index(ADV_KW)  # the paper's order


def test_only_diagonal_bold_and_only_no_safety_to_safety_cells_daggered(tmp_path: Path) -> None:
    run = tmp_path / "run"
    names = ["text:vanilla", "chat:alpaca", "chat:mpt", "chat:llama", "chat:llama-short"]
    for tr in names:
        for te in names:
            write_cell(run, tr, te, safety={"advbench": flags(20, [1])})
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    table = [r.strip("| ").split(" | ") for r in md_table(md, ADV_KW)]
    cols = table[0][1:]
    assert sorted(cols) == sorted(names) and [r[0] for r in table[2:]] == cols  # registry order both ways
    safety = {"chat:llama", "chat:llama-short"}  # chat:mpt's system prompt is not a safety prompt
    for row in table[2:]:
        tr = row[0]
        for te, cell in zip(cols, row[1:], strict=True):
            assert cell.startswith("**") == (tr == te), (tr, te, cell)
            assert cell.endswith("†") == (tr not in safety and te in safety), (tr, te, cell)


def test_mean_std_over_two_seeds_with_pooled_interval(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for seed, k in ((0, 10), (1, 20)):
        write_cell(run, V, V, seed, safety={"advbench": flags(50, range(k))})
        write_cell(run, V, L, seed, safety={"advbench": flags(50, [0])})
    write_cell(run, None, V, 0, safety={"advbench": flags(50, [])})
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, ADV_KW)
    # (10/50, 20/50): mean 30.0, sample std 14.1; pooled 30/100 -> Wilson [21.9, 39.6]
    assert rows[3] == "| chat:vanilla | **30.0 ± 14.1 [21.9, 39.6]** | 2.0 ± 0.0 [0.6, 7.0] † |"
    assert rows[2] == "| no fine-tuning | 0.0 [0.0, 7.1] | — |"
    assert "mean ± std across 2 seeds (sample std)" in md
    assert "The no-fine-tuning row is one evaluation (no training seed)." in md


def test_a_seed_missing_from_a_cell_is_said(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_cell(run, V, V, 0, safety={"advbench": flags(50, range(10))})
    write_cell(run, V, V, 1, safety={"advbench": flags(50, range(20))})
    write_cell(run, V, L, 0, safety={"advbench": flags(50, [0])})
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    assert md_table(md, ADV_KW)[2] == (
        "| chat:vanilla | **30.0 ± 14.1 [21.9, 39.6]** | 2.0 [0.4, 10.5] (1 of 2 seeds) † |")
    assert "1 grid cell(s) not evaluated (shown as —): chat:vanilla → chat:llama (seed 1)" in md


def test_partial_grid_single_seed_no_helpfulness(tmp_path: Path) -> None:
    run = grid_2x2(tmp_path / "run", skip=((L, V),), helpful=False)
    out = ptst.report.run(run)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md_table(md, ADV_KW)[4] == "| chat:llama | — | **20.0 [11.2, 33.0]** |"
    assert "±" not in md_table(md, ADV_KW)[3]
    assert "GSM8K" not in md
    assert "1 grid cell(s) not evaluated (shown as —): chat:llama → chat:vanilla (seed 0)" in md
    assert not list(out.glob("fig-scatter*")) and not list(out.glob("fig-checkpoints*"))
    assert list(out.glob("fig-heatmap-advbench-asr.keyword.png"))


def test_checkpoint_cells_stay_out_of_table_one_but_in_csv(tmp_path: Path) -> None:
    run = grid_2x2(tmp_path / "run")
    for step, k in ((10, 3), (20, 6)):
        write_cell(run, L, L, 0, step=step, safety={"advbench": flags(50, range(k))}, helpful={"gsm8k": (12, 40)})
        write_cell(run, V, L, 0, step=step, safety={"advbench": flags(50, [])}, helpful={"gsm8k": (12, 40)})
    out = ptst.report.run(run)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md_table(md, ADV_KW)[4] == "| chat:llama | 36.0 [24.1, 49.9] | **20.0 [11.2, 33.0]** |"
    rows = read_csv(out / "results.csv")
    steps = [(r["train_template"], r["checkpoint"], r["k"]) for r in rows
             if r["metric"] == "asr.keyword" and r["test_template"] == L and r["train_template"] == L]
    assert steps == [(L, "10", "3"), (L, "20", "6"), (L, "", "10")]
    assert (out / "fig-checkpoints-keyword.png").exists()


def test_two_judges_and_the_safety_judge_option(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for (tr, te), harmful in ADV.items():
        write_cell(run, tr, te, safety={"advbench": flags(50, harmful)}, judges=("keyword", "rubric"))
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    assert "### AdvBench — non-refusal rate (keyword)" in md and "### AdvBench — harmful-answer rate (rubric)" in md
    assert md.split("\n\n")[1].startswith("By the rubric judge's harmful-answer rate, ")  # a model judge first
    only = tmp_path / "kw"
    md = (ptst.report.run(run, only, safety_judge="keyword") / "report.md").read_text(encoding="utf-8")
    assert "harmful-answer rate (rubric)" not in md and "By the keyword judge's non-refusal rate" in md
    assert not list(only.glob("*rubric*")) and (only / "fig-heatmap-advbench-asr.keyword.png").exists()


def test_unknown_metric_shapes_are_listed_not_fatal(tmp_path: Path) -> None:
    import json

    run = grid_2x2(tmp_path / "run")
    f = cell_dir(run, V, L) / "metrics.json"
    doc = json.loads(f.read_text())
    doc["evals"]["advbench"]["metrics"]["judge_cost"] = {"usd": 0.3}
    f.write_text(json.dumps(doc))
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    assert "metrics in an unknown shape left out: advbench.judge_cost" in md


def test_producer_shapes_category_wrappers_and_empty_rates(tmp_path: Path) -> None:
    """by_category as ptst.metrics.by_category writes it ({"asr": rate, "n_judged": ...}); an n = 0 rate is a
    warning, not a table."""
    import json

    from ptst.metrics import by_category
    from ptst.records import Judgement

    run = grid_2x2(tmp_path / "run")
    f = cell_dir(run, V, L) / "metrics.json"
    doc = json.loads(f.read_text())
    js = [Judgement(f"advbench-{i}", "keyword", "1", "x", i in (0, 20)) for i in range(50)]
    doc["evals"]["advbench"]["by_category"] = {"asr.keyword": by_category(js, {f"advbench-{i}": "ab"[i % 2]
                                                                                for i in range(50)})}
    doc["evals"]["advbench"]["metrics"]["asr.rubric"] = {"k": 0, "n": 0, "value": None, "low": None, "high": None}
    f.write_text(json.dumps(doc))
    out = ptst.report.run(run)
    rows = [r for r in read_csv(out / "results.csv") if r["category"]]
    assert [(r["category"], r["k"], r["n"]) for r in rows] == [("a", "2", "25"), ("b", "0", "25")]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "unknown shape" not in md and "harmful-answer rate (rubric)" not in md
    assert "By the keyword judge's non-refusal rate" in md
    assert "metrics with no scored items (n = 0) in some cells: advbench.asr.rubric" in md


def test_recorded_safety_flags_mark_cells_of_templates_the_registry_does_not_know(tmp_path: Path) -> None:
    run = tmp_path / "run"
    plain, safe = "mine.yaml:plain", "mine.yaml:safe"  # a template file the report cannot open
    for tr, te, k in ((plain, safe, 1), (safe, safe, 9), (plain, plain, 9)):
        write_cell(run, tr, te, safety={"advbench": flags(40, range(k))},
                   safety_flags=(tr == safe, te == safe))
    md = (ptst.report.run(run) / "report.md").read_text(encoding="utf-8")
    rows = md_table(md, ADV_KW)
    assert rows[0] == "| train ↓ / test → | mine.yaml:plain | mine.yaml:safe |"
    assert rows[2].endswith("| 2.5 [0.4, 12.9] † |") and "cannot tell whether" not in md
    assert "training with mine.yaml:plain and testing with mine.yaml:safe" in md.split("\n\n")[1]
    ptst_rows = [r for r in read_csv(tmp_path / "run" / "results.csv") if r["ptst_cell"] == "true"]
    assert {(r["train_template"], r["test_template"]) for r in ptst_rows} == {(plain, safe)}
    unknown = tmp_path / "unknown"
    write_cell(unknown, plain, safe, safety={"advbench": flags(40, [1])}, safety_flags=(None, None))
    md = (ptst.report.run(unknown) / "report.md").read_text(encoding="utf-8")
    assert "cannot tell whether mine.yaml:plain, mine.yaml:safe carry a safety prompt" in md
    assert not any("†" in r for r in md_table(md, ADV_KW))


def test_all_in_one_table_holds_helpfulness_and_asr_per_cell(tmp_path: Path) -> None:
    run = grid_2x2(tmp_path / "run")
    ptst.report.run(run)
    rows = md_table((run / "report.md").read_text(), "All in one (the paper's layout)")
    assert rows[0] == f"| train ↓ / test → | {V} | {L} |"
    by_train = {r.split(" | ")[0].lstrip("| "): r for r in rows[2:]}
    ptst_row = by_train[V]
    # chat:vanilla -> chat:llama is the PTST cell: GSM8K 16/40 and AdvBench 2/50, marked with a dagger
    assert "GSM8K 40.0 [" in ptst_row and "AdvBench 4.0 [" in ptst_row and "†" in ptst_row
    diag = by_train[L].split(" | ")[-1]
    assert diag.startswith("**GSM8K 37.5 [") and "AdvBench 20.0 [" in diag and diag.rstrip(" |").endswith("**")
    assert "GSM8K 25.0 [" in by_train["no fine-tuning"] and "AdvBench 0.0 [" in by_train["no fine-tuning"]
