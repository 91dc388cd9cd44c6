"""The judge validation a report rests on: copied into the run directory, read from it first, and a `--limit`
sample named as one (with its n) wherever a figure from it is shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ptst.report
from ptst.io import write_json_atomic
from ptst.judge.validate import copy_validation, load_validation, validation_root
from ptst.runs.layout import RunDir
from tests.report.fakerun import flags, write_cell

V, L = "chat:vanilla", "chat:llama"
KEY = "k" * 16
HARM, REFUSAL = "jbb-judge-comparison", "xstest-completions"


def _entry(n: int, kappa: float, limit: int | None = None, total: int | None = 300) -> dict:
    fig = {"n": n, "kappa": {"value": kappa, "low": kappa - 0.05, "high": kappa + 0.05},
           "agreement": {"value": 0.5}, "fpr": {"value": 0.6}, "fnr": {"value": 0.1}}
    return {"n": n, "limit": limit, "total": total, "subsets": {"all": fig}}


def _store(root: Path, **entries: dict) -> Path:
    results = {HARM if k == "harm" else REFUSAL: e for k, e in entries.items()}
    return write_json_atomic(root / f"{KEY}.json", {"judge": "keyword", "version": "v", "judge_key": KEY,
                                                   "settings": {}, "results": results})


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for test in (V, L):
        d = write_cell(run, V, test, safety={"advbench": flags(10, range(6))})
        doc = json.loads((d / "metrics.json").read_text())
        doc["judge_keys"] = {"keyword": KEY}
        (d / "metrics.json").write_text(json.dumps(doc))
    return run


def test_the_run_keeps_a_copy_a_report_elsewhere_reads(run: Path, tmp_path: Path, monkeypatch) -> None:
    _store(validation_root(), harm=_entry(300, 0.22))
    (path,) = copy_validation(run)
    assert path == RunDir(run).validation_dir / f"{KEY}.json"
    assert json.loads(path.read_text())["results"][HARM]["n"] == 300
    assert copy_validation(run) == []  # up to date: not rewritten
    assert not list(path.parent.glob("*.tmp*"))
    monkeypatch.setenv("PTST_CACHE_DIR", str(tmp_path / "another-machine"))  # no store at all
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    md = (run / "report.md").read_text()
    assert "JBB harm, human majority: κ 0.22 [0.17, 0.27], agreement 50.0% (n = 300)" in md
    assert "only at κ = 0.22 (50.0% agreement on 300 human-labelled answers)" in md


def test_the_run_copy_comes_first_and_the_store_fills_what_it_lacks(run: Path) -> None:
    _store(validation_root(), harm=_entry(300, 0.90), refusal=_entry(2250, 0.67, total=2250))
    _store(RunDir(run).validation_dir, harm=_entry(300, 0.22))
    doc = load_validation(KEY, [RunDir(run).validation_dir])
    assert doc is not None and doc["results"][HARM]["subsets"]["all"]["kappa"]["value"] == 0.22
    assert doc["results"][REFUSAL]["n"] == 2250


def test_a_sample_never_replaces_a_whole_set_copy(run: Path) -> None:
    _store(RunDir(run).validation_dir, harm=_entry(300, 0.22))
    _store(validation_root(), harm=_entry(20, 0.5, limit=20), refusal=_entry(20, 0.7, limit=20, total=2250))
    copy_validation(run)
    results = json.loads((RunDir(run).validation_dir / f"{KEY}.json").read_text())["results"]
    assert results[HARM]["n"] == 300 and results[REFUSAL]["n"] == 20  # the sample fills an empty slot


def test_a_limit_sample_is_named_with_its_n_in_the_report(run: Path) -> None:
    _store(RunDir(run).validation_dir, harm=_entry(20, 0.22, limit=20), refusal=_entry(18, 0.7, limit=20, total=None))
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    md = (run / "report.md").read_text()
    assert ("JBB harm, human majority: κ 0.22 [0.17, 0.27], agreement 50.0% (n = 20, sample of 20 of 300 answers, "
            "--limit 20)") in md
    # an entry stored before the set's size was recorded: still a sample, of an unknown whole
    assert "XSTest refusal: κ 0.70 [0.65, 0.75], agreement 50.0% (n = 18, sample of 18 answers, --limit 20)" in md
    assert "(50.0% agreement on 20 human-labelled answers, sample of 20 of 300 answers, --limit 20)" in md
    assert "(n = 300)" not in md


def test_a_limit_as_large_as_the_set_is_no_sample(run: Path) -> None:
    _store(RunDir(run).validation_dir, harm=_entry(300, 0.22, limit=5000))
    ptst.report.run(run, formats=["md"], safety_judge="keyword")
    assert "agreement 50.0% (n = 300)" in (run / "report.md").read_text()
