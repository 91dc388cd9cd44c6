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
from ptst.config import dump_yaml
from ptst.errors import PtstError
from ptst.grid.cells import eval_config, load_grid
from ptst.grid.checks import check_grid_yaml, grid_changes
from ptst.grid.plan import expand, select
from ptst.grid.runner import run
from ptst.testing import align_yaml, grid_yaml, tiny_data

EVAL_FILES = {"eval.json", "metrics.json", "generations/harm.jsonl", "generations/harm.jsonl.meta.json",
              "generations/gsm.jsonl", "generations/gsm.jsonl.meta.json", "judgements/harm.keyword.jsonl",
              "scores/harm.asr-keyword.json", "scores/gsm.gsm8k.json"}


@pytest.fixture()
def grid(tmp_path, tiny_model_dir):
    data = tiny_data(tmp_path / "data")
    return tmp_path, grid_yaml(tmp_path, tiny_model_dir, data), data


@pytest.fixture()
def grid_align(tmp_path, tiny_model_dir):
    data = tiny_data(tmp_path / "data")
    return tmp_path, grid_yaml(tmp_path, tiny_model_dir, data, align_yaml(data)), data


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
    root = tmp / "run"
    assert main(["run", str(cfg_path), "--out", str(root)]) == 0
    first = capsys.readouterr()
    assert "nothing to do" not in first.err and f"report: {root / 'report.html'}\n" in first.out
    before = _snapshot(root)
    report = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    assert {"report.md", "report.html", "results.csv"} <= set(report)
    assert main(["run", str(cfg_path), "--out", str(root)]) == 0
    after = _snapshot(root)
    rewritten = set(report) - {"grid.yaml", "plan.json"}  # the report is written again, byte for byte
    assert {k for k in before if before[k] != after.get(k)} <= rewritten and set(after) == set(before)
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == report
    out = capsys.readouterr()
    assert "already holds this finished run" in out.err and "already evaluated" in out.err
    assert "nothing to do: all 6 cells are done" in out.err and f"report: {root / 'report.html'}\n" in out.out


def test_a_moved_run_directory_with_its_aligned_model_recomputes_nothing(grid_align, capsys):
    """The fine-tuning cells train on `<run>/align/model`: moved to another --out, that path changes but the
    model's content identity does not, so no training, generation or judging is redone."""
    tmp, cfg_path, _ = grid_align
    assert main(["run", str(cfg_path), "--out", str(tmp / "run")]) == 0
    moved = tmp / "elsewhere" / "run"
    moved.parent.mkdir()
    (tmp / "run").rename(moved)
    capsys.readouterr()
    assert main(["report", str(moved), "--format", "md"]) == 0  # every number still current where it now lies
    assert "note:" not in capsys.readouterr().err
    before = _snapshot(moved)
    assert main(["run", str(cfg_path), "--out", str(moved)]) == 0
    err = capsys.readouterr().err
    assert "nothing to do: all 6 cells are done" in err, err
    after = _snapshot(moved)
    changed = {k for k in before if before[k] != after.get(k)}
    assert all("/" not in k for k in changed), changed  # only the top-level report files are written again


