"""Execute a grid: (align) → train each cell → evaluate each test template; every stage cached on its key."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ptst.config import dump_yaml, from_dict
from ptst.errors import PtstError
from ptst.grid.config import GridConfig
from ptst.grid.plan import EvalCell, TrainCell, expand, select
from ptst.io import read_json, write_text_atomic


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_config(cfg: GridConfig, model: str, cell: TrainCell) -> Any:
    from ptst.train.config import TrainConfig, parse_mix

    d: dict[str, Any] = {"data": "gsm8k", "split": "train", **cfg.train}
    d["mix"] = [parse_mix(m) if isinstance(m, str) else m for m in d.get("mix", [])]
    d["mix"] = [m if isinstance(m, dict) else {"data": m.data, "n": m.n, "template": m.template, "split": m.split}
                for m in d["mix"]]
    d.update(model=model, template=cell.template, seed=cell.seed, data_dir=cfg.data_dir)
    if cfg.checkpoints:
        d["save_every"] = math.gcd(*cfg.checkpoints)
        d["keep_checkpoints"] = 0
    return from_dict(TrainConfig, d, "train")


def eval_config(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> Any:
    from ptst.specs.eval import EvalConfig
    from ptst.templates import get_template

    adapter = None
    if cell.train_template is not None:
        tdir = root / cell.train_cell
        adapter = tdir / "adapter" if cell.checkpoint is None else tdir / "checkpoints" / f"step-{cell.checkpoint}" / \
            "adapter"
    train_fp = None
    if cell.train_template is not None and (root / cell.train_cell / "spec.json").exists():
        train_fp = read_json(root / cell.train_cell / "spec.json").get("template", {}).get("fingerprint")
    labels = {"experiment": cfg.name, "train_template": cell.train_template, "test_template": cell.test_template,
              "seed": cell.seed, "checkpoint": cell.checkpoint, "train_cell": cell.train_cell,
              "train_fingerprint": train_fp,
              "train_safety_prompt": get_template(cell.train_template).safety_prompt if cell.train_template else None,
              "test_safety_prompt": get_template(cell.test_template).safety_prompt}
    return EvalConfig(model=model, template=cell.test_template, evals=cfg.evals, adapter=str(adapter) if adapter
                      else None, judges=cfg.judges, judge=cfg.judge, decoding=cfg.decoding, generate=cfg.generate,
                      data_dir=cfg.data_dir, seed=cfg.eval_seed, cell=labels)


def finetune_ids(cfg: GridConfig) -> set[str]:
    """Ids of the fine-tuning rows of every seed, kept out of the alignment data."""
    from ptst.data import load_dataset

    t = cfg.train
    ids: set[str] = set()
    for seed in cfg.seeds:
        ds = load_dataset(t.get("data", "gsm8k"), t.get("split", "train"), data_dir=cfg.data_dir,
                          limit=t.get("limit"), seed=seed)
        ids |= {e.id for e in ds.examples}
    return ids


def model_path(cfg: GridConfig, root: Path) -> str:
    return str(root / "align" / "model") if cfg.align is not None else cfg.model


def preflight(cfg: GridConfig, root: Path, cells: list[TrainCell]) -> set[str]:
    """Refuse, before any work, a config naming anything missing or wrong, and a run directory whose results
    were made by a different config. Returns the fine-tuning row ids (kept out of the alignment data)."""
    from ptst.data import load_dataset
    from ptst.grid.checks import check_grid_yaml, validate

    validate(cfg, model_path(cfg, root))
    for spec in (e.resolved() for e in cfg.evals):  # every input must be there before hours of training
        load_dataset(spec.data, spec.split, data_dir=cfg.data_dir, limit=spec.limit, seed=cfg.eval_seed)
    ids = finetune_ids(cfg)
    check_cells(cfg, root, cells, data=True)
    check_grid_yaml(cfg, root)
    return ids


def check_cells(cfg: GridConfig, root: Path, cells: list[TrainCell], data: bool = False) -> None:
    """Refuse training cells already in `root` that were made by another config (or, with `data`, from data
    whose sha256 has changed since)."""
    from ptst.train.runner import data_change, dir_state

    model = model_path(cfg, root)
    if cfg.align is not None and not (root / "align" / "align.json").exists():
        return  # nothing downstream can exist yet
    for cell in cells:
        if cell.template is None:
            continue
        tcfg = train_config(cfg, model, cell)
        state, detail = dir_state(root / cell.id, tcfg)
        if state == "different":
            raise PtstError(f"{root / cell.id} was made by a different config ({detail}); use another --out "
                            "or remove that cell")
        changed = data_change(root / cell.id, tcfg) if state == "done" and data else ""
        if changed:
            raise PtstError(f"{root / cell.id} was trained on different data ({changed}); use another --out "
                            "or remove that cell")


def eval_done(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> bool:
    """What the evaluation stage checks: metrics.json exists and carries this config's key and judge keys."""
    from ptst.evaluate import is_evaluated

    try:
        return is_evaluated(eval_config(cfg, model, cell, root), root / cell.path)
    except PtstError:  # e.g. its adapter is gone
        return False


