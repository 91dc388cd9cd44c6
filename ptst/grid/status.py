"""`ptst status DIR` (what is done) and the `--dry-run` plan with a rough time estimate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ptst.align import AlignArtifact
from ptst.errors import PtstError
from ptst.evaluate.key import EvalArtifact
from ptst.generate.runner import how_made
from ptst.grid.cells import (
    align_status,
    check_cells,
    eval_status,
    load_grid,
    model_path,
    train_config,
    train_status,
    trained_on_other_data,
)
from ptst.grid.checks import check_grid_yaml, validate
from ptst.grid.config import GridConfig
from ptst.grid.estimate import CELL_SECONDS, align_estimate, cpu_rates, n_items, train_tokens
from ptst.grid.plan import TrainCell, expand, select
from ptst.io import no_downloads, read_json
from ptst.runs.hardware import finished_elsewhere, trained
from ptst.runs.layout import RunDir
from ptst.runs.state import State
from ptst.runtime import cpu
from ptst.train.artifact import TrainArtifact


def print_plan(cfg: GridConfig, out: Path, shard: str | None, cell: str | None) -> None:
    """The cells to run with a rough time estimate; first every check `ptst run` makes before it starts.
    Nothing is downloaded (data sets, tokenizers): what is not on this machine is reported as such."""
    with no_downloads():
        _print_plan(cfg, out, shard, cell)


def _print_plan(cfg: GridConfig, out: Path, shard: str | None, cell: str | None) -> None:
    cells = select(expand(cfg), shard, cell)
    model = model_path(cfg, out)
    validate(cfg, model)
    check_cells(cfg, out, cells)
    check_grid_yaml(cfg, out)
    n_train = sum(c.template is not None for c in cells)
    n_eval = sum(len(c.evals) for c in cells)
    # what is left, as the runner and `ptst status` see it (the cells' artifact states)
    trained = {c.id: train_status(cfg, out, c, model) for c in cells}
    mixed = {m.name: m.n for m in cfg.mixes}
    to_train = [(c.template, mixed.get(c.mix or "", 0)) for c in cells
                if c.template is not None and not trained[c.id].done]
    evaluated = {e.path: eval_status(cfg, out, e, model) for c in cells for e in c.evals}
    todo = [e for c in cells for e in c.evals if not evaluated[e.path].done]
    todo_eval = len(todo)
    specs = [e.resolved() for e in cfg.evals]
    ns = [n_items(e, cfg.data_dir) for e in specs]
    tokens = {e.label: (n or 0) * (e.max_new_tokens or cfg.decoding.get("max_new_tokens", 512))
              for e, n in zip(specs, ns, strict=True)}
    gen_tokens = sum(tokens[e.label] for ec in todo for e in cfg.evals_at(ec.checkpoint))
    tc = train_config(cfg, model, next(c for c in expand(cfg) if c.template is not None))
    tt = train_tokens(cfg, tc, to_train)
    print(f"grid {cfg.name} -> {out}")
    print(f"model {cfg.model}{' (+ alignment stage)' if cfg.align else ''}; seeds {cfg.seeds}")
    for c in cells:
        state = "no train" if c.template is None else "done" if trained[c.id].done else "to train"
        print(f"  {c.id:<28} {state:<9} evals: {', '.join(e.id for e in c.evals)}")
        for e in c.evals:  # a finished cell whose inputs changed: what changed, and the files it makes stale
            if evaluated[e.path].state is State.DIFFERENT:
                print(f"    {e.id:<26} {evaluated[e.path].describe(EvalArtifact.on_different)}")
    sets = ", ".join(f"{e.label} ({e.kind}, n={n if n is not None else 'unknown'})" for e, n in zip(specs, ns,
                                                                                                    strict=True))
    print(f"evaluation sets: {sets}")
    notes = [] if tt is not None else ["training data not on this machine: training time unknown"]
    unknown = [e.label for e, n in zip(specs, ns, strict=True) if n is None]
    if unknown:
        notes.append(f"size of {', '.join(unknown)} unknown (not on this machine, no limit): left out")
    rates, assumed = cpu_rates(cfg)
    aligned = align_state(cfg, out)
    totals = []
    for i, r in enumerate(rates):  # the first calibration in parts, the others' totals as a range
        parts, total = [], 0.0
        if cfg.align is not None:
            est = (0.0, 0.0) if aligned is not None and aligned[0] else align_estimate(cfg, r)
            parts.append(f"align {_minutes(sum(est) if est else None)}")
            total += sum(est) if est else 0.0
            if est is None and i == 0:
                notes.append("alignment data not on this machine: alignment time unknown")
        gen_s = gen_tokens / r.generate + todo_eval * CELL_SECONDS
        parts += [f"train {_minutes(None if tt is None else tt / r.train)}", f"generate {_minutes(gen_s)}"]
        totals.append((parts, total + (tt or 0) / r.train + gen_s))
    parts, total = totals[0]
    parts[-1] += f" = {_minutes(total)}{' at least' if notes else ''}"
    note = f" ({'; '.join(notes)})" if notes else ""
    first, least = rates[0], " at least" if notes else ""
    basis = "; ".join([f"assumes {first.train:.0f} train tok/s and {first.generate:.0f} generated tok/s, as "
                       f"{first.basis}"]
                      + [f"up to {_minutes(t)}{least} at {r.train:.0f} and {r.generate:.0f}, as {r.basis}"
                         for r, (_, t) in zip(rates[1:], totals[1:], strict=True)])
    elsewhere = finished_elsewhere(out, cpu.here)
    if elsewhere:
        print(elsewhere)
    print(f"{n_train} training runs, {n_eval} evaluation cells ({len(to_train)} and {todo_eval} to do); rough estimate "
          f"for a 135M model on 2 CPU cores: {' + '.join(parts)}{note} ({basis}; {assumed}, every answer at max "
          "length; larger models scale with size)")


def _minutes(seconds: float | None) -> str:
    return "? min" if seconds is None else f"{seconds / 60:.0f} min"


def align_state(cfg: GridConfig, run_dir: Path) -> tuple[bool, str] | None:
    """(done, the line `ptst status` prints) for the alignment; None without an align: section. Its key holds the
    fine-tuning rows, read from local data; when they cannot be read here, the done marker alone decides."""
    if cfg.align is None:
        return None
    try:
        status = align_status(cfg, run_dir)
        return status.done, status.describe(AlignArtifact.on_different)
    except PtstError as e:
        done = RunDir(run_dir).align.manifest.exists()
        return done, f"{'done' if done else 'not finished'} (key not checked: {e})"


def load_run(run_dir: Path) -> GridConfig:
    """The config a grid run directory was made with (its grid.yaml)."""
    if not RunDir(run_dir).grid_yaml.exists():
        raise PtstError(f"{run_dir} is not a grid run directory (no grid.yaml)")
    return load_grid(RunDir(run_dir).grid_yaml)


def cell_states(cfg: GridConfig, run_dir: Path) -> list[dict[str, Any]]:
    """Each training cell's state and its evaluation cells' states, as the runner sees them."""
    model = model_path(cfg, run_dir)
    rows = []
    toks: dict[str, Any] = {}  # the tokenizer each training text is rendered with again, loaded once
    for c in expand(cfg):
        train = "n/a" if c.template is None else _train_line(cfg, run_dir, c, model, toks)
        evals = {e.id: eval_status(cfg, run_dir, e, model).describe(EvalArtifact.on_different) for e in c.evals}
        speed = {e.id: generation_speed(RunDir(run_dir).path / e.path) for e in c.evals}
        made = trained(RunDir(run_dir).train(c.id).path) if c.template is not None else None
        how = "" if made is None else made.describe() + ("" if made.tok_s is None else f", {made.tok_s:.0f} tok/s")
        rows.append({"cell": c.id, "train": train, "evals": evals, "speed": speed, "made": how})
    return rows


def _train_line(cfg: GridConfig, run_dir: Path, cell: TrainCell, model: str, toks: dict[str, Any]) -> str:
    """A training cell's state; a finished one trained on data (or a rendering) that changed since says so."""
    st = train_status(cfg, run_dir, cell, model)
    changed = trained_on_other_data(cfg, run_dir, cell, model, st, toks)
    if changed:
        return (f"done on other data ({changed}): its results are stale and `ptst run` refuses this cell; use "
                "another --out or remove the cell")
    return st.describe(TrainArtifact.on_different)


