"""Strategy A vs strategy B at equal helpfulness: the pairs a run's grid.yaml `report.compare` names join the
frontier's comparisons (after PTST's, never twice), each side named for what it is, a path without checkpoints said
to be not compared."""

from __future__ import annotations

from pathlib import Path

import pytest

import ptst.report.frontier as frontier
from ptst.errors import PtstError
from ptst.report.frontier import compare, figure, frontier_blocks, tidy_rows, trajectories
from ptst.report.grid import build_grid
from ptst.report.load import load_cells
from ptst.report.render import Para, Table
from ptst.report.strategies import who
from ptst.report.tidy import COLUMNS
from tests.report.test_frontier import L, V, _fake_run, _path

INOC = "chat:inoculation-tan"
PTST = f"{V} -> {L}"


def _configure(run: Path, *pairs: tuple[str, str]) -> None:
    lines = "".join(f"    - ['{a}', '{b}']\n" for a, b in pairs)
    (run / "grid.yaml").write_text(f"name: x\nreport:\n  compare:\n{lines}")


def _said(run: Path) -> list[str]:
    blocks, _ = frontier_blocks(run, build_grid(load_cells(run)))
    return [b.text for b in blocks if isinstance(b, Para) and b.text.startswith("At equal")]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The frontier's fake run (PTST, both same-template paths) plus inoculation: trained with Tan et al.'s prompt,
    tested without one, its rate 10-20 points above PTST's at every helpfulness."""
    out = _fake_run(tmp_path)
    _path(out, INOC, V, [(15, 10), (20, 20), (25, 30)])
    return out


def test_names_say_what_each_path_is():
    grid = build_grid([])  # the registry's safety-prompt flags decide the roles
    assert who(grid, V, L) == "PTST's (train chat:vanilla, test chat:llama)"
    assert who(grid, L, L) == "the same-template path's (train and test chat:llama)"
    assert who(grid, INOC, V) == "inoculation's (train chat:inoculation-tan, test chat:vanilla)"
    assert who(grid, INOC, L) == "inoculation with PTST's (train chat:inoculation-tan, test chat:llama)"
    assert who(grid, L, "chat:self-reminder") == "the test-time defence's (train chat:llama, test chat:self-reminder)"
    assert who(grid, f"{L} + safety", L) == "safety mixing's (train chat:llama + safety, test chat:llama)"
    assert who(grid, f"{V} + safety", L) == "PTST with safety mixing's (train chat:vanilla + safety, test chat:llama)"
    assert who(grid, "chat:alpaca", V) == "the path's (train chat:alpaca, test chat:vanilla)"


def test_a_configured_pair_is_compared_after_ptst(run):
    assert len(_said(run)) == 2  # unconfigured: PTST against its two same-template paths only
    _configure(run, (f"{INOC} -> {V}", f"{V} → {L}"))
    said = _said(run)
    assert len(said) == 3 and "PTST's (train chat:vanilla, test chat:llama) non-refusal" in said[0]
    assert said[2].startswith("At equal GSM8K accuracy (strict), inoculation's (train chat:inoculation-tan, test "
                              "chat:vanilla) non-refusal rate (keyword) on AdvBench was higher than PTST's (train "
                              "chat:vanilla, test chat:llama) by ")
    grid = build_grid(load_cells(run))
    blocks, _ = frontier_blocks(run, grid)
    (tab,) = [b for b in blocks if isinstance(b, Table)]
    assert [r[9] for r in tab.rows] == ["A lower", "A lower", "A higher"]
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in tidy_rows(run, grid)]
    diff = next(r for r in rows if r["metric"] == "matched_diff.keyword" and r["train_template"] == INOC)
    assert diff["category"] == f"vs {V} → {L}" and float(diff["low"]) > 0 and diff["ptst_cell"] == "false"


