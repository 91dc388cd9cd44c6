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
from ptst.io import read_json, write_json_atomic, write_text_atomic


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
    from ptst.evaluate import EvalConfig
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


def _model(cfg: GridConfig, root: Path) -> str:
    return str(root / "align" / "model") if cfg.align is not None else cfg.model


def preflight(cfg: GridConfig, root: Path, cells: list[TrainCell]) -> None:
    """Refuse, before any work, a run directory whose existing results were made by a different config."""
    from ptst.data import load_dataset
    from ptst.train.runner import dir_state

    for spec in (e.resolved() for e in cfg.evals):  # every input must be there before hours of training
        load_dataset(spec.data, spec.split, data_dir=cfg.data_dir, limit=spec.limit, seed=cfg.eval_seed)
    finetune_ids(cfg)
    model = _model(cfg, root)
    if cfg.align is not None and not (root / "align" / "align.json").exists():
        return  # nothing downstream can exist yet
    for cell in cells:
        if cell.template is None:
            continue
        state, detail = dir_state(root / cell.id, train_config(cfg, model, cell))
        if state == "different":
            raise PtstError(f"{root / cell.id} was made by a different config ({detail}); use another --out "
                            "or remove that cell")


def _eval(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> None:
    from ptst.evaluate import run as evaluate

    if cell.train_template is not None:
        adapter = Path(eval_config(cfg, model, cell, root).adapter or "")
        if not adapter.exists():
            raise PtstError(f"{cell.train_cell}: no adapter at {adapter} (is step {cell.checkpoint} a multiple "
                            "of save_every and within the run?)")
    evaluate(eval_config(cfg, model, cell, root), root / cell.path)


def run(cfg: GridConfig, out_dir: str | Path, *, shard: str | None = None, cell: str | None = None) -> Path:
    """Run (or resume) the grid into out_dir. Finished stages are skipped; returns the run directory."""
    from ptst.train.runner import run as train

    root = Path(out_dir)
    cells = select(expand(cfg), shard, cell)
    preflight(cfg, root, cells)
    write_text_atomic(root / "grid.yaml", dump_yaml(cfg))
    write_json_atomic(root / "plan.json", plan_doc(cfg, cells))
    started = time.time()
    if cfg.align is not None:
        from ptst.align import run as align

        align(cfg.align, cfg.model, root / "align", data_dir=cfg.data_dir, exclude=finetune_ids(cfg))
    model = _model(cfg, root)
    for tc in cells:
        if tc.template is not None:
            say(f"== train {tc.id} ({tc.template}, seed {tc.seed})")
            train(train_config(cfg, model, tc), root / tc.id, resume=True)
        for ec in tc.evals:
            say(f"== eval {ec.path}")
            _eval(cfg, model, ec, root)
    say(f"grid {cfg.name}: {sum(len(c.evals) for c in cells)} evaluation cells done in {time.time() - started:.0f} s"
        f" — {root}")
    return root


def plan_doc(cfg: GridConfig, cells: list[TrainCell]) -> dict[str, Any]:
    return {"experiment": cfg.name, "train_cells": [
        {"id": c.id, "template": c.template, "seed": c.seed, "evals": [e.path for e in c.evals]} for c in cells]}


def load_grid(path: str | Path, overrides: list[str] | None = None) -> GridConfig:
    from ptst.config import load_config

    return load_config(GridConfig, path, overrides)
