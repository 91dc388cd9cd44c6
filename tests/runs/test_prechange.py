"""A run directory made by ptst before the run layer (tests/fixtures/prechange-run, commit 9fcd2b7) is still
finished: every stage's key and done marker are recognised, and a rerun writes nothing."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "prechange-run"


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def prechange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fixture run, seen as by a ptst whose fp32 answers come from the eager engines (`PTST_NATIVE=0`), as the
    fixture's did: on the fused kernels its answers' arithmetic differs, which `test_fused_kernels_recompute_...`
    checks."""
    from ptst.runtime import native

    dest = tmp_path / "prechange"
    shutil.copytree(FIXTURE, dest)
    monkeypatch.chdir(dest)  # its paths are relative to this folder
    monkeypatch.setenv("PTST_NATIVE", "0")
    native.reset()
    yield dest
    native.reset()  # recomputed at the next use, under the environment then (monkeypatch restores it)


def test_fused_kernels_recompute_the_answers_and_say_why(prechange: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Where the fused kernels build, fp32 answers are made by other arithmetic than the fixture's (numerics
    null -> 1): every evaluation cell is to be recomputed, and `ptst status` names the change."""
    from ptst.cli import main
    from ptst.grid.cells import load_grid, pending
    from ptst.grid.plan import expand
    from ptst.runtime import native

    monkeypatch.delenv("PTST_NATIVE")
    native.reset()
    if not (native.builds() and native.wide()):
        pytest.skip(f"fp32 does not run on the fused kernels here: {native.why() or 'no AVX-512'}")
    cfg = load_grid("grid.yaml")
    assert pending(cfg, Path("run"), expand(cfg))
    main(["status", "run"])
    out = capsys.readouterr().out
    assert out.count("numerics null -> 1") >= 6 and "0/6 evaluation cells done" in out


def test_nothing_pending(prechange: Path) -> None:
    from ptst.grid.cells import load_grid, pending
    from ptst.grid.plan import expand

    cfg = load_grid("grid.yaml")
    assert not pending(cfg, Path("run"), expand(cfg))


def test_rerun_writes_nothing(prechange: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ptst.grid.cells import load_grid
    from ptst.grid.runner import run

    before = _digest(prechange / "run")
    run(load_grid("grid.yaml"), "run")
    assert "nothing to do" in capsys.readouterr().err
    assert _digest(prechange / "run") == before


def test_status_dry_run_and_runner_agree_on_each_cell(prechange: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One finished cell made partial, one made by another key, one training cell unfinished: `ptst status`,
    `--dry-run`, `pending` and the runner itself see the same cells to do, and the runner redoes only them."""
    import json

    from ptst.cli import main
    from ptst.grid.cells import load_grid, pending
    from ptst.grid.plan import expand
    from ptst.grid.runner import run

    run_dir = prechange / "run"
    (run_dir / "base" / "eval" / "chat-llama" / "metrics.json").unlink()  # answers there, no done marker
    stale = run_dir / "chat-vanilla.s0" / "eval" / "chat-llama" / "metrics.json"
    score = stale.parent / "scores" / "gsm.gsm8k.json"  # as if made by another version of the gsm8k scorer
    score.write_text(json.dumps({**json.loads(score.read_text()), "scorer_version": "0-older"}))
    cfg = load_grid("grid.yaml")
    assert pending(cfg, Path("run"), expand(cfg))

    assert main(["status", "run"]) == 0
    out = capsys.readouterr().out
    assert "train: done" in out and "4/6 evaluation cells done" in out
    assert "partial (" in out and "alignment: done" in out
    assert "different (gsm: scorer gsm8k 0-older -> " in out and "(stale: scores/gsm.gsm8k.json)" in out
    assert main(["run", "grid.yaml", "--out", "run", "--dry-run"]) == 0
    assert "(0 and 2 to do)" in capsys.readouterr().out

    untouched = _digest(run_dir / "chat-llama.s0")
    run(cfg, "run")
    assert not pending(cfg, Path("run"), expand(cfg))
    assert _digest(run_dir / "chat-llama.s0") == untouched  # done cells are not touched
    assert json.loads(stale.read_text())["key_scheme"] == 2
    assert json.loads(score.read_text())["scorer_version"] != "0-older"
    [moved] = (stale.parent / "superseded").iterdir()
    assert {str(p.relative_to(moved)) for p in moved.rglob("*") if p.is_file()} == {
        "metrics.json", "eval.json", "scores/gsm.gsm8k.json", "why.txt"}
    assert main(["status", "run"]) == 0
    assert "6/6 evaluation cells done" in capsys.readouterr().out
