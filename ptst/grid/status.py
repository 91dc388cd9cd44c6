"""`ptst status DIR` (what is done) and the `--dry-run` plan with a rough time estimate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ptst.align import MEASURE_TEMPLATES, MEASURE_TOKENS, AlignArtifact
from ptst.align import train_config as align_train_config
from ptst.data import DATASETS, load_dataset
from ptst.data.custom import parse_custom
from ptst.data.load import split_spec
from ptst.data.sources import find_local
from ptst.errors import PtstError
from ptst.evaluate.key import EvalArtifact
from ptst.generate.runner import how_made
from ptst.grid.cells import align_status, check_cells, eval_status, load_grid, model_path, train_config, train_status
from ptst.grid.checks import check_grid_yaml, validate
from ptst.grid.config import GridConfig
from ptst.grid.plan import expand, select
from ptst.io import no_downloads, read_json
from ptst.runs.hardware import finished_elsewhere, trained
from ptst.runs.layout import RunDir
from ptst.runs.state import State
from ptst.runtime import cpu
from ptst.templates import get_template
from ptst.train.artifact import TrainArtifact

# Throughputs of SmolLM2-135M on 2 CPU cores by the CPU's strongest matrix instructions (ptst.runtime.cpu.kind),
# calibrated on whole cold runs of the shipped configs (docs/performance.md, "Estimates"), in the estimate's own
# units: (train tokens/s as `_train_tokens` counts them, generated tokens/s at batch 48 counting every answer at
# its max length, fp32 generation, prefill, model loads and judging included).
# amx_bf16: measured (2-core Xeon, 2026-12-07), on cold runs of both quickstarts: the GSM8K one (11 min 37 s,
# estimate 11 min) and the whole-story one (18 min 18 s, estimate 22 min; its ChatDoctor answers stop at a third
# of their 64 tokens, which an estimate counting every answer at its max length cannot know). avx512_bf16 (Zen 4)
# and other (Zen 3): derived, not measured with this release: the previous release's whole quickstart took 1.19x
# as long on Zen 4 as on the Xeon; Zen 3's quickstart training ran at 0.42x the Xeon's tokens/s and its fp32
# matmul peak is 0.35x the Xeon's. (The Xeon capped to AVX2, `make quickstart-avx2`, generated as fast as
# uncapped and trained 1.35x slower: it keeps the Xeon's memory and clock, so it does not stand for a Zen 3.)
RATES = {"amx_bf16": (260.0, 225.0), "avx512_bf16": (218.0, 189.0), "other": (109.0, 78.0)}
BF16_GENERATION = 1.8  # generate.dtype bf16 on a fast-bf16 CPU: 709 vs 381 tokens/s in bench_generate (Xeon)
CELL_SECONDS = 4.0  # each evaluation cell's model load, adapter merge and judging, besides its generation
CHARS_PER_TOKEN = 3.6


def cpu_rates(cfg: GridConfig) -> tuple[float, float, str]:
    """(train tokens/s, generated tokens/s at the grid's generation batch size, what they assume) for this CPU,
    in the estimate's units (RATES)."""
    kind = cpu.kind()
    train, gen = RATES.get(kind, RATES["other"])
    gen = batched_rate(gen, int(cfg.generate.get("batch_size", 16)))  # 16: GenerateConfig's default
    bf16 = str(cfg.generate.get("dtype") or "") in ("bf16", "bfloat16") and cpu.fast_bf16()
    source = "measured" if kind == "amx_bf16" else "derived, not measured"
    return train, gen * (BF16_GENERATION if bf16 else 1.0), \
        f"{kind} CPU ({source}), {'bf16' if bf16 else 'fp32'} generation"


def batched_rate(rate48: float, batch_size: int) -> float:
    """Generated tokens/s at a batch size, from the rate at 48: a decoding step reads every weight once whatever
    its batch, so throughput grows with the batch; about as its square root on 2 CPU cores (capped at 64)."""
    return rate48 * (min(max(batch_size, 1), 64) / 48) ** 0.5


def local_dataset(spec: str, split: str | None, data_dir: str | None, limit: int | None = None) -> Any:
    """The data set if every file it needs is already on this machine (nothing is downloaded), else None."""
    if parse_custom(spec) is None:
        name, sp = split_spec(spec, split)
        ds = DATASETS.get(name)
        if any(find_local(f, data_dir) is None for f in ds.files[ds.resolve_split(sp)]):
            return None
    try:
        return load_dataset(spec, split, data_dir=data_dir, limit=limit, seed=0)
    except PtstError:
        return None


def set_size(spec: str, split: str | None, data_dir: str | None) -> int | None:
    """Rows in a data set split: the registry's count, else the local file's, else None (unknown)."""
    if parse_custom(spec) is None:
        name, sp = split_spec(spec, split)
        ds = DATASETS.get(name)
        known = ds.sizes.get(ds.resolve_split(sp))
        if known is not None:
            return known
    local = local_dataset(spec, split, data_dir)
    return len(local.examples) if local is not None else None


def _n_items(e: Any, data_dir: str | None) -> int | None:
    size = set_size(e.data, e.split, data_dir)
    if size is None or e.limit is None:
        return e.limit if size is None else size
    return min(size, e.limit)


def _chars(ds: Any) -> float:
    return sum(len(e.input) + len(e.response or "") for e in ds.examples) / max(len(ds.examples), 1)


def _template_chars(name: str, batch_size: int) -> float:
    """Characters a template adds to each training row: its user format, plus its system prompt spread over a
    micro-batch (ptst runs a prefix all rows share once, `share_prefix`)."""
    try:
        t = get_template(name)
    except Exception:  # noqa: BLE001 - a custom template file the estimate cannot see: count nothing
        return 0.0
    return len(t.user) - len("{input}") + len(t.system or "") / max(batch_size, 1) + 30  # 30: chat scaffolding


def _train_tokens(cfg: GridConfig, tc: Any, todo: list[tuple[str, int]]) -> int | None:
    """Training tokens (all epochs) of the cells to train, each (template, rows its safety-mixing row adds), from
    the local data's characters and each template's; None when the data is not on this machine. `tc`: an unmixed
    cell's TrainConfig, as training reads it."""
    ds = local_dataset(tc.data, tc.split, cfg.data_dir, tc.limit)
    if ds is None:
        return None
    rows, per = len(ds.examples) + sum(m.n for m in tc.mix), _chars(ds)
    return int(sum((rows + extra) * (per + _template_chars(x, tc.batch_size)) for x, extra in todo)
               / CHARS_PER_TOKEN * tc.epochs)


def _align_estimate(cfg: GridConfig) -> tuple[float, float] | None:
    """(training s, generation s) of the alignment stage, or None when its data is not on this machine."""
    a = cfg.align
    assert a is not None
    safety, benign = local_dataset(a.safety, None, cfg.data_dir), local_dataset(a.benign, a.benign_split,
                                                                                cfg.data_dir)
    if safety is None or benign is None:
        return None
    parts = [{"data": f"part-{i}", "template": t, "n": 1} for i, t in enumerate(a.templates)]
    tcfg = align_train_config(a, cfg.model, parts)
    chars = a.n_safety * _chars(safety) + a.n_benign * _chars(benign)
    per_row = sum(_template_chars(t, tcfg.batch_size) for t in a.templates) / len(a.templates)
    chars += (a.n_safety + a.n_benign) * per_row
    train_rate, gen_rate, _ = cpu_rates(cfg)
    train_s = chars / CHARS_PER_TOKEN * tcfg.epochs / train_rate
    # measured twice (shipped and aligned model) under each measuring template
    gen = 2 * len(MEASURE_TEMPLATES) * (a.heldout_limit + a.overrefusal_limit) * MEASURE_TOKENS
    return train_s, gen / gen_rate


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
    ns = [_n_items(e, cfg.data_dir) for e in specs]
    tokens = {e.label: (n or 0) * (e.max_new_tokens or cfg.decoding.get("max_new_tokens", 512))
              for e, n in zip(specs, ns, strict=True)}
    gen_tokens = sum(tokens[e.label] for ec in todo for e in cfg.evals_at(ec.checkpoint))
    tc = train_config(cfg, model, next(c for c in expand(cfg) if c.template is not None))
    tt = _train_tokens(cfg, tc, to_train)
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
    parts = []
    total = 0.0
    if cfg.align is not None:
        aligned = align_state(cfg, out)
        est = (0.0, 0.0) if aligned is not None and aligned[0] else _align_estimate(cfg)
        parts.append(f"align {_minutes(sum(est) if est else None)}")
        total += sum(est) if est else 0.0
        if est is None:
            notes.append("alignment data not on this machine: alignment time unknown")
    train_rate, gen_rate, assumed = cpu_rates(cfg)
    parts.append(f"train {_minutes(None if tt is None else tt / train_rate)}")
    gen_s = gen_tokens / gen_rate + todo_eval * CELL_SECONDS
    parts.append(f"generate {_minutes(gen_s)}")
    total += (tt or 0) / train_rate + gen_s
    parts[-1] += f" = {_minutes(total)}{' at least' if notes else ''}"
    note = f" ({'; '.join(notes)})" if notes else ""
    elsewhere = finished_elsewhere(out, cpu.here())
    if elsewhere:
        print(elsewhere)
    print(f"{n_train} training runs, {n_eval} evaluation cells ({len(to_train)} and {todo_eval} to do); rough estimate "
          f"for a 135M model on 2 CPU cores: {' + '.join(parts)}{note} (assumes {train_rate:.0f} train tok/s and "
          f"{gen_rate:.0f} generated tok/s, {assumed}, every answer at max length; larger models scale with size)")


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
    for c in expand(cfg):
        train = "n/a" if c.template is None else \
            train_status(cfg, run_dir, c, model).describe(TrainArtifact.on_different)
        evals = {e.id: eval_status(cfg, run_dir, e, model).describe(EvalArtifact.on_different) for e in c.evals}
        speed = {e.id: generation_speed(RunDir(run_dir).path / e.path) for e in c.evals}
        made = trained(RunDir(run_dir).train(c.id).path) if c.template is not None else None
        rows.append({"cell": c.id, "train": train, "evals": evals, "speed": speed,
                     "made": made.describe() if made is not None else ""})
    return rows


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
    if align.exists():
        doc = read_json(align)
        print(f"alignment refusal: {doc.get('summary', '')}")
    elsewhere = finished_elsewhere(run_dir, cpu.here())
    if elsewhere:
        print(elsewhere)
    return 0
