"""The grid end to end on the tiny model: files, cache, additive columns, refusal of a changed config, resume."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.grid.plan import expand, select
from ptst.grid.runner import load_grid, run
from tests.grid.helpers import grid_yaml, tiny_data

EVAL_FILES = {"eval.json", "metrics.json", "generations/harm.jsonl", "generations/harm.jsonl.meta.json",
              "generations/gsm.jsonl", "generations/gsm.jsonl.meta.json", "judgements/harm.keyword.jsonl",
              "scores/harm.asr-keyword.json", "scores/gsm.gsm8k.json"}


@pytest.fixture()
def grid(tmp_path, tiny_model_dir):
    data = tiny_data(tmp_path / "data")
    return tmp_path, grid_yaml(tmp_path, tiny_model_dir, data), data


def _files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_grid_writes_every_cell_and_its_exact_files(grid):
    tmp, cfg_path, _ = grid
    out = run(load_grid(cfg_path), tmp / "run")
    assert {p.name for p in out.iterdir()} >= {"grid.yaml", "plan.json", "base", "chat-vanilla.s0", "chat-llama.s0"}
    for cell in ["base/eval/chat-vanilla", "base/eval/chat-llama", "chat-vanilla.s0/eval/chat-llama",
                 "chat-llama.s0/eval/chat-llama"]:
        assert _files(out / cell) == EVAL_FILES, cell
    m = json.loads((out / "chat-vanilla.s0/eval/chat-llama/metrics.json").read_text())
    assert m["cell"]["train_template"] == "chat:vanilla" and m["cell"]["test_template"] == "chat:llama"
    assert m["cell"]["train_safety_prompt"] is False and m["cell"]["test_safety_prompt"] is True
    assert m["adapter_hash"] and len(m["template_fingerprints"]["test"]) == 64
    assert m["template_fingerprints"]["train"] != m["template_fingerprints"]["test"]
    harm = m["evals"]["harm"]
    assert harm["n"] == 6 and set(harm["metrics"]) >= {"asr.keyword", "refusal.keyword"}
    assert set(harm["by_category"]["asr.keyword"]) == {"malware", "drug"}
    assert set(m["evals"]["gsm"]["metrics"]) == {"accuracy.strict", "accuracy.flexible"}
    base = json.loads((out / "base/eval/chat-llama/metrics.json").read_text())
    assert base["adapter_hash"] is None and base["cell"]["train_template"] is None


def test_rerun_recomputes_nothing_and_says_so(grid, capsys):
    tmp, cfg_path, _ = grid
    run(load_grid(cfg_path), tmp / "run")
    before = _snapshot(tmp / "run")
    capsys.readouterr()
    run(load_grid(cfg_path), tmp / "run")
    after = _snapshot(tmp / "run")
    changed = {k for k in before if before[k] != after.get(k)} - {"grid.yaml", "plan.json"}
    assert changed == set()
    err = capsys.readouterr().err
    assert "already holds this finished run" in err and "already evaluated" in err


def test_adding_a_test_template_computes_only_that_column(grid, tmp_path):
    tmp, cfg_path, _ = grid
    text = cfg_path.read_text()
    cfg_path.write_text(text.replace("test_templates: [chat:vanilla, chat:llama]", "test_templates: [chat:vanilla]"))
    run(load_grid(cfg_path), tmp / "run")
    before = _snapshot(tmp / "run")
    assert not any("eval/chat-llama" in k for k in before)
    cfg_path.write_text(text)
    run(load_grid(cfg_path), tmp / "run")
    after = _snapshot(tmp / "run")
    assert {k for k in before if before[k] != after[k]} <= {"grid.yaml", "plan.json"}
    new = set(after) - set(before)
    assert new and all("/eval/chat-llama/" in k for k in new)


def test_changed_config_on_existing_run_is_refused_before_any_work(grid):
    tmp, cfg_path, _ = grid
    run(load_grid(cfg_path), tmp / "run")
    before = _snapshot(tmp / "run")
    with pytest.raises(PtstError, match=r"made by a different config \(lr"):
        run(load_grid(cfg_path, ["train.lr=0.02"]), tmp / "run")
    assert _snapshot(tmp / "run") == before


def test_shard_and_cell_selection(grid):
    _, cfg_path, _ = grid
    cells = expand(load_grid(cfg_path))
    assert [c.id for c in cells] == ["base", "chat-vanilla.s0", "chat-llama.s0"]
    assert [c.id for c in select(cells, shard="1/2")] == ["chat-vanilla.s0"]
    assert [c.id for c in select(cells, cell="chat-llama.s0")] == ["chat-llama.s0"]
    with pytest.raises(PtstError, match="did you mean 'chat-llama.s0'"):
        select(cells, cell="chat-lama.s0")
    with pytest.raises(PtstError, match="i/n"):
        select(cells, shard="2")


def test_checkpoints_and_seeds_expand(grid):
    _, cfg_path, _ = grid
    cfg = load_grid(cfg_path, ["checkpoints=[2]", "seeds=[0,1]"])
    cells = expand(cfg)
    assert [c.id for c in cells] == ["base", "chat-vanilla.s0", "chat-llama.s0", "chat-vanilla.s1", "chat-llama.s1"]
    assert [e.id for e in cells[1].evals] == ["chat-vanilla", "chat-llama", "chat-vanilla@step-2", "chat-llama@step-2"]


@pytest.mark.parametrize("override,msg", [
    (["train_templates=[]"], "train_templates is empty"),
    (["test_templates=[]"], "test_templates is empty"),
    (["test_templatez=[chat:llama]"], "did you mean 'test_templates'"),
])
def test_bad_grid_config_is_one_clear_error(grid, override, msg, capsys):
    _, cfg_path, _ = grid
    assert main(["run", str(cfg_path), *override, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and err.count("\n") == 0


def test_eval_set_missing_offline_is_one_line(grid, tmp_path, capsys, monkeypatch):
    _, cfg_path, _ = grid
    monkeypatch.setenv("PTST_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg_path.write_text(cfg_path.read_text().replace("evals:\n", "evals:\n  - {data: advbench, limit: 2}\n")
                        + f"data_dir: {empty}\n")
    assert main(["run", str(cfg_path), "--out", str(tmp_path / "r"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "advbench" in err and "ptst_advbench-harmful-behaviors.csv" in err and err.count("ptst: error") == 1
    assert not (tmp_path / "r" / "chat-vanilla.s0").exists()  # refused before any training


def test_dry_run_and_status(grid, capsys):
    tmp, cfg_path, _ = grid
    assert main(["run", str(cfg_path), "--out", str(tmp / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 training runs, 6 evaluation cells" in out and "min" in out
    assert not (tmp / "run").exists()
    run(load_grid(cfg_path), tmp / "run", cell="chat-vanilla.s0")
    assert main(["status", str(tmp / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"chat-vanilla\.s0 +train: done", out) and re.search(r"chat-llama\.s0 +train: pending", out)
    assert "2/6 evaluation cells done" in out


def _results(root: Path) -> dict[str, object]:
    """Everything a grid computes, minus wall-clock fields."""
    res: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.suffix == ".jsonl" and "/eval/" in rel:
            res[rel] = [json.loads(line) for line in p.read_text().splitlines()]  # a torn line fails here
        elif p.name == "metrics.json":
            res[rel] = json.loads(p.read_text())
        elif p.name == "adapter_model.safetensors" and "checkpoints" not in rel:
            res[rel] = p.read_bytes()
    return res


def test_sigkill_at_random_moments_then_resume_gives_identical_results(grid, tmp_path):
    tmp, cfg_path, _ = grid
    run(load_grid(cfg_path), tmp / "clean")
    cmd = [sys.executable, "-m", "ptst", "run", str(cfg_path), "--out", str(tmp / "killed"), "--no-report"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(1234)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 9.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "the run finished before any kill: make the grid bigger"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    for p in (tmp / "killed").rglob("*.json"):
        json.loads(p.read_text())  # no truncated JSON anywhere
    assert not [p for p in (tmp / "killed").rglob("*.tmp*")]
    assert _results(tmp / "killed") == {k: v for k, v in _results(tmp / "clean").items()}