def test_a_path_without_checkpoints_is_said_not_compared(run):
    _configure(run, (f"{L} + safety -> {L}", PTST), (PTST, "chat:alpaca -> chat:vanilla"))
    said = _said(run)
    assert said[2] == ("At equal GSM8K accuracy (strict), safety mixing's (train chat:llama + safety, test chat:llama) "
                       "non-refusal rate (keyword) on AdvBench was not compared with PTST's (train chat:vanilla, test "
                       "chat:llama): A (train chat:llama + safety, test chat:llama) was not evaluated at checkpoints.")
    assert said[3].endswith("was not compared with the path's (train chat:alpaca, test chat:vanilla): B (train "
                            "chat:alpaca, test chat:vanilla) was not evaluated at checkpoints.")
    grid = build_grid(load_cells(run))
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in tidy_rows(run, grid)]
    mixing = [r for r in rows if r["train_template"] == f"{L} + safety"]
    assert [(r["metric"], r["value"], r["experiment"]) for r in mixing] == [
        ("matched_diff.keyword", "", "exp"), ("matched_p.keyword", "", "exp")]


def test_a_default_pair_or_a_repeat_is_not_compared_twice(run):
    _configure(run, (PTST, f"{L} -> {L}"), (f"{INOC} -> {V}", PTST), (f"{INOC} -> {V}", PTST),
               (f"{L} -> {L}", PTST), (PTST, f"{INOC} -> {V}"))  # the same pairs either way round
    said = _said(run)
    assert len(said) == 3 and sum(s.startswith("At equal GSM8K accuracy (strict), inoculation's") for s in said) == 1
    assert sum("than the same-template path's (train and test chat:llama)" in s for s in said) == 1


def test_a_configured_pair_is_compared_per_seed(tmp_path):
    run = _fake_run(tmp_path, seeds=(0, 1))
    _path(run, INOC, V, [(15, 10), (20, 20), (25, 30)], seed=1)  # inoculation trained with seed 1 only
    _configure(run, (f"{INOC} -> {V}", PTST))
    grid = build_grid(load_cells(run))
    vs = compare(grid, trajectories(grid, run), "keyword", ("gsm8k", "accuracy.strict"), n_boot=50,
                 wanted=frontier.configured(run))
    mine = [(v.a.seed, v.note) for v in vs if v.a.train == INOC]
    assert mine == [(0, f"A (train {INOC}, test {V}) was not evaluated at checkpoints"), (1, "")]


def test_a_malformed_entry_in_the_run_config_is_named(run):
    (run / "grid.yaml").write_text(f"name: x\nreport:\n  compare:\n    - ['{PTST}', 'chat:llama']\n")
    with pytest.raises(PtstError, match=r"report.compare\[0\]\[1\]: expected a path"):
        frontier_blocks(run, build_grid(load_cells(run)))


def test_configured_paths_are_drawn_when_the_figure_is_trimmed(run, monkeypatch):
    grid = build_grid(load_cells(run))
    trajs = trajectories(grid, run)
    monkeypatch.setattr(frontier, "pick_cells", lambda grid, pairs: ([], True))  # trimmed to nothing
    assert figure(grid, trajs, "advbench", "keyword", ("gsm8k", "accuracy.strict")) is None
    drawn = figure(grid, trajs, "advbench", "keyword", ("gsm8k", "accuracy.strict"), keep=[(INOC, V)])
    assert drawn is not None and drawn[0][:4] == b"\x89PNG" and drawn[1]


def test_seeds_that_reach_different_verdicts_are_said_to_disagree(tmp_path):
    run = _fake_run(tmp_path)  # seed 0: PTST far below the same-template path
    same = [(10, 10), (20, 20), (30, 30)]
    _path(run, V, L, same, seed=1)  # seed 1: PTST's path is the same-template path's
    _path(run, L, L, same, seed=1)
    said = [b.text for b in frontier_blocks(run, build_grid(load_cells(run)))[0] if isinstance(b, Para)]
    split = [s for s in said if s.startswith("The seeds disagree on PTST's (train chat:vanilla, test chat:llama) "
                                             "against the same-template path's (train and test chat:llama)")]
    assert len(split) == 1 and "seed 0: lower" in split[0] and "seed 1: no significant difference (+0.0" in split[0]
    agree = _fake_run(tmp_path / "b", seeds=(0, 1))  # both seeds alike: nothing to say
    assert not any(isinstance(b, Para) and b.text.startswith("The seeds disagree")
                   for b in frontier_blocks(agree, build_grid(load_cells(agree)))[0])