def test_an_alignment_made_from_other_data_stales_every_number_after_it(grid_align, capsys):
    """Every cell trained or evaluated on the aligned model is stale once the alignment's own data changed:
    `ptst report` refuses with the change, in one line, and `ptst status` names it."""
    tmp, cfg_path, data = grid_align
    assert main(["run", str(cfg_path), "--out", str(tmp / "run")]) == 0
    rows = [json.loads(x) for x in data["refusals"].read_text().splitlines()]
    data["refusals"].write_text("".join(json.dumps({**r, "response": "No."}) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["report", str(tmp / "run")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "every result is stale (first: the alignment stage changed" in err, err
    assert main(["status", str(tmp / "run")]) == 0
    assert "alignment: different (" in capsys.readouterr().out


def test_a_stale_alignment_measurement_hides_only_its_own_figures(grid_align, capsys, monkeypatch):
    """The alignment's refusal is measured by a judge no evaluation cell uses (xstest-strmatch): a new version of
    it leaves every cell current, and the report prints why in place of the alignment's old figures."""
    from ptst.judge import xstest

    tmp, cfg_path, _ = grid_align
    assert main(["run", str(cfg_path), "--out", str(tmp / "run")]) == 0
    summary = json.loads((tmp / "run" / "align" / "align.json").read_text())["summary"]
    assert summary in (tmp / "run" / "report.md").read_text()
    monkeypatch.setattr(xstest.XSTestStrmatchJudge, "version", "xstest-strmatch-v2")
    capsys.readouterr()
    assert main(["report", str(tmp / "run"), "--format", "md"]) == 0
    assert "stale" not in capsys.readouterr().err
    md = (tmp / "run" / "report.md").read_text()
    assert summary not in md and "its refusal figures are not shown, refusal measured shipped, chat:vanilla" in md


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


def test_grid_config_change_is_refused_naming_the_keys_and_nothing_is_written(grid):
    tmp, cfg_path, _ = grid
    root = tmp / "run"
    (root / "base" / "eval" / "chat-vanilla").mkdir(parents=True)
    (root / "grid.yaml").write_text(dump_yaml(load_grid(cfg_path)))
    changed = load_grid(cfg_path, ["train.lr=0.02", "baseline=false", "decoding.max_new_tokens=7"])
    check_grid_yaml(changed, root)  # no results yet: a failed start may be fixed and rerun
    (root / "base" / "eval" / "chat-vanilla" / "metrics.json").write_text("{}")
    before = _snapshot(root)
    with pytest.raises(PtstError, match=r"training results of a different grid config \(changed: train.lr, basel"):
        run(changed, root)
    assert _snapshot(root) == before


@pytest.mark.parametrize("override,changed", [
    (["test_templates=[chat:vanilla, chat:llama, chat:nosys]"], []),  # a new column
    (["seeds=[0, 1]", "judges=[keyword, keyword-prefix]"], []),
    (["decoding.max_new_tokens=7", "eval_seed=3", "judges=[keyword-prefix]"], []),  # evaluation: recomputed
    (["train.save_every=5", "train.log_every=2"], []),  # operational
    (["test_templates=[chat:llama]"], ["test_templates"]),  # dropping a column is not additive
    (["train.lr=0.02", "train.lora.r=4"], ["train.lr", "train.lora"]),
    (["baseline=false"], ["baseline"]),
    (["checkpoints=[2]"], ["checkpoints"]),
])
def test_grid_changes_lets_only_additive_changes_pass(grid, override, changed):
    _, cfg_path, _ = grid
    assert grid_changes(load_grid(cfg_path), load_grid(cfg_path, override)) == changed


def test_align_mismatch_is_refused_before_grid_yaml_or_plan_is_written(grid_align):
    tmp, cfg_path, _ = grid_align
    align = tmp / "run" / "align"
    (align / "model").mkdir(parents=True)
    (align / "model" / "config.json").write_text("{}")
    (align / "align.json").write_text(json.dumps({"key": "another"}))
    with pytest.raises(PtstError, match="alignment made with a different config"):
        run(load_grid(cfg_path), tmp / "run")
    assert _files(tmp / "run") == {"align/model/config.json", "align/align.json"}


def test_train_typo_is_refused_before_the_alignment_stage(grid_align, capsys):
    tmp, cfg_path, _ = grid_align
    assert main(["run", str(cfg_path), "train.lrr=1", "--out", str(tmp / "run"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ptst: error: train: unknown key 'lrr' (did you mean 'lr'?)"
    assert not (tmp / "run").exists()


def test_shards_need_a_finished_alignment_run_once_with_align_only(grid_align, capsys, tiny_model_dir):
    tmp, cfg_path, _ = grid_align
    cfg, root = load_grid(cfg_path), tmp / "run"
    with pytest.raises(PtstError, match=r"--shard / --cell need a finished alignment.*--align-only"):
        run(cfg, root, shard="0/3")
    assert not root.exists()
    assert main(["run", str(cfg_path), "--out", str(root), "--align-only"]) == 0
    assert (root / "align" / "align.json").exists() and not (root / "base").exists()
    assert "report:" not in capsys.readouterr().out
    run(cfg, root, shard="0/3")  # the baseline cell, evaluated with the aligned model
    m = json.loads((root / "base/eval/chat-llama/metrics.json").read_text())
    from ptst.models import model_id

    assert m["model"] == model_id(str(root / "align" / "model")) != model_id(str(tiny_model_dir))
    with pytest.raises(PtstError, match="--align-only runs the alignment stage alone"):
        run(cfg, root, cell="base", align_only=True)


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
    with pytest.raises(PtstError, match="--shard and --cell both select cells: give one"):
        select(cells, shard="0/2", cell="base")


def test_checkpoints_and_seeds_expand(grid):
    _, cfg_path, _ = grid
    cfg = load_grid(cfg_path, ["checkpoints=[2]", "seeds=[0,1]"])
    cells = expand(cfg)
    assert [c.id for c in cells] == ["base", "chat-vanilla.s0", "chat-llama.s0", "chat-vanilla.s1", "chat-llama.s1"]
    assert [e.id for e in cells[1].evals] == ["chat-vanilla", "chat-llama", "chat-vanilla@step-2", "chat-llama@step-2"]


def test_checkpoint_evals_pick_the_sets_evaluated_at_checkpoints_only(grid):
    _, cfg_path, _ = grid
    cfg = load_grid(cfg_path, ["checkpoints=[2]", "checkpoint_evals=[harm]"])
    cell = expand(cfg)[1]
    by_id = {e.id: eval_config(cfg, "m", e, Path("run")) for e in cell.evals}
    assert [e.label for e in by_id["chat-llama@step-2"].evals] == ["harm"]
    assert [e.label for e in by_id["chat-llama"].evals] == ["harm", "gsm"]  # the final adapter: every eval
    plain = load_grid(cfg_path, ["checkpoints=[2]"])  # unset: every eval at every checkpoint, as before
    assert [e.label for e in eval_config(plain, "m", expand(plain)[1].evals[2], Path("run")).evals] == ["harm", "gsm"]
    assert "\ncheckpoint_evals:" not in dump_yaml(plain)


def test_checkpoint_tests_may_widen_but_not_narrow_on_a_finished_grid(grid):
    _, cfg_path, _ = grid
    every, one = (load_grid(cfg_path, ["checkpoints=[2]", *x]) for x in ([], ["checkpoint_tests=[chat:llama]"]))
    assert grid_changes(every, one) == ["checkpoint_tests"]  # drops the chat:vanilla checkpoint cells: refused
    assert grid_changes(one, every) == [] and grid_changes(one, every, evaluation=True) == ["checkpoint_tests"]
    assert grid_changes(every, load_grid(cfg_path, ["checkpoints=[2]", "checkpoint_evals=[harm]"]),
                        evaluation=True) == ["checkpoint_evals"]  # recomputed, and said so


def test_checkpoint_tests_pick_the_test_templates_evaluated_at_checkpoints(grid):
    _, cfg_path, _ = grid
    cfg = load_grid(cfg_path, ["checkpoints=[2,4]", "checkpoint_tests=[chat:llama]"])
    assert [e.id for e in expand(cfg)[1].evals] == ["chat-vanilla", "chat-llama", "chat-llama@step-2",
                                                    "chat-llama@step-4"]
    assert "\ncheckpoint_tests:" not in dump_yaml(load_grid(cfg_path, ["checkpoints=[2]"]))


@pytest.mark.parametrize("override,msg", [
    (["train_templates=[]"], "train_templates is empty"),
    (["checkpoint_tests=[chat:llama]"], "checkpoint_tests is set but checkpoints is empty"),
    (["checkpoints=[2]", "checkpoint_tests=[chat:mpt]"], "checkpoint_tests: 'chat:mpt' is neither a test template"),
    (["checkpoint_evals=[harm]"], "checkpoint_evals is set but checkpoints is empty"),
    (["checkpoints=[2]", "checkpoint_evals=[hram]"], "checkpoint_evals: 'hram' is not an eval of this grid"),
    (["test_templates=[]"], "test_templates is empty"),
    (["test_templatez=[chat:llama]"], "did you mean 'test_templates'"),
    (["train.lrr=1"], "train: unknown key 'lrr' (did you mean 'lr'?)"),
    (["test_templates=[chat:nosuch]"], "test_templates[0]: unknown template 'chat:nosuch'"),
    (['train_templates=[chat:vanilla, ""]'], "train_templates[1] is an empty template name"),
    (["train.data=gsm8kk"], "train.data: unknown data set 'gsm8kk' (did you mean 'gsm8k'?)"),
    (["evals=[{data: advbnch}]"], "did you mean 'advbench'"),
    (["judges=[keywrd]"], "judges[0]: unknown judge 'keywrd' (did you mean 'keyword'?)"),
    (["decoding.max_new_tokenz=3"], "max_new_tokenz"),
    (["train.mix=[safety:2:chat:nosuch]"], "train.mix[0].template: unknown template 'chat:nosuch'"),
])
def test_bad_grid_config_is_one_clear_error(grid, override, msg, capsys):
    _, cfg_path, _ = grid
    assert main(["run", str(cfg_path), *override, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and err.count("\n") == 0


def test_eval_set_missing_offline_is_one_line(grid, tmp_path, capsys, monkeypatch):
    _, cfg_path, _ = grid
    monkeypatch.setenv("PTST_OFFLINE", "1")
    monkeypatch.delenv("PTST_DATA_DIR", raising=False)  # `make test` exports it when ../shared/data exists
    monkeypatch.setenv("PTST_CACHE_DIR", str(tmp_path / "cache"))
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
    assert "harm (safety, n=6), gsm (helpfulness, n=5)" in out  # the files' real sizes, not a guess
    assert not (tmp / "run").exists()
    run(load_grid(cfg_path), tmp / "run", cell="chat-vanilla.s0")
    plan = json.loads((tmp / "run" / "plan.json").read_text())
    assert [c["id"] for c in plan["train_cells"]] == ["base", "chat-vanilla.s0", "chat-llama.s0"]  # the whole grid
    spec = json.loads((tmp / "run" / "chat-vanilla.s0" / "spec.json").read_text())
    assert plan["train_cells"][1]["config_sha256"] == spec["config_sha256"]
    assert main(["status", str(tmp / "run")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"chat-vanilla\.s0 +train: done  \[(bf16|fp32) on .+, \d+ tok/s\]", out), out
    assert re.search(r"chat-llama\.s0 +train: new", out)
    assert "2/6 evaluation cells done" in out
    # each done cell names how fast its answers were made, by which engine, on which CPU (recorded beside the key)
    from ptst.runtime import cpu

    assert re.search(r"chat-vanilla +done +\[generation \d+ tok/s \(hf fast(\+fused)? float32, batch \d+; "
                     + re.escape(cpu.here()) + r"\)\]", out), out
    meta = json.loads((tmp / "run" / "chat-vanilla.s0" / "eval" / "chat-vanilla" / "generations"
                       / "harm.jsonl.meta.json").read_text())
    assert meta["throughput"]["engine"] == "fast" and meta["throughput"]["tokens"] > 0
    assert meta["throughput"]["hardware"] == cpu.here() and "note: this run directory" not in out
    assert "throughput" not in meta["key"]
    metrics = tmp / "run" / "chat-vanilla.s0" / "eval" / "chat-llama" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "key": "made-by-another-config"}))
    assert main(["status", str(tmp / "run")]) == 0
    out = capsys.readouterr().out
    assert "1/6 evaluation cells done" in out
    assert re.search(r"chat-llama +different \(metrics.json: its key is not the one its recorded inputs make \(edited "
                     r"by hand\?\); will be recomputed; stale files are moved to superseded/\)", out)


def test_dry_run_sizes_registered_sets_and_estimates_the_alignment(grid_align, capsys):
    tmp, cfg_path, data = grid_align
    harm = f"jsonl:{data['harm']}"
    assert main(["run", str(cfg_path), f"evals=[{{data: advbench}}, {{data: '{harm}', kind: safety}}]",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "advbench (safety, n=520)" in out and "(+ alignment stage)" in out
    assert re.search(r"cells \(\d+ and \d+ to do\); rough estimate .*: align \d+ min \+ train \d+ min \+ generate", out)


@pytest.mark.parametrize("kind", ["amx_bf16", "avx2"])
def test_dry_run_gives_a_range_where_the_cpu_kind_was_not_measured(grid_align, capsys, monkeypatch, kind):
    from ptst.runtime import cpu

    monkeypatch.setattr(cpu, "kind", lambda: kind)
    tmp, cfg_path, _ = grid_align
    assert main(["run", str(cfg_path), "--dry-run"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "rough estimate" in x)
    m = re.search(r"= (\d+) min .*as (measured on a 2-core Xeon[^;]*)(?:; up to (\d+) min at \d+ and \d+, as (.*?);)?",
                  line)
    assert m is not None, line
    if kind == "amx_bf16":  # measured: one figure
        assert m.group(2) == "measured on a 2-core Xeon with AMX" and m.group(3) is None
    else:  # fp32-only: from the capped Xeon (measured) up to the derived Zen 3 (slower)
        assert m.group(2) == "measured on a 2-core Xeon capped to AVX2"
        assert int(m.group(3)) >= int(m.group(1)) and m.group(4) == "derived for a 2-core Zen 3, not measured"


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
        before = _files(tmp / "killed") if (tmp / "killed").exists() else set()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill at a random moment after this process has written something (not after a fixed sleep, which a fast
        # machine outruns: the whole tiny grid takes ~6 s)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and (
                not (tmp / "killed").exists() or _files(tmp / "killed") == before):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 2.0))
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
