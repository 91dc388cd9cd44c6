"""Execute a grid: (align) → train each cell → evaluate each test template; every stage cached on its key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ptst.align import run as align
from ptst.config import dump_yaml
from ptst.data import load_dataset
from ptst.errors import PtstError
from ptst.evaluate import run as evaluate
from ptst.grid.cells import (
    align_artifact,
    check_cells,
    eval_config,
    finetune_ids,
    model_path,
    pending,
    say,
    train_config,
)
from ptst.grid.checks import check_grid_yaml, validate
from ptst.grid.config import GridConfig, RaySpec
from ptst.grid.plan import EvalCell, TrainCell, expand, select
from ptst.io import write_text_atomic
from ptst.runs.hardware import finished_elsewhere
from ptst.runs.layout import RunDir
from ptst.runtime import cpu
from ptst.train.artifact import key as train_key
from ptst.train.runner import run as train


def preflight(cfg: GridConfig, root: Path, cells: list[TrainCell]) -> set[str]:
    """Refuse, before any work, a config naming anything missing or wrong, and a run directory whose results
    were made by a different config. Returns the fine-tuning row ids (kept out of the alignment data)."""
    validate(cfg, model_path(cfg, root))
    for spec in (e.resolved() for e in cfg.evals):  # every input must be there before hours of training
        load_dataset(spec.data, spec.split, data_dir=cfg.data_dir, limit=spec.limit, seed=cfg.eval_seed)
    ids = finetune_ids(cfg)
    check_cells(cfg, root, cells, data=True)
    check_grid_yaml(cfg, root)
    return ids


def _eval(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> None:
    if cell.train_template is not None:
        adapter = Path(eval_config(cfg, model, cell, root).adapter or "")
        if not adapter.exists():
            raise PtstError(f"{cell.train_cell}: no adapter at {adapter} (is step {cell.checkpoint} a multiple "
                            "of save_every and within the run?)")
    evaluate(eval_config(cfg, model, cell, root), RunDir(root).eval(cell.train_cell, cell.id).path)


def _align_done(cfg: GridConfig, root: Path, exclude: set[str]) -> bool:
    """Whether the alignment (if any) is finished; refuses an align/ made with another config."""
    artifact = align_artifact(cfg, root, exclude)
    return artifact is None or artifact.checked_state().done


def check_options(cfg: GridConfig, executor: str | None, *, shard: str | None = None, cell: str | None = None,
                  align_only: bool = False, address: str | None = None) -> str:
    """Refuse option combinations `ptst run` cannot honour (the real run and `--dry-run` alike); returns the
    executor."""
    ex = executor or cfg.executor
    if ex == "ray" and shard is not None:
        raise PtstError("--executor ray schedules every cell itself: drop --shard (it is for processes started "
                        "by hand, see docs/cluster.md)")
    if address and ex != "ray":
        raise PtstError("--address is for --executor ray")
    if ex == "ray":
        from ptst.grid.ray_exec import require_ray  # lazy: the Ray executor, loaded only for executor: ray

        require_ray()
    if align_only and (shard is not None or cell is not None):
        raise PtstError("--align-only runs the alignment stage alone: drop --shard / --cell")
    if align_only and cfg.align is None:
        raise PtstError("--align-only: this grid has no align: section")
    return ex


def run(cfg: GridConfig, out_dir: str | Path, *, shard: str | None = None, cell: str | None = None,
        align_only: bool = False, executor: str | None = None, address: str | None = None) -> Path:
    """Run (or resume) the grid into out_dir. Finished stages are skipped; returns the run directory.
    Every check runs before anything is written. With an alignment stage, `--shard` / `--cell` processes need
    it finished first (`align_only`: run only it), so parallel processes never write align/ together.
    `executor` (default: the config's) `ray` runs the cells as Ray tasks (ptst.grid.ray_exec); `address`: the
    cluster's, overriding `ray.address`."""
    root = Path(out_dir)
    ex = check_options(cfg, executor, shard=shard, cell=cell, align_only=align_only)
    cells = select(expand(cfg), shard, cell)
    exclude = preflight(cfg, root, cells)
    elsewhere = finished_elsewhere(root, cpu.here)
    if elsewhere:
        say(elsewhere)
    aligned = _align_done(cfg, root, exclude)  # refuses an align/ made with another config
    if ex == "local" and not aligned and not align_only and (shard is not None or cell is not None):
        raise PtstError(f"--shard / --cell need a finished alignment in {RunDir(root).align.path}: run "
                        "`ptst run CONFIG --align-only` once first, then the shards or cells")
    session = None
    if ex == "ray":
        from ptst.grid.ray_exec import connect  # lazy: the Ray executor, loaded only for executor: ray

        session = connect(cfg.ray or RaySpec(), address)  # an unreachable cluster or impossible request: refused
    todo = not aligned or (not align_only and pending(cfg, root, cells))
    started = time.time()
    try:
        _write_if_changed(RunDir(root).grid_yaml, dump_yaml(cfg))
        _write_if_changed(RunDir(root).plan, _json_text(plan_doc(cfg, root)))
        if session is not None:
            from ptst.grid.ray_exec import run_grid  # lazy: the Ray executor, loaded only for executor: ray

            run_grid(cfg, root, cells, exclude, session, align_only)
        else:
            _run_local(cfg, root, cells, exclude, align_only)
    finally:
        if session is not None:
            session.close()
    if align_only:
        say(f"grid {cfg.name}: alignment done — {RunDir(root).align.path}")
        return root
    n = sum(len(c.evals) for c in cells)
    if todo:
        say(f"grid {cfg.name}: {n} evaluation cells done in {time.time() - started:.0f} s — {root}")
    else:
        say(f"grid {cfg.name}: nothing to do: all {n} cells are done — {root}")
    return root


def _run_local(cfg: GridConfig, root: Path, cells: list[TrainCell], exclude: set[str], align_only: bool) -> None:
    """The grid in this process, one stage after another."""
    if cfg.align is not None:
        align(cfg.align, cfg.model, RunDir(root).align.path, data_dir=cfg.data_dir, exclude=exclude,
              generate=cfg.generate)
    if align_only:
        return
    model = model_path(cfg, root)
    for tc in cells:
        if tc.template is not None:
            say(f"== train {tc.id} ({tc.template}, seed {tc.seed})")
            train(train_config(cfg, model, tc), RunDir(root).train(tc.id).path, resume=True)
        for ec in tc.evals:
            say(f"== eval {ec.path}")
            _eval(cfg, model, ec, root)


def _json_text(doc: Any) -> str:
    import json

    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file alone, so that a rerun of a finished grid changes no file at all."""
    if not (path.exists() and path.read_text(encoding="utf-8") == text):
        write_text_atomic(path, text)


def plan_doc(cfg: GridConfig, root: Path) -> dict[str, Any]:
    """Every cell of the grid (not just a shard's): training cells with the sha256 of their config identity
    (spec.json's config_sha256), each with its evaluation cells' paths."""
    model = model_path(cfg, root)
    rows = []
    for c in expand(cfg):
        key = train_key(train_config(cfg, model, c)) if c.template is not None else None
        rows.append({"id": c.id, "template": c.template, "seed": c.seed, "config_sha256": key,
                     "evals": [e.path for e in c.evals]})
    return {"experiment": cfg.name, "train_cells": rows}