def generation_speed(eval_dir: Path) -> str:
    """'390 tok/s (hf fast float32, batch 48; Intel(R) Xeon(R) Processor, 2 cores, amx_bf16)' over the cell's
    generations files (their sidecars record it; '' where none does), several CPUs or engines named each."""
    tokens, seconds, hows = 0, 0.0, []
    for meta in sorted((eval_dir / "generations").glob("*.meta.json")):
        try:
            t = read_json(meta).get("throughput")
        except PtstError:
            continue
        if not isinstance(t, dict) or not t.get("seconds"):
            continue
        tokens, seconds = tokens + int(t.get("tokens") or 0), seconds + float(t["seconds"])
        how = how_made(t)
        if how not in hows:
            hows.append(how)
    return f"{tokens / seconds:.0f} tok/s ({' | '.join(hows)})" if seconds else ""


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a grid run directory (runs/<name>)")


def cli(args: argparse.Namespace) -> int:
    with no_downloads():  # status only looks: a data set or tokenizer not on this machine is reported, not fetched
        return _status(Path(args.run_dir))


def _status(run_dir: Path) -> int:
    cfg = load_run(run_dir)
    rows = cell_states(cfg, run_dir)
    n_done = n_all = 0
    for r in rows:
        made = f"  [{r['made']}]" if r["made"] and r["train"] == "done" else ""
        print(f"{r['cell']:<28} train: {r['train']}{made}")
        for eid, st in r["evals"].items():
            speed = r["speed"].get(eid)
            print(f"    {eid:<32} {st}{f'  [generation {speed}]' if speed and st == 'done' else ''}")
            n_all += 1
            n_done += st == "done"
    run = RunDir(run_dir)
    align = run.align.manifest
    state = align_state(cfg, run_dir)
    if state is not None:
        print(f"alignment: {state[1]}")
    print(f"{n_done}/{n_all} evaluation cells done; report: "
          f"{'yes' if run.report_md.exists() else 'not written'}")
    if align.exists() and (state is None or state[0]):  # a measurement to redo is not shown
        doc = read_json(align)
        print(f"alignment refusal: {doc.get('summary', '')}")
    elsewhere = finished_elsewhere(run_dir, cpu.here)
    if elsewhere:
        print(elsewhere)
    return 0
