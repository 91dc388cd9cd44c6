"""`ptst data ...` driven in-process through ptst.cli.main, plus the import-weight guarantee."""

from __future__ import annotations

import json
import subprocess
import sys

from ptst.cli import main
from ptst.data import DATASETS
from ptst.records import Example


def test_list_marks_local_sets(fake_dir, capsys):
    assert main(["data", "list", "--data-dir", str(fake_dir), "--json"]) == 0
    rows = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert rows["gsm8k"]["local"] == "yes" and rows["gsm8k"]["splits"] == {"train": 7473, "test": 1319}
    assert rows["harmbench"]["local"] == "partial" and rows["openorca"]["local"] == "no"
    assert rows["safety"]["non_commercial"] and not rows["gsm8k"]["non_commercial"]
    assert (rows["arc-easy"]["scorer"], rows["advbench"]["scorer"]) == ("arc", None)
    assert main(["data", "list", "--data-dir", str(fake_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "LOCAL", "NC"]
    assert any(line.split()[:4] == ["safety", "train", "yes", "NC"] for line in lines)


def test_list_wraps_long_licences_instead_of_cutting_them(capsys):
    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "…" not in "\n".join(lines)
    at = lines[0].index("LICENCE")
    start = next(i for i, line in enumerate(lines) if line.startswith("chatdoctor "))
    assert lines[start].split()[3] == "NC"  # the non-commercial flag stays on the set's own line
    licence, i = [lines[start][at:].split("  ")[0]], start + 1
    while i < len(lines) and not lines[i][:at].strip():
        licence.append(lines[i][at:].split("  ")[0])
        i += 1
    assert " ".join(licence) == DATASETS.get("chatdoctor").licence and len(licence) > 1


def test_show_text_and_json(fake_dir, capsys):
    assert main(["data", "show", "gsm8k", "--split", "train", "--all", "--data-dir", str(fake_dir)]) == 0
    out = capsys.readouterr().out
    assert "# gsm8k:train (train)  3 rows" in out and "=== gsm8k-train-1 ===" in out and "[reference] 1234" in out
    assert main(["data", "show", "xstest-safe", "--limit", "2", "--json", "--data-dir", str(fake_dir)]) == 0
    exs = [Example.from_dict(json.loads(line)) for line in capsys.readouterr().out.splitlines()]
    assert len(exs) == 2 and all(e.meta["label"] == "safe" for e in exs)


def test_show_custom_file_with_field_mapping(tmp_path, capsys):
    p = tmp_path / "mine.jsonl"
    p.write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    assert main(["data", "show", f"jsonl:{p}", "--field", "input=question", "--field", "response=answer"]) == 0
    assert "[input]\nQ?\n[response]\nA." in capsys.readouterr().out
    assert main(["data", "show", f"jsonl:{p}", "--field", "input"]) == 2
    assert "--field expects KEY=COLUMN" in capsys.readouterr().err


def test_check_passes_then_fails_on_a_tampered_file(fake_dir, capsys):
    assert main(["data", "check", "--data-dir", str(fake_dir), "gsm8k", "xstest"]) == 0
    assert "3 ok, 0 mismatch, 0 unpinned, 0 missing" in capsys.readouterr().out
    with open(fake_dir / "gsm8k/test.jsonl", "a") as f:
        f.write('{"question": "extra", "answer": "#### 0"}\n')
    assert main(["data", "check", "--data-dir", str(fake_dir), "gsm8k", "--json"]) == 1
    res = {r["path"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert res == {"gsm8k/train.jsonl": "ok", "gsm8k/test.jsonl": "mismatch"}


def test_check_reports_missing_without_failing(tmp_path, capsys):
    assert main(["data", "check", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "missing   gsm8k/train.jsonl" in out and "0 ok, 0 mismatch" in out


def test_contamination_summary_and_fail_flag(fake_dir, capsys):
    args = ["data", "contamination", "--train", "gsm8k:train", "--eval", "gsm8k:test,advbench",
            "--data-dir", str(fake_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "gsm8k:test (3 rows): 1 exact, 1 normalised; 2 training examples affected" in out
    assert "advbench:test (3 rows): 0 exact, 0 normalised" in out
    assert main([*args, "--fail-on-overlap", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {o["train_id"] for o in data["overlaps"]} == {"gsm8k-train-0", "gsm8k-train-2"}


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "show", "harmbnech"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ptst: error: unknown data set 'harmbnech'")
    assert "did you mean 'harmbench'" in err
    (tmp_path / "dd").mkdir()
    assert main(["data", "show", "strongreject", "--data-dir", str(tmp_path / "dd")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strongreject/strongreject_dataset.csv not found" in err


def test_importing_the_data_stage_stays_light():
    code = ("import argparse, sys, ptst.data, ptst.data.cli; ptst.data.cli.configure(argparse.ArgumentParser()); "
            "print(sorted(m for m in ('torch', 'pyarrow', 'pandas', 'datasets', 'httpx', 'urllib.request') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []
