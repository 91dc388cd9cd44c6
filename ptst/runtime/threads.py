"""How OpenMP's worker threads wait, set before torch loads (no torch import here).

A decoding step of a small model is ~2,000 short parallel operations; a worker that goes to sleep between them
must be woken for the next (a futex round trip each). A worker that spins forever instead collapses on a shared
CPU: with another process holding one of 2 cores, a `[8, 195, 576]` multiply took 7.8-12 ms spinning against
0.13-0.23 ms sleeping (docs/performance.md). ptst lets the workers spin for GOMP_SPINCOUNT = 10,000 iterations
(microseconds) and then sleep: on SmolLM2-135M generation this measured 352 tokens/s against 284 with
`OMP_WAIT_POLICY=PASSIVE` and 375 with unbounded spinning (2-core Xeon, fp32, batch 48).

A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone."""

from __future__ import annotations

import os

SPINCOUNT = "10000"


def bounded_spin() -> None:
    """Set GOMP_SPINCOUNT (GNU OpenMP, which torch's CPU wheels use) unless the user chose a wait policy."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
