"""A run directory made by ptst before the run layer (tests/fixtures/prechange-run, commit 9fcd2b7) is still
finished: every stage's key and done marker are recognised, and a rerun writes nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "prechange-run"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def prechange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "prechange"
    shutil.copytree(FIXTURE, dest)
    monkeypatch.chdir(dest)  # its paths are relative to this folder
    return dest


def test_nothing_pending(prechange: Path) -> None:
    from ptst.grid.plan import expand
    from ptst.grid.runner import load_grid, pending

    cfg = load_grid("grid.yaml")
    assert not pending(cfg, Path("run"), expand(cfg))


def test_rerun_writes_nothing(prechange: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ptst.grid.runner import load_grid, run

    before = _digest(prechange / "run")
    run(load_grid("grid.yaml"), "run")
    assert "nothing to do" in capsys.readouterr().err
    assert _digest(prechange / "run") == before
