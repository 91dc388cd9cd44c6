"""The leak cell: a model trained under an inoculation prompt is also tested under that prompt, even when it is no
test template; grids without an inoculation template plan exactly the cells they did before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptst.cli import main
from ptst.grid.cells import load_grid
from ptst.grid.config import GridConfig
from ptst.grid.plan import BASE, EvalCell, TrainCell, expand, slug
from ptst.testing import grid_yaml, tiny_data

EVAL_FILES = {"eval.json", "metrics.json", "generations/harm.jsonl", "generations/harm.jsonl.meta.json",
              "generations/gsm.jsonl", "generations/gsm.jsonl.meta.json", "judgements/harm.keyword.jsonl",
              "scores/harm.asr-keyword.json", "scores/gsm.gsm8k.json"}


def _old_expand(cfg: GridConfig) -> list[TrainCell]:
    """The planner as it was before leak cells (ptst/grid/plan.py at b6543da)."""
    cells: list[TrainCell] = []
    if cfg.baseline:
        base = tuple(EvalCell(BASE, None, t, cfg.seeds[0]) for t in cfg.test_templates)
        cells.append(TrainCell(BASE, None, cfg.seeds[0], base))
    for seed in cfg.seeds:
        for tt in cfg.train_templates:
            cid = f"{slug(tt)}.s{seed}"
            evals = [EvalCell(cid, tt, t, seed) for t in cfg.test_templates]
            evals += [EvalCell(cid, tt, t, seed, step) for step in cfg.checkpoints for t in cfg.test_templates]
            cells.append(TrainCell(cid, tt, seed, tuple(evals)))
    return cells


def _grid(tmp_path: Path, model: Path | str, train: list[str], test: list[str], extra: str = "") -> Path:
    path = grid_yaml(tmp_path, Path(model), tiny_data(tmp_path / "data"), extra)
    text = path.read_text(encoding="utf-8")
    text = text.replace("train_templates: [chat:vanilla, chat:llama]", f"train_templates: [{', '.join(train)}]")
    text = text.replace("test_templates: [chat:vanilla, chat:llama]", f"test_templates: [{', '.join(test)}]")
    path.write_text(text, encoding="utf-8")
    return path


def _paths(cells: list[TrainCell]) -> list[str]:
    return [e.path for c in cells for e in c.evals]


@pytest.mark.parametrize(("train", "test", "extra"), [
    (["chat:vanilla", "chat:llama"], ["chat:vanilla", "chat:llama"], ""),
    (["gsm:text:vanilla", "gsm:chat:vanilla", "gsm:chat:llama"], ["gsm:chat:vanilla", "gsm:chat:llama"],
     "seeds: [0, 1]\ncheckpoints: [2]"),
    (["chat:vanilla", "chat:self-reminder"], ["chat:vanilla", "chat:self-reminder", "chat:goal-priority"],
     "baseline: false"),
    (["chat:vanilla", "chat:inoculation-tan"], ["chat:vanilla", "chat:inoculation-tan"], ""),  # already tested
])
def test_grids_without_a_leak_cell_plan_what_they_did(tmp_path, train, test, extra):
    cfg = load_grid(_grid(tmp_path, "m", train, test, extra))
    assert expand(cfg) == _old_expand(cfg)


def test_the_leak_cell_appears_exactly_for_inoculation_training_templates(tmp_path):
    train = ["gsm:chat:vanilla", "gsm:chat:inoculation-tan", "chat:inoculation-wichers", "paper:chat:inoculation-tan",
             "chat:self-reminder"]
    cfg = load_grid(_grid(tmp_path, "m", train, ["gsm:chat:vanilla", "gsm:chat:llama"],
                          "seeds: [0, 1]\ncheckpoints: [2]"))
    new, old = _paths(expand(cfg)), _paths(_old_expand(cfg))
    extra = sorted(set(new) - set(old))
    leaking = ["gsm:chat:inoculation-tan", "chat:inoculation-wichers", "paper:chat:inoculation-tan"]
    assert extra == sorted(f"{slug(t)}.s{s}/eval/{slug(t)}{step}" for t in leaking for s in (0, 1)
                           for step in ("", "@step-2"))
    assert set(old) <= set(new) and len(new) == len(set(new))
    for c in expand(cfg):
        leak = [e for e in c.evals if e.test_template not in cfg.test_templates]
        assert all(e.test_template == c.template == e.train_template for e in leak)
        assert (len(leak) == 2) is (c.template in leaking)  # final adapter and the checkpoint
        final = [e.test_template for e in c.evals if e.checkpoint is None]
        assert final == cfg.test_templates + ([c.template] if leak else [])  # after the grid's own columns


def test_a_grid_with_an_inoculation_template_runs_end_to_end(tmp_path, tiny_model_dir, capsys):
    cfg_path = _grid(tmp_path, tiny_model_dir, ["chat:vanilla", "chat:inoculation-tan"], ["chat:vanilla", "chat:llama"])
    root = tmp_path / "run"
    assert main(["run", str(cfg_path), "--out", str(root)]) == 0
    leak = root / "chat-inoculation-tan.s0" / "eval" / "chat-inoculation-tan"
    files = {str(p.relative_to(leak)) for p in leak.rglob("*") if p.is_file()}
    assert files == EVAL_FILES
    m = json.loads((leak / "metrics.json").read_text())
    assert m["cell"]["train_template"] == m["cell"]["test_template"] == "chat:inoculation-tan"
    assert m["template_fingerprints"]["train"] == m["template_fingerprints"]["test"]  # its own training prompt
    assert sorted(p.name for p in (root / "chat-vanilla.s0" / "eval").iterdir()) == ["chat-llama", "chat-vanilla"]
    assert sorted(p.name for p in (root / "base" / "eval").iterdir()) == ["chat-llama", "chat-vanilla"]
    report = (root / "report.md").read_text(encoding="utf-8")
    assert "| chat:inoculation-tan (inoculation) |" in report
    assert "cell(s) not evaluated" not in report  # the leak column is no other row's missing cell
    capsys.readouterr()
    assert main(["run", str(cfg_path), "--out", str(root)]) == 0
    assert "nothing to do: all 7 cells are done" in capsys.readouterr().err
