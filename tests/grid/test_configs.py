"""Every shipped config loads, validates and plans (`--dry-run`) without touching a model or the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptst.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_configs_are_found():
    assert {p.name for p in CONFIGS} >= {"quickstart.yaml", "quickstart-tradeoff.yaml", "paper-llama2-gsm8k.yaml",
                                        "paper-mistral-gsm8k.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_plans(path, tmp_path, capsys):
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "evaluation cells" in out and not (tmp_path / "run").exists()  # a dry run writes nothing


def test_the_two_quickstarts_share_their_alignment_spec():
    """The trade-off demo differs from the quickstart in its fine-tuning data and evals, not its aligned model."""
    from ptst.grid.cells import load_grid

    folder = CONFIGS[0].parent
    a, b = (load_grid(str(folder / n), []) for n in ("quickstart.yaml", "quickstart-tradeoff.yaml"))
    assert a.align == b.align and a.model == b.model
    assert (a.train["data"], b.train["data"]) == ("gsm8k", "chatdoctor")
