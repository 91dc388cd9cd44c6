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


def kind() -> str:
    """'amx_bf16', 'avx512_bf16', 'avx512f', 'avx2' or 'other': the strongest matrix instruction set present."""
    flags = _cpuinfo()[1]
    return next((f for f in MATRIX_FLAGS if f in flags), "other")


def fast_bf16() -> bool:
    return kind() in ("amx_bf16", "avx512_bf16")


def describe() -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, amx_bf16' (the cores this process may use)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name()}, {cores} cores, {kind()}"
