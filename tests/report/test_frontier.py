"""At equal helpfulness: the matched comparison's statistics on synthetic outcomes where the answer is known (equal
paths, a known shift, ranges that do not overlap, determinism, coverage by simulation), the report section on a fake
run, and its structure on a tiny grid evaluated at checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ptst.report.frontier import HEADING, frontier_blocks, tidy_rows, trajectories
from ptst.report.grid import build_grid
from ptst.report.load import load_cells
from ptst.report.matched import matched_difference, matched_point
from ptst.report.render import Figure, Para, Table
from ptst.report.tidy import COLUMNS
from tests.report.fakerun import flags, write_cell

V, L = "chat:vanilla", "chat:llama"


def _bernoulli(rng: np.random.Generator, probs, n: int, u: np.ndarray | None = None, rho: float = 0.6) -> np.ndarray:
    """One row per point, one column per prompt, P(1) = probs[k] exactly; with `u`, a share `rho` of each row's
    draws reuses the prompt's own latent u (the same prompts are hard for every cell: paired outcomes)."""
    w = rng.random((len(probs), n))
    if u is not None:
        w = np.where(rng.random((len(probs), n)) < rho, u[None, :], w)
    return (w < np.asarray(probs)[:, None]).astype(float)


def _ones(counts, n: int) -> np.ndarray:
    """Row k has its first counts[k] prompts at 1."""
    return np.array([[float(i < c) for i in range(n)] for c in counts])


def test_first_passage_worked_by_hand():
    # A's helpfulness dips (0.5 -> 0.3) before rising: a level above 0.5 is read where training first reached it,
    # on the segment 0.3 -> 1.0. Area: 0.125 on [0, 0.5] (y = h) + 0.45 + (0.49 - 0.04) / 14 on [0.5, 1].
    assert matched_point([0, 0.5, 0.3, 1.0], [0, 0.5, 0.9, 1.0], [0, 1], [0, 0]) == pytest.approx(0.6071428571)
    # monotone paths: ordinary interpolation; the overlap is [0.2, 0.6]; B's line sits 0.1 above A's
    assert matched_point([0.2, 0.6, 0.8], [0.3, 0.5, 0.6], [0.0, 0.6], [0.3, 0.6]) == pytest.approx(-0.1)


