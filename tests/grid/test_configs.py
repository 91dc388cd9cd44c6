"""Every shipped config loads, validates and plans (`--dry-run`) without touching a model or the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptst.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"quickstart.yaml", "quickstart-gsm8k.yaml", "paper-llama2-gsm8k.yaml",
                                        "paper-mistral-gsm8k.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_plans(path, tmp_path, capsys):
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "evaluation cells" in out and not (tmp_path / "run").exists()  # a dry run writes nothing


def test_the_two_quickstarts_share_their_alignment_spec():
    """The GSM8K quickstart differs from the whole-story one in its fine-tuning data and grid, not its aligned
    model."""
    from ptst.grid.cells import load_grid

    folder = CONFIGS[0].parent
    a, b = (load_grid(str(folder / n), []) for n in ("quickstart.yaml", "quickstart-gsm8k.yaml"))
    assert a.align == b.align and a.model == b.model
    assert (a.train["data"], b.train["data"]) == ("chatdoctor", "gsm8k")


def test_the_quickstart_tells_the_whole_story():
    """One config, two seeds: PTST and its same-template path evaluated along checkpoints, a safety-mixing row, an
    inoculation row (with its leak cell), and the strategies compared at equal helpfulness."""
    from ptst.grid.cells import load_grid
    from ptst.grid.plan import expand
    from ptst.specs.report import compare_pairs

    cfg = load_grid(str(CONFIGS[0].parent / "quickstart.yaml"), [])
    assert len(cfg.seeds) >= 2 and cfg.checkpoints and cfg.mixes
    assert {"chat:vanilla", "chat:llama", "chat:inoculation-tan"} <= set(cfg.train_templates)
    ids = {c.id for c in expand(cfg)}
    assert {"chat-llama+safety.s0", "chat-inoculation-tan.s0", "chat-vanilla.s1"} <= ids
    ptst_path = [e.id for c in expand(cfg) if c.id == "chat-vanilla.s0" for e in c.evals]
    assert "chat-llama@step-4" in ptst_path
    leak = [e.id for c in expand(cfg) if c.id == "chat-inoculation-tan.s0" for e in c.evals]
    assert "chat-inoculation-tan" in leak
    assert ("chat:llama + safety", "chat:llama") in {a for a, _ in compare_pairs(cfg.report["compare"])}
