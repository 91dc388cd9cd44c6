"""How OpenMP's worker threads wait, set before torch loads, and how freed memory is kept (no torch import).

A decoding step of a small model is ~2,000 short parallel operations; a worker that goes to sleep between them
must be woken for the next (a futex round trip each). A worker that spins forever instead collapses on a shared
CPU: with another process holding one of 2 cores, a `[8, 195, 576]` multiply took 7.8-12 ms spinning against
0.13-0.23 ms sleeping (docs/performance.md). ptst lets the workers spin for GOMP_SPINCOUNT = 10,000 iterations
(microseconds) and then sleep: on SmolLM2-135M generation this measured 352 tokens/s against 284 with
`OMP_WAIT_POLICY=PASSIVE` and 375 with unbounded spinning (2-core Xeon, fp32, batch 48).

A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone."""

from __future__ import annotations

import ctypes
import os
import sys

SPINCOUNT = "10000"


def bounded_spin() -> None:
    """Set GOMP_SPINCOUNT (GNU OpenMP, which torch's CPU wheels use) unless the user chose a wait policy."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT


# glibc malloc (Linux): freed blocks are kept for reuse instead of going back to the OS. A run trains, then loads
# and merges a model per evaluation cell, and a decoding step allocates tens of MB; with glibc's defaults each
# such block was mapped, zeroed by page faults and unmapped again (3-8 million minor page faults in a quickstart
# run). Measured inside a quickstart run (Xeon): a fine-tune 62.5 -> 45.6 s, AdvBench generation 268 -> 327
# tokens/s. Freed memory up to TRIM_THRESHOLD stays with the process.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 256 << 20
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above (no effect elsewhere, or where MALLOC_* tunables are set); True if applied."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ) or \
            "GLIBC_TUNABLES" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    return all(mallopt(opt, val) == 1 for opt, val in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                       (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
