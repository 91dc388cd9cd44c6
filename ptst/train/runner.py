"""`run(cfg, out_dir)`: the run-directory contract of the training stage; spec.json is written last (= done)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ptst.config import dump_yaml
from ptst.errors import PtstError
from ptst.io import clear_stale_tmp, iter_jsonl, repair_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic
from ptst.models import ALIASES, load_tokenizer
from ptst.runs.layout import TrainDir
from ptst.runs.state import State
from ptst.runs.trained import TrainSpec
from ptst.runtime import cpu
from ptst.specs.train import TrainConfig
from ptst.train.artifact import TrainArtifact, data_change
from ptst.train.checkpoint import latest
from ptst.train.encode import build_train_set
from ptst.train.loop import train_loop
from ptst.train.spec import build_spec


def _say(msg: str, main: bool = True) -> None:
    if main:
        print(f"ptst train: {msg}", file=sys.stderr, flush=True)


def _check_dir(out: Path, cfg: TrainConfig, overwrite: bool, resume: bool) -> tuple[str, Path | None]:
    """Decide what to do with `out`: 'skip', 'fresh' or 'resume' (with its checkpoint); refuse the rest."""
    if overwrite and resume:
        raise PtstError("--overwrite and --resume contradict each other; pick one")
    if out.exists() and not out.is_dir():
        raise PtstError(f"--out {out} exists and is not a directory")
    status = TrainArtifact(TrainDir(out), cfg).state()
    if overwrite:
        return "fresh", None
    if status.state is State.DONE:
        changed = data_change(out, cfg)
        if changed:
            raise PtstError(f"{out} was trained on different data ({changed}); pass --overwrite to retrain it "
                            "or choose another --out")
        return "skip", None
    if status.state is State.DIFFERENT:
        raise PtstError(f"{out} holds a different training run ({status.detail}); pass --overwrite to replace it "
                        "or choose another --out")
    ckpt = latest(out) if status.state is State.PARTIAL else None
    if ckpt is not None and not resume:
        raise PtstError(f"{out} holds an unfinished run of this config (last checkpoint {ckpt.name}); pass "
                        "--resume to continue it or --overwrite to start over")
    return ("resume", ckpt) if ckpt is not None else ("fresh", None)


def clean(out: Path) -> None:
    """Remove what a training run writes (and nothing else: a run directory may hold later stages' files)."""
    for p in TrainDir(out).own_files:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _trim_log(out: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from: they will be written again."""
    path = TrainDir(out).log
    if path.exists():
        repair_jsonl(path)
        write_jsonl_atomic(path, [r for r in iter_jsonl(path) if int(r.get("step", 0)) <= step])


def base_ref(model: str) -> str:
    """What adapter_config.json names as the base: the alias / hub id, or a local path made absolute."""
    p = Path(model).expanduser()
    return model if model in ALIASES or not p.exists() else str(p.resolve())


def run(cfg: TrainConfig, out_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
        progress: bool | None = None) -> TrainSpec:
    """Train `cfg` into `out_dir` and return what it made (spec.json, typed). A finished identical run is a
    no-op; a different one is refused unless `overwrite`; `resume` continues an unfinished one from its latest
    checkpoint. Every input is checked before anything is written. `progress`: show a progress bar (default:
    when stderr is a terminal)."""
    import torch
    from accelerate import Accelerator

    from ptst.train.model import load_trainable, resolve_precision

    out = Path(out_dir)
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(cfg.precision, device_type)
    # cpu=True on a machine without CUDA also makes `torchrun` / `accelerate launch` processes join one gloo group.
    acc = Accelerator(cpu=device_type == "cpu", mixed_precision="fp16" if precision == "fp16" else "no")
    main = acc.is_main_process
    action, ckpt = _check_dir(out, cfg, overwrite, resume)
    if action == "skip":
        _say(f"{out} already holds this finished run (spec.json); nothing to do", main)
        return TrainSpec.read(out)
    started = time.time()
    tok = load_tokenizer(cfg.model)
    data = build_train_set(cfg, tok)

    show = sys.stderr.isatty() if progress is None else progress
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    with _own_rng():
        lm = load_trainable(cfg, precision, base_ref(cfg.model))
        if main:
            _start_dir(out, cfg, ckpt)
        acc.wait_for_everyone()
        _report_data(data, cfg, ckpt, main)
        result = train_loop(cfg, data, lm, out, acc, precision, pad, ckpt, show)
    acc.wait_for_everyone()
    if main:
        _finish(out, cfg, tok, lm, data, result, precision, acc.num_processes, time.time() - started,
                cpu.device(device_type))
    acc.wait_for_everyone()
    return TrainSpec.read(out)


@contextmanager
def _own_rng() -> Iterator[None]:
    """Seeding and resuming set the global torch / Python RNGs; give the caller's back afterwards."""
    import random

    import torch

    state = random.getstate()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(state)


def _start_dir(out: Path, cfg: TrainConfig, ckpt: Path | None) -> None:
    if ckpt is None:
        clean(out)
    else:
        _trim_log(out, int(ckpt.name.split("-")[1]))
    out.mkdir(parents=True, exist_ok=True)
    clear_stale_tmp(out, recursive=False)  # a killed run's spec.json / config.yaml temporaries (not eval/'s)
    write_text_atomic(TrainDir(out).config, dump_yaml(cfg))


def _report_data(data: Any, cfg: TrainConfig, ckpt: Path | None, main: bool) -> None:
    for p in data.parts:
        dropped = f", {p.n_dropped_truncated} dropped (response cut by max_len)" if p.n_dropped_truncated else ""
        _say(f"{p.data}: {p.n_used} examples under {p.template}, {p.response_tokens} response tokens{dropped}", main)
    nc = [p.data for p in data.parts if p.non_commercial]
    if nc:
        _say(f"note: {', '.join(nc)} {'is' if len(nc) == 1 else 'are'} licensed for non-commercial use only; "
             "so are weights trained on it (spec.json: non_commercial)", main)
    if ckpt is not None:
        _say(f"resuming from {ckpt}", main)


def _finish(out: Path, cfg: TrainConfig, tok: Any, lm: Any, data: Any, result: Any, precision: str, world: int,
            wall: float, hardware: str) -> None:
    from ptst.train.model import save_final  # heavy: torch

    save_final(lm, tok, out, cfg.full)
    spec = build_spec(cfg, out, lm, data, result, precision, world, wall, hardware)
    write_json_atomic(TrainDir(out).spec, spec)
    _say(f"done: {result.steps} steps, final loss {result.progress.last_loss:.4f}, "
         f"{result.progress.elapsed_s:.1f}s -> {out}")
