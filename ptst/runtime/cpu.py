"""What CPU this is, in the words a reported number needs: its model name and the matrix instructions that decide
ptst's speed (and, in bf16, its answers). Read from /proc/cpuinfo; no torch import."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

# Instructions that change bf16 matrix speed by an order of magnitude, strongest first.
MATRIX_FLAGS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name, flags = platform.processor() or platform.machine(), frozenset[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return name, flags


def name() -> str:
    """The CPU's model name ('Intel(R) Xeon(R) Processor'), else what `platform` knows."""
    return _cpuinfo()[0]


def has(flag: str) -> bool:
    """Whether the CPU reports `flag` (e.g. 'avx512_bf16') in /proc/cpuinfo."""
    return flag in _cpuinfo()[1]


# Environment variables that cap the instructions torch's kernels (ATEN), oneDNN (bf16 matmuls, hence whether
# training resolves to bf16) and MKL (fp32 matmuls) use, each value mapped to the strongest of MATRIX_FLAGS it
# still allows. Setting all three to AVX2 on an AVX512/AMX machine runs it as an AVX2-only CPU (`make
# quickstart-avx2`, how the fp32-only budget is measured); `capped()` names the ones in force.
_ONEDNN_AMX = ("avx512_core_amx", "avx512_core_amx_fp16", "avx10_1_512_amx", "avx10_1_512_amx_fp16", "all")
CAPS = {"ATEN_CPU_CAPABILITY": {"default": "other", "avx2": "avx2", "avx512": "avx512f"},
        "ONEDNN_MAX_CPU_ISA": {"sse41": "other", "avx": "other", "avx2": "avx2", "avx2_vnni": "avx2",
                               "avx2_vnni_2": "avx2", "avx512_core": "avx512f", "avx512_core_vnni": "avx512f",
                               "avx512_core_bf16": "avx512_bf16", "avx512_core_fp16": "avx512_bf16",
                               "avx10_1_512": "avx512_bf16", **dict.fromkeys(_ONEDNN_AMX, "amx_bf16")},
        "MKL_ENABLE_INSTRUCTIONS": {"sse4_2": "other", "avx": "other", "avx2": "avx2", "avx512": "avx512f"}}
BF16_KINDS = ("amx_bf16", "avx512_bf16")


def _cap(var: str) -> str | None:
    return CAPS[var].get(os.environ.get(var, "").strip().lower())


def capped() -> list[str]:
    """The instruction caps set in this environment that rule out a matrix instruction set the CPU has,
    e.g. ['ONEDNN_MAX_CPU_ISA=AVX2']."""
    flags = _cpuinfo()[1]
    return [f"{var}={os.environ[var].strip()}" for var in CAPS
            if (c := _cap(var)) is not None and any(f in flags for f in MATRIX_FLAGS[:_rank(c)])]


def _rank(flag: str) -> int:
    return MATRIX_FLAGS.index(flag) if flag in MATRIX_FLAGS else len(MATRIX_FLAGS)


def kind() -> str:
    """'amx_bf16', 'avx512_bf16', 'avx512f', 'avx2' or 'other': the strongest matrix instruction set present and
    not ruled out by a cap in the environment (CAPS). ONEDNN_MAX_CPU_ISA caps every kind: it decides bf16 matmuls
    (an AMX machine run with ONEDNN_MAX_CPU_ISA=AVX2 has no fast bf16 and trains in fp32). ATEN_CPU_CAPABILITY and
    MKL_ENABLE_INSTRUCTIONS cap the fp32 kinds only: bf16 matmuls go through oneDNN whatever they say."""
    have = next((f for f in MATRIX_FLAGS if f in _cpuinfo()[1]), "other")
    onednn = _cap("ONEDNN_MAX_CPU_ISA")
    if onednn is not None:
        have = max(have, onednn, key=_rank)
    if have in BF16_KINDS:
        return have
    return max([have, *(c for v in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS") if (c := _cap(v)))], key=_rank)


def vector_isa() -> str:
    """'avx512f', 'avx2' or 'other': the strongest vector instruction set present that ATEN_CPU_CAPABILITY (the
    cap on torch's own kernels) still allows; what ptst's native kernels are built for (ptst.runtime.native)."""
    flags = _cpuinfo()[1]
    have = next((f for f in ("avx512f", "avx2") if f in flags), "other")
    aten = _cap("ATEN_CPU_CAPABILITY")
    return have if aten is None else max(have, aten, key=_rank)


def fast_bf16() -> bool:
    return kind() in BF16_KINDS


def describe() -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, amx_bf16' (the cores this process may use), with the caps that lowered
    it: '..., avx2 (capped: ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2)'."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    caps = capped()
    return f"{name()}, {cores} cores, {kind()}" + (f" (capped: {' '.join(caps)})" if caps else "")


def device(dev: object = None) -> str:
    """What computes on `dev` (a torch device, its type name, or None for the CPU), as a record beside a result
    names it: the CPU as `describe()` says it, or 'cuda: NVIDIA H100 80GB HBM3' (torch imported only for a GPU)."""
    kind_ = str(getattr(dev, "type", dev) or "cpu")
    if kind_ == "cpu":
        return describe()
    if kind_ == "cuda":
        import torch

        try:
            return f"cuda: {torch.cuda.get_device_name(getattr(dev, 'index', None))}"
        except Exception:  # noqa: BLE001 - no driver or no such device: name the kind only
            return "cuda"
    return kind_


def here() -> str:
    """This machine as a result made here would name it (`device`): its GPU where torch sees one, else its CPU."""
    import torch

    return device("cuda" if torch.cuda.is_available() else "cpu")
