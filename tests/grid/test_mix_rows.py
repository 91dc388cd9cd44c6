"""Safety-mixing rows (the paper's Table 6, grid `mixes:`): each training template trained again with refusals
shuffled in, under the task's own template or a stated one; shown beside the unmixed rows with the same tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ptst.cli import main
from ptst.config import dump_yaml, to_dict
from ptst.errors import PtstError
from ptst.grid.cells import eval_config, load_grid, train_config
from ptst.grid.checks import grid_changes
from ptst.grid.plan import expand
from ptst.grid.runner import run
from ptst.specs.train import identity
from ptst.testing import grid_yaml, tiny_data

MIXES = """
mixes:
  - {name: safety-task, data: "jsonl:DATA", n: 4, template: task}
  - {name: safety-sp, data: "jsonl:DATA", n: 4, template: chat:llama}
"""


def _grid(tmp: Path, model: Path, mixes: bool = True) -> Path:
    data = tiny_data(tmp / "data")
    extra = MIXES.replace("DATA", str(data["refusals"])) if mixes else ""
    return grid_yaml(tmp, model, data, extra)


def test_mix_rows_add_training_cells_and_leave_the_others_as_they_were(tmp_path, tiny_model_dir):
    plain, mixed = load_grid(_grid(tmp_path / "a", tiny_model_dir, False)), load_grid(_grid(tmp_path, tiny_model_dir))
    ids = [c.id for c in expand(mixed)]
    assert ids == ["base", "chat-vanilla.s0", "chat-vanilla+safety-task.s0", "chat-vanilla+safety-sp.s0",
                   "chat-llama.s0", "chat-llama+safety-task.s0", "chat-llama+safety-sp.s0"]
    cells = {c.id: c for c in expand(mixed)}
    for c in expand(plain):  # an unmixed cell trains exactly as in a grid without mixes
        if c.template is not None:
            a, b = identity(train_config(plain, "m", c)), identity(train_config(mixed, "m", cells[c.id]))
            assert {k: v for k, v in a.items() if k != "data"} == {k: v for k, v in b.items() if k != "data"}
    task = train_config(mixed, "m", cells["chat-vanilla+safety-task.s0"])
    sp = train_config(mixed, "m", cells["chat-vanilla+safety-sp.s0"])
    assert [(m.n, m.template) for m in task.mix] == [(4, "chat:vanilla")]  # the task's own template
    assert [(m.n, m.template) for m in sp.mix] == [(4, "chat:llama")]  # the stated one
    ec = next(e for e in cells["chat-vanilla+safety-sp.s0"].evals if e.test_template == "chat:llama")
    labels = eval_config(mixed, "m", ec, tmp_path / "run").cell
    assert labels["train_template"] == "chat:vanilla + safety-sp" and labels["mix"] == "safety-sp"
    assert labels["train_safety_prompt"] is False  # the row's training template's flag


def test_a_mix_row_can_name_the_training_templates_it_trains(tmp_path, tiny_model_dir):
    cfg = _grid(tmp_path, tiny_model_dir, False)
    data = tiny_data(tmp_path / "data")
    cfg.write_text(cfg.read_text() + f"mixes: [{{name: sp, data: 'jsonl:{data['refusals']}', n: 4, "
                   "train_templates: [chat:llama]}]\n")
    assert [c.id for c in expand(load_grid(cfg))] == ["base", "chat-vanilla.s0", "chat-llama.s0", "chat-llama+sp.s0"]
    rows = load_grid(cfg).mixes
    assert [(r.name, r.train_templates) for r in rows] == [("sp", ["chat:llama"])]
    unset = to_dict(load_grid(_grid(tmp_path / "b", tiny_model_dir)))["mixes"]
    assert unset and all("train_templates" not in r for r in unset)  # unset: every template, left out of the dump
    cfg.write_text(cfg.read_text().replace("train_templates: [chat:llama]}", "train_templates: [chat:mpt]}"))
    with pytest.raises(PtstError, match="mixes sp: train_templates 'chat:mpt' is not in train_templates"):
        load_grid(cfg)


def test_a_grid_without_mixes_dumps_as_before(tmp_path, tiny_model_dir):
    assert "\nmixes:" not in dump_yaml(load_grid(_grid(tmp_path / "a", tiny_model_dir, False)))
    assert "safety-task" in dump_yaml(load_grid(_grid(tmp_path, tiny_model_dir)))


@pytest.mark.parametrize("row,msg", [("{name: 'a b', n: 4}", "letters, digits"), ("{name: x, n: 0}", "positive"),
                                     ("{name: x, n: 4, template: chat:nope}", "mixes\\[0\\].template")])
def test_a_bad_mix_row_is_one_line(tmp_path, tiny_model_dir, row, msg, capsys):
    cfg = _grid(tmp_path, tiny_model_dir, False)
    cfg.write_text(cfg.read_text() + f"mixes: [{row}]\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "run"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ptst: error:")
    with pytest.raises(PtstError, match=msg):
        from ptst.grid.checks import validate

        validate(load_grid(cfg), "m")


def test_mix_rows_end_to_end_beside_the_unmixed_rows(tmp_path, tiny_model_dir):
    cfg = _grid(tmp_path, tiny_model_dir, False)
    root = tmp_path / "run"
    plain = load_grid(cfg)
    run(plain, root)  # a finished grid without mixes ...
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "/eval/" in str(p)}
    cfg.write_text(cfg.read_text() + MIXES.replace("DATA", str(tmp_path / "data" / "refusals.jsonl")))
    assert grid_changes(plain, load_grid(cfg)) == []  # ... takes mix rows as an additive change
    run(load_grid(cfg), root)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # the unmixed cells are not recomputed
    import ptst.report

    ptst.report.run(root)
    spec = json.loads((root / "chat-vanilla+safety-sp.s0" / "spec.json").read_text())
    assert [(m["n"], m["template"]) for m in spec["mix"]] == [(4, "chat:llama")]
    report = (root / "report.md").read_text(encoding="utf-8")
    assert "| chat:vanilla + safety-sp |" in report and "| chat:llama + safety-task |" in report
    with open(root / "results.csv", encoding="utf-8") as f:
        trains = {r["train_template"] for r in csv.DictReader(f)}
    assert {"chat:vanilla + safety-task", "chat:llama + safety-sp", "chat:vanilla"} <= trains
    # the mixed PTST cell is compared with the mixed diagonal, the plain one with the plain diagonal
    from ptst.report.grid import build_grid
    from ptst.report.load import load_cells
    from ptst.report.ordering import ptst_pairs

    pairs = ptst_pairs(build_grid(load_cells(root)))
    assert {("chat:vanilla", "chat:llama"), ("chat:vanilla + safety-task", "chat:llama"),
            ("chat:vanilla + safety-sp", "chat:llama")} <= set(pairs)
    from ptst.report.grid import diagonal_of

    assert diagonal_of("chat:vanilla + safety-task", "chat:llama") == "chat:llama + safety-task"
    assert "| chat:vanilla + safety-task → chat:llama | 0 | harm |" in report  # in the PTST comparison table
    from ptst.report.grid import role

    assert role("chat:llama + safety-task", "chat:llama") == "diagonal"  # a mixed row's diagonal is its own
    assert role("chat:vanilla + safety-task", "chat:llama", {"chat:vanilla + safety-task": False}) == "ptst"


@pytest.mark.parametrize("old,new,refused", [
    ([], ["chat:llama"], ["mixes.sp.train_templates"]),  # every template -> one: drops finished cells
    (["chat:llama"], [], []),  # one -> every template: adds cells
    (["chat:llama"], ["chat:llama", "chat:vanilla"], []),
    (["chat:vanilla", "chat:llama"], ["chat:llama"], ["mixes.sp.train_templates"]),
])
def test_a_mix_row_may_gain_training_templates_but_not_lose_one(tmp_path, tiny_model_dir, old, new, refused):
    data = tiny_data(tmp_path / "data")

    def row(tts: list[str]) -> dict:
        return {"name": "sp", "data": f"jsonl:{data['refusals']}", "n": 4, "train_templates": tts}

    a, b = (load_grid(_grid(tmp_path, tiny_model_dir, False), [f"mixes=[{json.dumps(row(t))}]"]) for t in (old, new))
    assert grid_changes(a, b) == refused
