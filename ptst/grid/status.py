"""`ptst status DIR` (what is done) and the `--dry-run` plan with a rough time estimate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.grid.config import GridConfig
from ptst.grid.plan import expand, select
from ptst.io import read_json

# Rough CPU throughputs for SmolLM2-135M on 2 cores (docs/performance.md); scale for other set-ups.
TRAIN_TOKENS_PER_S = 700.0
GEN_TOKENS_PER_S = 120.0
CHARS_PER_TOKEN = 3.6


def _train_tokens(cfg: GridConfig) -> int | None:
    from ptst.data import load_dataset

    t = cfg.train
    try:
        ds = load_dataset(t.get("data", "gsm8k"), t.get("split", "train"), data_dir=cfg.data_dir,
                          limit=t.get("limit"), seed=0)
    except PtstError:
        return None
    chars = sum(len(e.input) + len(e.response or "") for e in ds.examples)
    mix = sum(int(m["n"] if isinstance(m, dict) else str(m).split(":")[1]) for m in t.get("mix", []))
    per = chars / max(len(ds.examples), 1)
    return int((chars + mix * per) / CHARS_PER_TOKEN * int(t.get("epochs", 3)))


def print_plan(cfg: GridConfig, out: Path, shard: str | None, cell: str | None) -> None:
    cells = select(expand(cfg), shard, cell)
    n_train = sum(c.template is not None for c in cells)
    n_eval = sum(len(c.evals) for c in cells)
    specs = [e.resolved() for e in cfg.evals]
    gen_tokens = sum((e.limit or 100) * (e.max_new_tokens or cfg.decoding.get("max_new_tokens", 512))
                     for e in specs)
    tt = _train_tokens(cfg)
    print(f"grid {cfg.name} -> {out}")
    print(f"model {cfg.model}{' (+ alignment stage)' if cfg.align else ''}; seeds {cfg.seeds}")
    for c in cells:
        state = "no train" if c.template is None else "done" if (out / c.id / "spec.json").exists() else "to train"
        print(f"  {c.id:<28} {state:<9} evals: {', '.join(e.id for e in c.evals)}")
    sets = ", ".join(f"{e.label} ({e.kind}, n={e.limit or 'all'})" for e in specs)
    print(f"evaluation sets: {sets}")
    est_train = (tt or 0) * n_train / TRAIN_TOKENS_PER_S
    est_gen = gen_tokens * n_eval / GEN_TOKENS_PER_S
    note = "" if tt is not None else " (training data not available offline: training time unknown)"
    print(f"{n_train} training runs, {n_eval} evaluation cells; rough upper bound on 2 CPU cores with a 135M model: "
          f"train {est_train / 60:.0f} min + generate {est_gen / 60:.0f} min{note} (assumes "
          f"{TRAIN_TOKENS_PER_S:.0f} train tok/s, {GEN_TOKENS_PER_S:.0f} gen tok/s, every answer at max length)")


def _eval_state(d: Path) -> str:
    if (d / "metrics.json").exists():
        return "done"
    gens = list((d / "generations").glob("*.jsonl")) if (d / "generations").exists() else []
    if not gens:
        return "pending"
    n = sum(sum(1 for _ in g.open(encoding="utf-8")) for g in gens)
    return f"partial ({n} answers)"


def cell_states(run_dir: Path) -> list[dict[str, Any]]:
    from ptst.grid.runner import load_grid

    if not (run_dir / "grid.yaml").exists():
        raise PtstError(f"{run_dir} is not a grid run directory (no grid.yaml)")
    cfg = load_grid(run_dir / "grid.yaml")
    rows = []
    for c in expand(cfg):
        tdir = run_dir / c.id
        if c.template is None:
            train = "n/a"
        elif (tdir / "spec.json").exists():
            train = "done"
        elif (tdir / "checkpoints").exists():
            steps = sorted(p.name for p in (tdir / "checkpoints").glob("step-*"))
            train = f"partial ({steps[-1] if steps else 'started'})"
        else:
            train = "pending"
        rows.append({"cell": c.id, "train": train, "evals": {e.id: _eval_state(run_dir / e.path) for e in c.evals}})
    return rows


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a grid run directory (runs/<name>)")


def cli(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    rows = cell_states(run_dir)
    n_done = n_all = 0
    for r in rows:
        print(f"{r['cell']:<28} train: {r['train']}")
        for eid, st in r["evals"].items():
            print(f"    {eid:<32} {st}")
            n_all += 1
            n_done += st == "done"
    align = run_dir / "align" / "align.json"
    if (run_dir / "align").exists():
        print(f"alignment: {'done' if align.exists() else 'not finished'}")
    print(f"{n_done}/{n_all} evaluation cells done; report: "
          f"{'yes' if (run_dir / 'report.md').exists() else 'not written'}")
    if align.exists():
        doc = read_json(align)
        print(f"alignment refusal: {doc.get('summary', '')}")
    return 0