def pending(cfg: GridConfig, root: Path, cells: list[TrainCell]) -> bool:
    """Whether any selected training or evaluation cell still has work to do."""
    from ptst.train.runner import dir_state

    model = model_path(cfg, root)
    for tc in cells:
        if tc.template is not None and dir_state(root / tc.id, train_config(cfg, model, tc))[0] != "done":
            return True
        if not all(eval_done(cfg, model, ec, root) for ec in tc.evals):
            return True
    return False


def _eval(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> None:
    from ptst.evaluate import run as evaluate

    if cell.train_template is not None:
        adapter = Path(eval_config(cfg, model, cell, root).adapter or "")
        if not adapter.exists():
            raise PtstError(f"{cell.train_cell}: no adapter at {adapter} (is step {cell.checkpoint} a multiple "
                            "of save_every and within the run?)")
    evaluate(eval_config(cfg, model, cell, root), root / cell.path)


def _align_done(cfg: GridConfig, root: Path, exclude: set[str]) -> bool:
    from ptst.align import align_key, is_done

    return cfg.align is None or is_done(root / "align", align_key(cfg.align, cfg.model, exclude))


def run(cfg: GridConfig, out_dir: str | Path, *, shard: str | None = None, cell: str | None = None,
        align_only: bool = False, executor: str | None = None, address: str | None = None) -> Path:
    """Run (or resume) the grid into out_dir. Finished stages are skipped; returns the run directory.
    Every check runs before anything is written. With an alignment stage, `--shard` / `--cell` processes need
    it finished first (`align_only`: run only it), so parallel processes never write align/ together.
    `executor` (default: the config's) `ray` runs the cells as Ray tasks (ptst.grid.ray_exec); `address`: the
    cluster's, overriding `ray.address`."""
    root = Path(out_dir)
    ex = executor or cfg.executor
    if ex == "ray" and shard is not None:
        raise PtstError("--executor ray schedules every cell itself: drop --shard (it is for processes started "
                        "by hand, see docs/cluster.md)")
    if ex == "ray":
        from ptst.grid.ray_exec import require_ray

        require_ray()
    if align_only and (shard is not None or cell is not None):
        raise PtstError("--align-only runs the alignment stage alone: drop --shard / --cell")
    if align_only and cfg.align is None:
        raise PtstError("--align-only: this grid has no align: section")
    cells = select(expand(cfg), shard, cell)
    exclude = preflight(cfg, root, cells)
    aligned = _align_done(cfg, root, exclude)  # refuses an align/ made with another config
    if ex == "local" and not aligned and not align_only and (shard is not None or cell is not None):
        raise PtstError(f"--shard / --cell need a finished alignment in {root / 'align'}: run "
                        "`ptst run CONFIG --align-only` once first, then the shards or cells")
    session = None
    if ex == "ray":
        from ptst.grid.config import RaySpec
        from ptst.grid.ray_exec import connect

        session = connect(cfg.ray or RaySpec(), address)  # an unreachable cluster or impossible request: refused
    todo = not aligned or (not align_only and pending(cfg, root, cells))
    started = time.time()
    try:
        _write_if_changed(root / "grid.yaml", dump_yaml(cfg))
        _write_if_changed(root / "plan.json", _json_text(plan_doc(cfg, root)))
        if session is not None:
            from ptst.grid.ray_exec import run_grid

            run_grid(cfg, root, cells, exclude, session, align_only)
        else:
            _run_local(cfg, root, cells, exclude, align_only)
    finally:
        if session is not None:
            session.close()
    if align_only:
        say(f"grid {cfg.name}: alignment done — {root / 'align'}")
        return root
    n = sum(len(c.evals) for c in cells)
    if todo:
        say(f"grid {cfg.name}: {n} evaluation cells done in {time.time() - started:.0f} s — {root}")
    else:
        say(f"grid {cfg.name}: nothing to do: all {n} cells are done — {root}")
    return root


def _run_local(cfg: GridConfig, root: Path, cells: list[TrainCell], exclude: set[str], align_only: bool) -> None:
    """The grid in this process, one stage after another."""
    from ptst.train.runner import run as train

    if cfg.align is not None:
        from ptst.align import run as align

        align(cfg.align, cfg.model, root / "align", data_dir=cfg.data_dir, exclude=exclude, generate=cfg.generate)
    if align_only:
        return
    model = model_path(cfg, root)
    for tc in cells:
        if tc.template is not None:
            say(f"== train {tc.id} ({tc.template}, seed {tc.seed})")
            train(train_config(cfg, model, tc), root / tc.id, resume=True)
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
    from ptst.io import stable_hash
    from ptst.train.config import identity

    model = model_path(cfg, root)
    rows = []
    for c in expand(cfg):
        key = stable_hash(identity(train_config(cfg, model, c))) if c.template is not None else None
        rows.append({"id": c.id, "template": c.template, "seed": c.seed, "config_sha256": key,
                     "evals": [e.path for e in c.evals]})
    return {"experiment": cfg.name, "train_cells": rows}


def load_grid(path: str | Path, overrides: list[str] | None = None) -> GridConfig:
    from ptst.config import load_config

    return load_config(GridConfig, path, overrides)