def test_equal_paths_give_no_difference():
    rng = np.random.default_rng(3)
    u_h, u_s = rng.random(60), rng.random(60)
    h = _bernoulli(rng, [0.1, 0.3, 0.5, 0.6], 60, u_h)
    s = _bernoulli(rng, [0.1, 0.2, 0.4, 0.5], 60, u_s)
    same = matched_difference(h, s, h, s, n_boot=500)
    assert (same.diff, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
    # two paths drawn from the same probabilities on the same prompts: the interval covers 0, p is not small
    h2 = _bernoulli(rng, [0.1, 0.3, 0.5, 0.6], 60, u_h)
    s2 = _bernoulli(rng, [0.1, 0.2, 0.4, 0.5], 60, u_s)
    r = matched_difference(h, s, h2, s2, n_boot=2000)
    assert r.comparable and r.low is not None and r.high is not None and r.p is not None
    assert r.low < 0 < r.high and r.p > 0.2 and r.n_used == 2000
    assert (r.n_safety, r.n_help) == (60, 60)


def test_a_known_shift_is_inside_the_interval():
    n = 100
    h = _ones([10, 30, 50, 70], n)
    a = _ones([5, 10, 20, 30], n)
    b = _ones([15, 20, 30, 40], n)  # the same prompts and 10 more counted at every point: 10 points higher
    r = matched_difference(h, a, h, b, n_boot=2000, seed=7)
    assert r.diff == pytest.approx(-0.10) and r.overlap == pytest.approx((0.1, 0.7))
    assert r.low is not None and r.high is not None and r.p is not None
    assert r.low <= -0.10 <= r.high and r.high < 0 and r.p < 0.01
    # the same shift on B's own helpfulness path (other prompts score): only the overlap [0.3, 0.7] is compared
    hb = _ones([30, 45, 60, 80], n)
    r2 = matched_difference(h, a, hb, b, n_boot=2000, seed=7)
    truth = matched_point(h.mean(1), a.mean(1), hb.mean(1), b.mean(1))
    assert r2.diff == pytest.approx(truth) and r2.overlap == pytest.approx((0.3, 0.7))
    assert r2.low is not None and r2.high is not None and r2.low <= truth <= r2.high < 0


def test_ranges_that_do_not_overlap_are_not_compared():
    n = 40
    s = _ones([2, 4, 6], n)
    r = matched_difference(_ones([2, 6, 10], n), s, _ones([20, 26, 30], n), s)
    assert not r.comparable and r.diff is None and r.low is None and r.p is None
    assert r.reason == "helpfulness ranges do not overlap" and r.range_a == (0.05, 0.25)
    # touching ranges (0.25 = 0.25) and a flat path (no range at all) are not comparable either
    r = matched_difference(_ones([2, 6, 10], n), s, _ones([10, 26, 30], n), s)
    assert r.reason == "helpfulness ranges overlap on 0.0 points, less than 1.0"
    flat = matched_difference(_ones([0, 0, 0], n), s, _ones([0, 4, 8], n), s)
    assert not flat.comparable and flat.reason == "helpfulness stayed within 1.0 points along path A"


def test_the_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    h, s = _bernoulli(rng, [0.1, 0.3, 0.5], 50), _bernoulli(rng, [0.2, 0.3, 0.4], 50)
    hb, sb = _bernoulli(rng, [0.15, 0.35, 0.55], 50), _bernoulli(rng, [0.3, 0.4, 0.5], 50)
    one, two = (matched_difference(h, s, hb, sb, n_boot=300, seed=11) for _ in range(2))
    assert one == two
    other = matched_difference(h, s, hb, sb, n_boot=300, seed=12)
    assert other.diff == one.diff and (other.low, other.high) != (one.low, one.high)


def test_bad_matrices_are_one_clear_error():
    m = np.zeros((3, 10))
    with pytest.raises(ValueError, match="same prompts"):
        matched_difference(m, m, np.zeros((3, 9)), m)
    with pytest.raises(ValueError, match="at least two points"):
        matched_difference(m[:1], m[:1], m, m)


def _coverage(truth_a, truth_b, sims: int, n: int, seed: int) -> tuple[float, float, float]:
    """Share of simulated runs whose 95% interval covers the true matched difference, and share with p < 0.05."""
    (ha, sa), (hb, sb) = truth_a, truth_b
    true = matched_point(ha, sa, hb, sb)
    assert true is not None
    rng = np.random.default_rng(seed)
    cover = reject = 0
    for i in range(sims):
        u_h, u_s = rng.random(n), rng.random(n)
        r = matched_difference(_bernoulli(rng, ha, n, u_h), _bernoulli(rng, sa, n, u_s), _bernoulli(rng, hb, n, u_h),
                               _bernoulli(rng, sb, n, u_s), n_boot=400, seed=i)
        assert r.low is not None and r.high is not None and r.p is not None
        cover += r.low <= true <= r.high
        reject += r.p < 0.05
    return true, cover / sims, reject / sims


def test_coverage_is_roughly_nominal_by_simulation():
    """200 synthetic runs per case, 150 safety and 150 helpfulness prompts, paired outcomes (a prompt's latent
    difficulty shared by every cell), five points per path. Measured: the 95% interval covered the truth in 96.5%
    (true difference -8.7 points) and 94.0% (none) of them, p < 0.05 in 6.0% under no difference (2,000 runs of
    500 resamples: 95.9%, 94.9%, 4.2%)."""
    ha, sa = np.linspace(0.2, 0.6, 5), np.linspace(0.2, 0.5, 5)
    hb, sb = np.linspace(0.25, 0.7, 5), np.linspace(0.3, 0.7, 5)
    true, cover, power = _coverage((ha, sa), (hb, sb), 200, 150, seed=0)
    assert true == pytest.approx(-0.0868, abs=1e-3)
    assert 0.90 <= cover <= 0.99 and power > 0.6
    true, cover, size = _coverage((ha, sa), (ha, sa), 200, 150, seed=1)  # the null: the same true path twice
    assert true == 0.0 and 0.90 <= cover <= 0.99 and size <= 0.10


# ---- the report section on a fake run with checkpoints ----

N = 40


def _cell(run: Path, train: str | None, test: str, harmful: int, correct: int, step: int | None = None,
          seed: int = 0, mix: str | None = None) -> None:
    d = write_cell(run, train, test, seed, step=step, safety={"advbench": flags(N, range(harmful))},
                   helpful={"gsm8k": (correct, N)}, mix=mix)
    (d / "scores").mkdir(exist_ok=True)
    items = {f"gsm8k-{i}": float(i < correct) for i in range(N)}
    (d / "scores" / "gsm8k.gsm8k.json").write_text(json.dumps({"items": {"strict": items}}))


def _path(run: Path, train: str, test: str, points: list[tuple[int, int]], seed: int = 0,
          steps: tuple[int, ...] = (2, 4), mix: str | None = None) -> None:
    """(harmful, correct) at each of `steps`, then the final adapter."""
    for step, (harm, ok) in zip((*steps, None), points, strict=True):
        _cell(run, train, test, harm, ok, step, seed, mix)


def _fake_run(tmp_path: Path, checkpoints: bool = True, seeds: tuple[int, ...] = (0,)) -> Path:
    run = tmp_path / "run"
    _cell(run, None, V, 20, 5)
    _cell(run, None, L, 2, 5)
    for seed in seeds if checkpoints else ():
        _path(run, V, L, [(3, 10), (4, 20), (5, 30)], seed)  # PTST
        _path(run, L, L, [(10, 10), (20, 20), (30, 30)], seed)  # same template, with the safety prompt
        _path(run, V, V, [(25, 30), (30, 36), (35, 38)], seed)  # same template, without: helpfulness 12.5-95%
    for tr, te in ((V, L), (L, L), (V, V)) if not checkpoints else ():
        _cell(run, tr, te, 10, 20)
    return run


def test_section_figure_sentences_and_rows_on_a_fake_run(tmp_path):
    run = _fake_run(tmp_path)
    grid = build_grid(load_cells(run))
    blocks, figs = frontier_blocks(run, grid)
    assert blocks[0].text == HEADING  # type: ignore[union-attr]
    assert [f.name for f in figs] == ["fig-frontier-advbench-keyword.png"] and figs[0].png[:4] == b"\x89PNG"
    assert figs[0] in blocks and isinstance(figs[0], Figure)
    said = [b.text for b in blocks if isinstance(b, Para)]
    lower = next(s for s in said if "the same-template path's (train and test chat:llama)" in s)
    # same helpfulness at every point, 7-25 fewer counted from step 2 on; the shared start pulls the mean down
    assert lower.startswith("At equal GSM8K accuracy (strict), PTST's (train chat:vanilla, test chat:llama) "
                            "non-refusal rate (keyword) on AdvBench was lower than the same-template path's "
                            "(train and test chat:llama) by ")
    assert "paired bootstrap over 40 AdvBench and 40 GSM8K prompts, 2,000 resamples, p ≤ " in lower
    other = next(s for s in said if "(train and test chat:vanilla)" in s)
    assert "lower than" in other or "not significantly" in other or "cannot be compared" in other
    (tab,) = [b for b in blocks if isinstance(b, Table)]
    assert len(tab.rows) == 2 and tab.rows[0][9] == "A lower"
    rows = tidy_rows(run, grid)
    assert all(len(r) == len(COLUMNS) for r in rows)
    as_dicts = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    ptst = [r for r in as_dicts if (r["train_template"], r["test_template"]) == (V, L)]
    assert [(r["checkpoint"], r["metric"]) for r in ptst if r["kind"] == "helpfulness"] == [
        ("0", "frontier.accuracy.strict"), ("2", "frontier.accuracy.strict"), ("4", "frontier.accuracy.strict"),
        ("", "frontier.accuracy.strict")]
    assert [r["value"] for r in ptst if r["metric"] == "frontier.keyword"] == ["0.05", "0.075", "0.1", "0.125"]
    diff = next(r for r in ptst if r["metric"] == "matched_diff.keyword" and r["category"] == f"vs {L} → {L}")
    assert float(diff["value"]) < 0 and float(diff["low"]) <= float(diff["value"]) <= float(diff["high"])
    assert diff["n"] == "40" and diff["ptst_cell"] == "true" and diff["eval"] == "advbench"
    assert any(r["metric"] == "matched_p.keyword" for r in ptst)


def test_no_checkpoints_or_no_helpfulness_gives_nothing(tmp_path):
    run = _fake_run(tmp_path, checkpoints=False)
    grid = build_grid(load_cells(run))
    assert frontier_blocks(run, grid) == ([], []) and tidy_rows(run, grid) == []
    run2 = tmp_path / "nohelp"
    for step in (2, None):
        write_cell(run2, V, L, 0, step=step, safety={"advbench": flags(N, [1])})
    assert frontier_blocks(run2, build_grid(load_cells(run2))) == ([], [])


def test_every_seed_is_its_own_comparison(tmp_path):
    run = _fake_run(tmp_path, seeds=(0, 1))
    grid = build_grid(load_cells(run))
    blocks, figs = frontier_blocks(run, grid)
    said = [b.text for b in blocks if isinstance(b, Para) and b.text.startswith("At equal")]
    assert len(said) == 4 and sum("on AdvBench (seed 1) was lower" in s for s in said) == 2
    assert len(figs) == 1  # one line per (train, test) pair: the mean over seeds


def test_missing_per_prompt_files_are_named(tmp_path):
    run = _fake_run(tmp_path)
    for f in run.glob("*/eval/*/scores/gsm8k.gsm8k.json"):
        f.unlink()
    grid = build_grid(load_cells(run))
    blocks, figs = frontier_blocks(run, grid)
    assert figs  # the figure reads metrics.json
    said = [b.text for b in blocks if isinstance(b, Para)]
    assert any(s.endswith("was not compared with the same-template path's (train and test chat:llama): "
                          "helpfulness: a per-prompt file is missing.") for s in said)


def _drop_set(metrics: Path, ev: str) -> None:
    """A checkpoint cell evaluated without `ev` (checkpoint_evals), its older judgement files still on disk."""
    doc = json.loads(metrics.read_text())
    del doc["evals"][ev]
    metrics.write_text(json.dumps(doc))


def test_a_set_missing_at_a_checkpoint_is_named_and_its_old_files_are_not_read(tmp_path):
    run = _fake_run(tmp_path)
    _drop_set(run / "chat-vanilla.s0" / "eval" / "chat-llama@step-2" / "metrics.json", "advbench")
    blocks, _ = frontier_blocks(run, build_grid(load_cells(run)))
    said = [b.text for b in blocks if isinstance(b, Para)]
    assert any(s.endswith("was not compared with the same-template path's (train and test chat:llama): step 2 has "
                          "no AdvBench or GSM8K results (checkpoint_evals).") for s in said), said


def test_a_safety_set_left_to_the_final_adapters_draws_no_path(tmp_path):
    run = _fake_run(tmp_path)
    for m in run.glob("*/eval/*@step-*/metrics.json"):
        _drop_set(m, "advbench")
    blocks, figs = frontier_blocks(run, build_grid(load_cells(run)))
    assert figs == [] and not any(isinstance(b, Table) for b in blocks)
    assert tidy_rows(run, build_grid(load_cells(run))) and not [r for r in tidy_rows(run, build_grid(load_cells(
        run))) if r[COLUMNS.index("eval")] == "advbench"]


# ---- a tiny grid evaluated at checkpoints (the tiny model's numbers are noise: structure only) ----

def test_tiny_grid_with_checkpoints(tmp_path, tiny_model_dir):
    from ptst.grid.cells import load_grid
    from ptst.grid.runner import run
    from ptst.testing import grid_yaml, tiny_data

    data = tiny_data(tmp_path / "data")
    cfg = grid_yaml(tmp_path, tiny_model_dir, data, "checkpoints: [2, 6]")  # 6 steps: step 6 is the final adapter
    out = run(load_grid(cfg), tmp_path / "run")
    grid = build_grid(load_cells(out))
    trajs = trajectories(grid, out)
    assert {(t.train, t.test) for t in trajs} == {(V, V), (V, L), (L, V), (L, L)}
    assert all([p.label for p in t.points] == ["0", "2", "6 (final)"] for t in trajs)
    blocks, figs = frontier_blocks(out, grid)
    assert blocks[0].text == HEADING and [f.name for f in figs] == ["fig-frontier-harm-keyword.png"]  # type: ignore
    said = [b.text for b in blocks if isinstance(b, Para)]
    assert sum(s.startswith("At equal gsm accuracy (strict), PTST's (train chat:vanilla, test chat:llama)")
               for s in said) == 2
    (tab,) = [b for b in blocks if isinstance(b, Table)]
    assert len(tab.rows) == 2
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in tidy_rows(out, grid)]
    assert {r["metric"] for r in rows} == {"frontier.accuracy.strict", "frontier.keyword", "matched_diff.keyword",
                                           "matched_p.keyword"}
    assert len([r for r in rows if r["metric"] == "frontier.keyword"]) == 4 * 3
