"""`--dry-run`'s rough time estimate: the work left (training tokens, generated tokens, cells) over throughputs
calibrated on measured runs, by the CPU's matrix instructions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptst.align import MEASURE_TEMPLATES, MEASURE_TOKENS
from ptst.align import train_config as align_train_config
from ptst.data import DATASETS, load_dataset
from ptst.data.custom import parse_custom
from ptst.data.load import split_spec
from ptst.data.sources import find_local
from ptst.errors import PtstError
from ptst.grid.config import GridConfig
from ptst.runtime import cpu
from ptst.templates import get_template

# Throughputs of SmolLM2-135M on 2 CPU cores by the CPU's strongest matrix instructions (ptst.runtime.cpu.kind),
# calibrated on whole cold runs of the shipped configs (docs/performance.md, "Estimates"), in the estimate's own
# units: train tokens/s as `train_tokens` counts them, generated tokens/s at batch 48 counting every answer at
# its max length (fp32 generation, prefill, model loads and judging included).
# amx_bf16: measured (2-core Xeon, 2026-12-07), on cold runs of both quickstarts: the GSM8K one (11 min 37 s,
# estimate 11 min) and the whole-story one (18 min 18 s, estimate 22 min; its ChatDoctor answers stop at a third
# of their 64 tokens, which an estimate counting every answer at its max length cannot know). Generation 270 since
# fp32 runs on the fused kernels (AVX-512 only): the whole-story cold run's answers took 473 s against 569 s
# (1.20x; 225 before), the run 17 min 3 s against an estimate that would have stayed at 22 min (+29%).
# fp32-only CPUs ("other") get a range, since none was measured: its fast end is the same Xeon capped to AVX2
# (`make quickstart-avx2`: training 1.36x slower in all, 460 s against 339, generation as fast, 598 s against
# 601), which keeps the Xeon's memory and clock; its slow end is derived for a 2-core Zen 3 from the previous
# release (its quickstart training ran at 0.42x the Xeon's tokens/s, its fp32 matmul peak is 0.35x the Xeon's).
# avx512_bf16 (Zen 4): derived, not measured with this release (the previous release's whole quickstart took 1.19x
# as long there as on the Xeon).


@dataclass(frozen=True)
class Rates:
    """One calibration: train tokens/s, generated tokens/s at batch 48, and what they stand for."""

    train: float
    generate: float
    basis: str


RATES: dict[str, tuple[Rates, ...]] = {
    "amx_bf16": (Rates(260.0, 270.0, "measured on a 2-core Xeon with AMX"),),
    "avx512_bf16": (Rates(218.0, 189.0, "derived for a 2-core Zen 4 with AVX512-BF16, not measured"),),
    "other": (Rates(192.0, 225.0, "measured on a 2-core Xeon capped to AVX2"),
              Rates(109.0, 78.0, "derived for a 2-core Zen 3, not measured")),
}
BF16_GENERATION = 1.8  # generate.dtype bf16 on a fast-bf16 CPU: 709 vs 381 tokens/s in bench_generate (Xeon)
CELL_SECONDS = 4.0  # each evaluation cell's model load, adapter merge and judging, besides its generation
CHARS_PER_TOKEN = 3.6


def cpu_rates(cfg: GridConfig) -> tuple[tuple[Rates, ...], str]:
    """This CPU's calibrations (fastest first; one where measured, a range where not), their generation rate at
    the grid's batch size and dtype, and what they assume ('amx_bf16 CPU, fp32 generation')."""
    kind = cpu.kind()
    bf16 = str(cfg.generate.get("dtype") or "") in ("bf16", "bfloat16") and cpu.fast_bf16()
    scale = (BF16_GENERATION if bf16 else 1.0) * batched_rate(1.0, int(cfg.generate.get("batch_size", 16)))
    rates = tuple(Rates(r.train, r.generate * scale, r.basis) for r in RATES.get(kind, RATES["other"]))
    return rates, f"{kind} CPU, {'bf16' if bf16 else 'fp32'} generation"  # 16: GenerateConfig's default batch


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


def n_items(e: Any, data_dir: str | None) -> int | None:
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


def train_tokens(cfg: GridConfig, tc: Any, todo: list[tuple[str, int]]) -> int | None:
    """Training tokens (all epochs) of the cells to train, each (template, rows its safety-mixing row adds), from
    the local data's characters and each template's; None when the data is not on this machine. `tc`: an unmixed
    cell's TrainConfig, as training reads it."""
    ds = local_dataset(tc.data, tc.split, cfg.data_dir, tc.limit)
    if ds is None:
        return None
    rows, per = len(ds.examples) + sum(m.n for m in tc.mix), _chars(ds)
    return int(sum((rows + extra) * (per + _template_chars(x, tc.batch_size)) for x, extra in todo)
               / CHARS_PER_TOKEN * tc.epochs)


def align_estimate(cfg: GridConfig, rates: Rates) -> tuple[float, float] | None:
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
    train_s = chars / CHARS_PER_TOKEN * tcfg.epochs / rates.train
    # measured twice (shipped and aligned model) under each measuring template
    gen = 2 * len(MEASURE_TEMPLATES) * (a.heldout_limit + a.overrefusal_limit) * MEASURE_TOKENS
    return train_s, gen / rates.generate
